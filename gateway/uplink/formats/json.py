"""``json``: the events as stored, one object per message (or, with
``events_per_message`` above 1, JSON arrays, as before formats existed);
``json_batch``: always a JSON array, even of one event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tidegate.payload import join_payloads
from tidegate.uplink.formats.base import Format


class Json(Format):
    name: ClassVar[str] = "json"
    reshapes: ClassVar[bool] = False

    def join(self, events: Sequence[bytes]) -> bytes:
        return join_payloads(events)


class JsonBatch(Json):
    name: ClassVar[str] = "json_batch"
    always_joined: ClassVar[bool] = True
