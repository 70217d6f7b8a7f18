"""The outbox: every accepted event on disk until the broker acknowledged it.

This is the subsystem's public API: the pipeline and the publisher use the outbox
through ``AsyncOutbox`` (``AsyncOutbox.create`` makes the SQLite store behind it,
``tidegate.outbox.store``), and the types and errors it takes and gives. Inside:
the store's operations (``lifecycle``, ``commit``, ``bound``, ``delivery``,
``dead``, ``clock``, ``stats``), the file (``schema``, ``migrate``, ``recovery``,
``integrity``, ``disk``, ``lock``, ``files``), what it keeps outside the file
(``ledger/``), and what ``tidegate buffer`` does to a file (``admin/``).

Names are imported on first use, so that importing a part (``tidegate.outbox.admin``,
``tidegate.outbox.ledger``) or the config-facing types does not load the store,
asyncio or SQLite.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidegate.outbox.dead import DeadInput
    from tidegate.outbox.delivery import Row
    from tidegate.outbox.disk import OutboxNoSpace
    from tidegate.outbox.facade import AsyncOutbox, UplinkOutbox
    from tidegate.outbox.limits import Durability, OutboxFull, OutboxLimits, WhenFull
    from tidegate.outbox.stats import OutboxStats

_HOMES = {
    "AsyncOutbox": "facade",
    "DeadInput": "dead",
    "Durability": "limits",
    "OutboxFull": "limits",
    "OutboxLimits": "limits",
    "OutboxNoSpace": "disk",
    "OutboxStats": "stats",
    "Row": "delivery",
    "UplinkOutbox": "facade",
    "WhenFull": "limits",
}
"""Each public name and the module that defines it."""

__all__ = [
    "AsyncOutbox",
    "DeadInput",
    "Durability",
    "OutboxFull",
    "OutboxLimits",
    "OutboxNoSpace",
    "OutboxStats",
    "Row",
    "UplinkOutbox",
    "WhenFull",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
