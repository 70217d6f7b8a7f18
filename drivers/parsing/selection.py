"""``select:``: which frames a record parser is for, by how they begin.

A device may send several kinds of record on one line, of which a config wants
one: a GPS receiver sends ``$GPRMC``, ``$GPGGA``, ``$GPGSV``… sentences several
times a second. A frame of another kind is not damage, and putting it in the dead
letters would bury the ones that are (a receiver's other sentences come to some
400 000 a day). With ``select:`` such a frame is skipped: counted per driver as
``skipped`` (shown by ``tidegate status``), never a dead letter. A frame that does
begin with a selected prefix is the wanted kind, and is parsed with every check
as before: a ``$GPRMC`` line that does not match the pattern is still rejected.

Kept free of the parser so that the config module (``config``) can use it.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

from pydantic import BeforeValidator, Field, ValidationInfo

SELECT_DESCRIPTION = (
    "Parse only the frames that begin with this text, or one of these (a list), e.g. "
    '`"$GPRMC,"` or `["$GPRMC,", "$GNRMC,"]` for a GPS receiver\'s RMC sentences. A '
    "frame that begins otherwise is another kind of record, not damage: it is skipped "
    "and counted as `skipped` per driver (`tidegate status`), not a dead letter. A "
    "selected frame that then fails to parse is rejected as ever. Default: every frame "
    "is parsed."
)


def _one_or_many(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError(f'give a prefix or a list of them, e.g. "$GPRMC,", not {value!r}')
    return value


Prefixes: TypeAlias = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]],
    BeforeValidator(_one_or_many),
    Field(min_length=1),
]
"""``select:``'s value: one prefix, or a list of them."""


def encoded_prefixes(prefixes: list[str] | None, encoding: str) -> tuple[bytes, ...] | None:
    """The prefixes as the frame's bytes begin with them; raises ValueError for one
    the frame's encoding cannot hold (no frame could ever begin with it)."""
    if prefixes is None:
        return None
    encoded: list[bytes] = []
    for prefix in prefixes:
        try:
            encoded.append(prefix.encode(encoding))
        except UnicodeEncodeError:
            raise ValueError(
                f"{prefix!r} cannot be written in the frame's encoding {encoding}"
            ) from None
    return tuple(encoded)


def prefixes_encode(prefixes: list[str] | None, info: ValidationInfo) -> list[str] | None:
    """``select:``'s field validator: each prefix fits the frame's ``encoding`` (a field
    declared before ``select``, so already validated; absent if it was invalid)."""
    encoding = info.data.get("encoding")
    if encoding is not None:
        encoded_prefixes(prefixes, encoding)
    return prefixes
