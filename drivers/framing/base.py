"""What every framing shares: bytes written in a config, the quiet timeout, the interface.

Line, fixed and binary framings live in modules of their own (``lines``,
``fixed``, ``binary``); ``lines`` brings them together and is the module the
drivers import.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from tidegate.config.types import Duration, Section
from tidegate.driver import Reject

_HEX_SEPARATORS = re.compile(r"[\s:,_-]+")


def _parse_hex(value: Any) -> Any:
    """``"42 4d"``, ``"0x42 0x4D"``, ``"424d"``, ``"42:4d"`` or ``[0x42, 0x4d]`` -> bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value):
            raise ValueError("a byte list holds integers from 0 to 255")
        return bytes(value)
    if isinstance(value, str):
        tokens = [t for t in _HEX_SEPARATORS.split(value.strip()) if t]
        digits = "".join(t[2:] if t.lower().startswith("0x") else t for t in tokens)
        try:
            if len(digits) % 2:
                raise ValueError
            return bytes.fromhex(digits)
        except ValueError:
            raise ValueError(
                f"'{value}' is not hex bytes; write e.g. \"42 4d\" or \"0x42 0x4d\""
            ) from None
    return value


def _parse_text_bytes(value: Any) -> Any:
    """A YAML string (escapes like ``"\\r\\n"`` or ``"\\x03"`` work) -> its bytes."""
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                "use characters from \\x00 to \\xff (write other bytes as \\xNN)"
            ) from None
    return value


HexBytes = Annotated[
    bytes,
    BeforeValidator(_parse_hex),
    Field(json_schema_extra={"anyOf": [{"type": "string"}, {"type": "array"}]}),
]
"""Bytes written as hex: ``"42 4d"``, ``"0x42 0x4d"`` or a list of integers."""

TextBytes = Annotated[
    bytes,
    BeforeValidator(_parse_text_bytes),
    Field(json_schema_extra={"type": "string"}),
]
"""Bytes written as a string; in double quotes YAML turns ``\\r``, ``\\n``, ``\\xNN`` into bytes."""


def shown(marker: bytes) -> str:
    """A start or end sequence as a reject reason shows it: hex, like the config's ``end:``."""
    return marker.hex(" ")


class FramingBase(Section):
    frame_timeout: Duration | None = Field(
        None,
        gt=0,
        description="Drop a partly received frame (counted as a reject) when no byte has "
        "arrived for this long; this is how a framer without markers (`fixed`) finds "
        "its step again after a lost byte. Unset: wait forever.",
    )


class Framer(ABC):
    """Cuts a byte stream into frames; see the ``lines`` module docstring."""

    max_length: int
    """Longest frame this framer can return."""

    def __init__(self, reject: Reject) -> None:
        self._reject = reject

    @abstractmethod
    def feed(self, data: bytes) -> list[bytes]:
        """Take the next chunk of the stream; return the frames it completed."""

    @abstractmethod
    def pending(self) -> int:
        """Bytes held back as the start of a frame not yet complete."""

    @abstractmethod
    def flush(self) -> bytes:
        """Forget the incomplete frame (the port closed); return its bytes."""

    def expire(self, reason: str) -> list[bytes]:
        """The line went quiet in the middle of a frame: reject the incomplete frame.

        Returns the frames that were waiting behind it (a binary framer may have been
        holding real frames inside a candidate whose length field was damaged).
        """
        partial = self.flush()
        if partial:
            self._reject(partial[: self.max_length], reason)
        return []
