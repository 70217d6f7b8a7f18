"""Config sections that come in kinds: one model per kind, picked by a key.

A sim signal's ``kind``, a gpio driver's ``mode``: each value has its own model
with only the keys that mean something for it, so a key of another kind is an
"unknown key" error at its own line and column, and runtime code gets the one
model it can use. ``pick_by`` is the pydantic discriminator for such a union::

    Signal = Annotated[
        Annotated[SineSignal, Tag("kind: sine")] | Annotated[StepSignal, Tag("kind: step")],
        pick_by("kind", ["sine", "step"]),
    ]

The tags read ``key: value`` rather than the bare value because pydantic puts
the tag into an error's location, and a bare ``edge`` there would be taken for
the gpio driver's ``edge:`` key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Discriminator


def pick_by(key: str, values: Sequence[str], *, default: str | None = None) -> Discriminator:
    """Pick the model tagged ``key: value`` by the input's ``key`` (``default``
    when it is absent); any other value is an error that lists the known ones."""
    known = frozenset(values)

    def tag(data: Any) -> str | None:
        value = data.get(key, default) if isinstance(data, dict) else getattr(data, key, None)
        return f"{key}: {value}" if isinstance(value, str) and value in known else None

    return Discriminator(
        tag,
        custom_error_type=f"unknown_{key}",
        custom_error_message=f"`{key}` must be one of: {', '.join(values)}",
    )
