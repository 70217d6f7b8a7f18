"""``fixed`` framing: frames of one length, back to back, optionally ending in an end sequence.

Without markers a lost byte shifts every later frame; only ``frame_timeout`` (the
sensor pausing between frames) puts the framer back in step. With ``end:`` each
frame must end in the given bytes: a frame that does not is rejected with its raw
bytes, and the framer steps forward to the next place where a frame could end (the
next occurrence of the end sequence), so a lost or extra byte costs the frames it
touched, not every frame after it. A frame that holds the end sequence anywhere
else is rejected too: it cannot be told from the remains of two frames. So the end
sequence must not occur in a payload (text records ending in CR LF are the usual
case); binary payloads that can hold it need ``binary`` framing with a checksum.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tidegate.driver import Reject
from tidegate.drivers._framing_base import Framer, FramingBase, HexBytes, shown
from tidegate.schema_types import Duration


class FixedFraming(FramingBase):
    """Frames of a fixed length, back to back."""

    type: Literal["fixed"] = Field("fixed", description="Frames have a fixed length.")
    length: int = Field(ge=1, le=65536, description="Bytes per frame (end sequence included).")
    end: HexBytes | None = Field(
        None,
        min_length=1,
        max_length=16,
        description='Bytes every frame ends in, in hex (e.g. "0d 0a" or "ab"): a frame that '
        "ends otherwise, or holds them anywhere else, is rejected (it cannot be told "
        "from two frames run together), and the framer moves on to the next place a "
        "frame can end, so a lost byte costs only the frames it touched. For payloads "
        "that can hold these bytes use `binary` framing with a checksum.",
    )
    frame_timeout: Duration | None = Field(
        0.5,
        gt=0,
        description="Drop a partly received frame when no byte has arrived for this long, "
        "so a lost byte does not shift every later frame.",
    )

    @model_validator(mode="after")
    def _end_fits(self) -> FixedFraming:
        if self.end is not None and len(self.end) >= self.length:
            raise ValueError(f"`end` must be shorter than `length` ({self.length})")
        return self


class FixedFramer(Framer):
    """Cuts ``length``-byte frames; with an end sequence, checks it and resynchronises.

    A frame is the next ``length`` bytes; it must end in the end sequence and hold no
    other (nor begin with the last bytes of one): in back-to-back frames the previous
    frame's end comes right before a frame, never inside it, so bytes over one are the
    remains of two frames run together. After a frame that fails, the next one is
    looked for where an end sequence could close it.
    """

    def __init__(self, length: int, reject: Reject, end: bytes | None = None) -> None:
        super().__init__(reject)
        self.max_length = length
        self._end = end or None
        self._buffer = b""
        # While out of step: the bytes skipped so far and the first of them, so that one
        # lost byte is one reject however the stream was chunked; and how many bytes at
        # the front of the buffer are kept only to see an end sequence straddling it.
        self._skipped = 0
        self._skipped_raw = b""
        self._lead = 0

    def pending(self) -> int:
        return len(self._buffer) - self._lead

    def flush(self) -> bytes:
        self._report_skipped()
        partial, self._buffer, self._lead = self._buffer[self._lead :], b"", 0
        return partial

    def feed(self, data: bytes) -> list[bytes]:
        data = self._buffer + data if self._buffer else data
        n = self.max_length
        end = self._end
        if end is None:
            whole = len(data) - len(data) % n
            self._buffer = data[whole:]
            return [data[i : i + n] for i in range(0, whole, n)]
        frames: list[bytes] = []
        tail = n - len(end)  # where a frame's end sequence begins
        pos = self._lead
        while len(data) - pos >= n:
            if data.startswith(end, pos + tail) and self._clear(data, pos):
                self._report_skipped()
                frames.append(data[pos : pos + n])
                pos += n
                continue
            following = self._next_start(data, pos + 1)
            self._skip(data[pos:following])
            pos = following
        keep = max(0, pos - len(end) + 1)  # to see an end sequence straddling pos
        self._buffer, self._lead = data[keep:], pos - keep
        return frames

    def _clear(self, data: bytes, at: int) -> bool:
        """No end sequence overlaps the bytes of a frame at ``at`` before its own end,
        and the frame does not begin with the last bytes of one (whose first bytes
        may have come before the port was opened)."""
        end = self._end
        assert end is not None
        width = len(end)
        own = at + self.max_length - width
        if data.find(end, max(at - width + 1, 0), own + width - 1) >= 0:
            return False
        return not any(data.startswith(end[k:], at) for k in range(1, width))

    def _next_start(self, data: bytes, earliest: int) -> int:
        """Where the next frame can begin, from ``earliest`` on: before an end sequence,
        over no other one; or where the bytes kept must begin to hold such a frame."""
        assert self._end is not None
        end, width = self._end, len(self._end)
        tail = self.max_length - width
        while True:
            found = data.find(end, earliest + tail)
            if found < 0:
                return max(earliest, len(data) - self.max_length + 1)
            inner = data.find(end, max(found - tail - width + 1, 0), found + width - 1)
            if inner < 0:
                return found - tail
            earliest = inner + width  # a frame starts after that end, if anywhere

    def _skip(self, raw: bytes) -> None:
        if len(self._skipped_raw) < self.max_length:
            self._skipped_raw += raw[: self.max_length - len(self._skipped_raw)]
        self._skipped += len(raw)

    def _report_skipped(self) -> None:
        if self._skipped:
            assert self._end is not None
            self._reject(
                self._skipped_raw,
                f"frame does not end in {shown(self._end)}: skipped {self._skipped} bytes "
                "to the next frame end",
            )
            self._skipped, self._skipped_raw = 0, b""
