"""``fixed`` framing: frames of one length, back to back, optionally ending in an end sequence.

Without markers a lost byte shifts every later frame; only ``frame_timeout`` (the
sensor pausing between frames) puts the framer back in step. With ``end:`` each
frame must end in the given bytes: a frame that does not is rejected with its raw
bytes, and the framer steps forward to the next place where a frame could end (the
next occurrence of the end sequence), so a lost or extra byte costs the frames it
touched, not every frame after it. A frame that holds the end sequence anywhere
else is rejected too: it cannot be told from the remains of two frames. So the end
sequence must not occur in a payload (text records ending in CR LF are the usual
case); single bytes of it may (a u8 of 10 is a 0a). Where the bytes before a frame
are not the end of a frame taken (after skipped bytes, or right after the port
opened or the line went quiet) a frame may not begin with the end's last bytes
either: they could be the rest of an end whose first bytes were lost or never
received. Payloads that can hold the whole sequence need ``binary`` framing with a
checksum.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tidegate.config.types import Duration
from tidegate.driver import Reject
from tidegate.drivers.framing.base import Framer, FramingBase, HexBytes, shown
from tidegate.wording import count


class FixedFraming(FramingBase):
    """Frames of a fixed length, back to back."""

    type: Literal["fixed"] = Field("fixed", description="Frames have a fixed length.")
    length: int = Field(ge=1, le=65536, description="Bytes per frame (end sequence included).")
    end: HexBytes | None = Field(
        None,
        min_length=1,
        max_length=16,
        description='Bytes every frame ends in, in hex (e.g. "0d 0a" or "ab"): a frame that '
        "ends otherwise, or holds the sequence anywhere else, is rejected (it cannot be "
        "told from two frames run together), and the framer moves on to the next place "
        "a frame can end, so a lost byte costs only the frames it touched. Data may hold "
        "single bytes of the sequence; for payloads that can hold all of it use "
        "`binary` framing with a checksum.",
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
    other: in back-to-back frames the previous frame's end comes right before a frame,
    never inside it, so bytes over one are the remains of two frames run together.
    Where the bytes before a frame are not a frame the framer took (after skipped
    bytes, or since the port opened or the buffer was flushed), the frame may not
    begin with the end's last bytes, nor may an end sequence straddle its start: it
    could be an end's remains. After a frame that fails, the next one is looked for
    where an end sequence could close it.
    """

    def __init__(self, length: int, reject: Reject, end: bytes | None = None) -> None:
        super().__init__(reject)
        self.max_length = length
        self._end = end or None
        self._buffer = b""
        # While out of step: the bytes skipped so far, the first of them and why, so that
        # one lost byte is one reject however the stream was chunked; and how many bytes
        # at the front of the buffer are kept only to see an end sequence straddling it.
        self._skipped = 0
        self._skipped_raw = b""
        self._skipped_why = ""
        self._lead = 0
        # Whether the bytes right before the next frame are the end of a frame taken:
        # only then is a frame that begins with the end's last bytes not its remains.
        self._in_step = False

    def pending(self) -> int:
        return len(self._buffer) - self._lead

    def flush(self) -> bytes:
        self._report_skipped()
        partial, self._buffer, self._lead = self._buffer[self._lead :], b"", 0
        self._in_step = False
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
        pos = self._lead
        while len(data) - pos >= n:
            fault = self._fault(data, pos, end)
            if fault is None:
                self._report_skipped()
                frames.append(data[pos : pos + n])
                pos += n
                self._in_step = True
                continue
            following = self._next_start(data, pos + 1, end)
            self._skip(data[pos:following], fault)
            self._in_step = False
            pos = following
        keep = max(0, pos - len(end) + 1)  # to see an end sequence straddling pos
        self._buffer, self._lead = data[keep:], pos - keep
        return frames

    def _fault(self, data: bytes, at: int, end: bytes) -> str | None:
        """Why the ``length`` bytes at ``at`` are not a frame ending in ``end``; None when
        they are."""
        width = len(end)
        own = at + self.max_length - width
        if not data.startswith(end, own):
            return f"frame does not end in {shown(end)}"
        # Right after a frame taken, the end before ``at`` is that frame's. Else the
        # bytes before are unknown (lost bytes, or ones before the port opened): a frame
        # may not begin with the last bytes of an end, nor hold one across its start.
        first = at if self._in_step else max(at - width + 1, 0)
        if data.find(end, first, own + width - 1) >= 0:
            return f"frame holds {shown(end)} before its end (the remains of two frames?)"
        if not self._in_step and any(data.startswith(end[k:], at) for k in range(1, width)):
            return (
                f"frame begins with the last bytes of {shown(end)} "
                "after bytes not known to end a frame (the rest of an end?)"
            )
        return None

    def _next_start(self, data: bytes, earliest: int, end: bytes) -> int:
        """Where the next frame can begin, from ``earliest`` on: before an ``end``
        sequence, over no other one; or where the bytes kept must begin to hold such a
        frame."""
        width = len(end)
        tail = self.max_length - width
        while True:
            found = data.find(end, earliest + tail)
            if found < 0:
                return max(earliest, len(data) - self.max_length + 1)
            inner = data.find(end, max(found - tail - width + 1, 0), found + width - 1)
            if inner < 0:
                return found - tail
            earliest = inner + width  # a frame starts after that end, if anywhere

    def _skip(self, raw: bytes, why: str) -> None:
        if not self._skipped:
            self._skipped_why = why
        if len(self._skipped_raw) < self.max_length:
            self._skipped_raw += raw[: self.max_length - len(self._skipped_raw)]
        self._skipped += len(raw)

    def _report_skipped(self) -> None:
        if self._skipped:
            skipped = count(self._skipped, "byte")
            self._reject(
                self._skipped_raw, f"{self._skipped_why}: skipped {skipped} to the next frame end"
            )
            self._skipped, self._skipped_raw = 0, b""
