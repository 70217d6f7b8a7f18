"""``binary`` framing: a start sequence, a length, optionally a checksum and an end sequence.

A candidate frame begins at the start sequence; its length is fixed or read from a
length field; then its end sequence (if configured) and its checksum (if
configured) must match. A candidate that fails any check is rejected with its raw
bytes and the search resumes one byte after its start, so a real frame hidden
inside the rejected bytes is still found.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tidegate.config.types import Duration, Section
from tidegate.driver import Reject
from tidegate.drivers.framing.base import Framer, FramingBase, HexBytes, shown
from tidegate.drivers.framing.checksums import CHECKSUMS, ByteOrder, ChecksumKind


class LengthField(Section):
    """Where a binary frame says how long it is."""

    offset: int = Field(ge=0, le=1024, description="Offset of the length field in the frame.")
    size: Literal[1, 2, 4] = Field(1, description="Width of the length field in bytes.")
    byte_order: ByteOrder = Field("big", description="`big` or `little` endian.")
    adjust: int = Field(
        0,
        ge=-65536,
        le=65536,
        description="Total frame length = field value + adjust (e.g. 4 when the field "
        "counts the bytes after a 2-byte start and a 2-byte length).",
    )


class ChecksumSpec(Section):
    """Which checksum a binary frame carries, where, and over which bytes."""

    type: ChecksumKind = Field(
        description="sum8, sum16, xor8, lrc8, crc8 (poly 0x07), crc16-modbus, crc16-ccitt."
    )
    byte_order: ByteOrder | None = Field(
        None,
        description="Byte order of a 16-bit checksum; default: the algorithm's custom "
        "(little for crc16-modbus, big otherwise).",
    )
    position: int | None = Field(
        None,
        ge=-65536,
        le=65535,
        description="Offset of the checksum in the frame; negative counts from the end. "
        "Default: the last bytes of the frame (before its `end` sequence, if any).",
    )
    start: int = Field(
        0, ge=-65536, le=65535, description="First byte covered; negative counts from the end."
    )
    end: int | None = Field(
        None,
        ge=-65536,
        le=65536,
        description="End (exclusive) of the covered bytes; negative counts from the end. "
        "Default: where the checksum starts.",
    )

    def span(self, total: int, tail: int) -> tuple[int, int, int]:
        """(checksum offset, first covered byte, end of the covered bytes) in a frame of
        ``total`` bytes whose last ``tail`` bytes are its end sequence."""
        size = CHECKSUMS[self.type].size
        position = total - tail - size if self.position is None else self.position
        if position < 0:
            position += total
        begin = self.start + total if self.start < 0 else self.start
        end = position if self.end is None else self.end + total if self.end < 0 else self.end
        return position, begin, end


class BinaryFraming(FramingBase):
    """Binary frames: a start sequence, a length, optionally a checksum and an end."""

    type: Literal["binary"] = Field("binary", description="Binary frames.")
    start: HexBytes = Field(
        min_length=1, max_length=16, description='Start sequence in hex, e.g. "42 4d".'
    )
    length: int | LengthField = Field(
        description="Total frame length in bytes, or a length field inside the frame."
    )
    checksum: ChecksumSpec | None = Field(None, description="Checksum to verify; none if unset.")
    end: HexBytes | None = Field(
        None,
        min_length=1,
        max_length=16,
        description='Bytes every frame ends in, in hex (e.g. "ab" for an SDS011): a frame '
        "that ends otherwise is rejected even when its checksum matches, and the search "
        "for the next frame resumes one byte after its start.",
    )
    max_length: int = Field(
        256,
        ge=1,
        le=65536,
        description="Longest frame accepted; a length field claiming more is a reject.",
    )
    frame_timeout: Duration | None = Field(
        0.5,
        gt=0,
        description="Give up a partly received frame when no byte has arrived for this "
        "long, and look for frames inside it: a damaged length field otherwise holds the "
        "frames behind it until `max_length` bytes have arrived.",
    )

    @property
    def header_length(self) -> int:
        """Bytes needed before the frame's length is known."""
        if isinstance(self.length, int):
            return len(self.start)
        return max(len(self.start), self.length.offset + self.length.size)

    @property
    def tail_length(self) -> int:
        """Bytes of the end sequence."""
        return len(self.end) if self.end is not None else 0

    @property
    def min_length(self) -> int:
        """Shortest frame that can hold the start, the length field, the checksum and
        the end sequence."""
        least = self.header_length + self.tail_length
        if self.checksum is not None:
            size = CHECKSUMS[self.checksum.type].size
            position = self.checksum.position
            if position is None:
                least += size  # at the end, after the header
            else:
                least = max(least, position + size if position >= 0 else -position)
        return least

    @property
    def longest(self) -> int:
        return self.length if isinstance(self.length, int) else self.max_length

    @model_validator(mode="after")
    def _lengths_fit(self) -> BinaryFraming:
        if isinstance(self.length, int):
            if self.length < self.min_length:
                raise ValueError(
                    f"length {self.length} is shorter than the start sequence, "
                    f"length field, checksum and end sequence need ({self.min_length})"
                )
        elif self.max_length < self.min_length:
            raise ValueError(f"max_length must be at least {self.min_length}")
        return self


class BinaryFramer(Framer):
    """Frames found by a start sequence, sized by a length, verified by an end sequence
    and a checksum.

    A candidate that fails (impossible length, wrong end, bad checksum) is rejected
    and the search resumes one byte after its start, so a real frame hidden inside
    the rejected bytes is still found. Bytes already reported as part of a rejected
    frame are not reported again as garbage.
    """

    def __init__(self, config: BinaryFraming, reject: Reject) -> None:
        super().__init__(reject)
        self.max_length = config.longest
        self._start = config.start
        self._end = config.end
        self._tail = config.tail_length
        self._header = config.header_length
        self._min = config.min_length
        self._length: int | LengthField = config.length
        self._checksum = config.checksum
        if config.checksum is not None:
            algorithm = CHECKSUMS[config.checksum.type]
            self._compute = algorithm.compute
            self._size = algorithm.size
            self._order: ByteOrder = config.checksum.byte_order or algorithm.byte_order
        self._buffer = bytearray()
        self._reported_to = 0  # buffer[:_reported_to] already went to reject

    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> bytes:
        partial = bytes(self._buffer[self._reported_to :])
        self._buffer.clear()
        self._reported_to = 0
        return partial

    def expire(self, reason: str) -> list[bytes]:
        buffer = self._buffer
        if not buffer:
            return []
        # Give up the stalled candidate up to the next start sequence, then rescan:
        # the frames its bogus length was swallowing come out now.
        following = buffer.find(self._start, 1)
        end = following if following > 0 else len(buffer)
        if end > self._reported_to:
            self._reject(bytes(buffer[self._reported_to : end]), reason)
        del buffer[:end]
        self._reported_to = 0
        return self.feed(b"")

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        start = self._start
        size = len(buffer)
        frames: list[bytes] = []
        pos = 0
        while True:
            found = buffer.find(start, pos)
            if found < 0:
                # The end of the buffer may be the first bytes of the next start sequence.
                cut = size - self._partial_start(buffer, pos)
                self._garbage(buffer, pos, cut)
                pos = cut
                break
            self._garbage(buffer, pos, found)
            pos = found
            if size - pos < self._header:
                break
            total = self._frame_length(buffer, pos)
            if not self._min <= total <= self.max_length:
                self._report(
                    bytes(buffer[pos : pos + self._header]),
                    f"impossible frame length {total} "
                    f"(allowed {self._min}..{self.max_length})",
                    pos + self._header,
                )
                pos += 1
                continue
            if size - pos < total:
                break
            frame = bytes(buffer[pos : pos + total])
            problem = self._verify(frame)
            if problem is not None:
                self._report(frame, problem, pos + total)
                pos += 1
                continue
            frames.append(frame)
            pos += total
        del buffer[:pos]
        self._reported_to = max(0, self._reported_to - pos)
        return frames

    def _frame_length(self, buffer: bytearray, pos: int) -> int:
        length = self._length
        if isinstance(length, int):
            return length
        at = pos + length.offset
        value = int.from_bytes(buffer[at : at + length.size], length.byte_order)
        return value + length.adjust

    def _partial_start(self, buffer: bytearray, pos: int) -> int:
        start = self._start
        for keep in range(min(len(start) - 1, len(buffer) - pos), 0, -1):
            if buffer.endswith(start[:keep]):
                return keep
        return 0

    def _garbage(self, buffer: bytearray, begin: int, end: int) -> None:
        begin = max(begin, self._reported_to)
        if end > begin:
            raw = bytes(buffer[begin : min(end, begin + self.max_length)])
            self._reject(raw, f"{end - begin} garbage bytes before the start sequence")

    def _report(self, raw: bytes, reason: str, reported_to: int) -> None:
        self._reject(raw, reason)
        self._reported_to = max(self._reported_to, reported_to)

    def _verify(self, frame: bytes) -> str | None:
        end = self._end
        if end is not None and not frame.endswith(end):
            # Checked before the checksum: a frame can carry a valid checksum over
            # bytes that are not the frame (its trailer is where the proof fails).
            return f"frame ends in {shown(frame[-len(end):])}, not in {shown(end)}"
        spec = self._checksum
        if spec is None:
            return None
        total = len(frame)
        size = self._size
        position, begin, stop = spec.span(total, self._tail)
        if not (0 <= position <= total - size and 0 <= begin <= stop <= total):
            return f"frame of {total} bytes is too short for its checksum"
        carried = int.from_bytes(frame[position : position + size], self._order)
        computed = self._compute(frame[begin:stop])
        if carried != computed:
            width = 2 * size
            return (
                f"checksum mismatch ({spec.type}: frame carries 0x{carried:0{width}x}, "
                f"computed 0x{computed:0{width}x})"
            )
        return None


def seal_binary_frame(config: BinaryFraming, frame: bytearray) -> bytes:
    """Write the start sequence, length field, checksum and end sequence into ``frame``.

    The inverse of ``BinaryFramer`` for devices we simulate and for tests: the
    caller lays out the payload at its datasheet offsets, this fills in the rest.
    """
    frame[: len(config.start)] = config.start
    total = len(frame)
    if config.end is not None:
        frame[total - len(config.end) :] = config.end
    if isinstance(config.length, LengthField):
        field = config.length
        frame[field.offset : field.offset + field.size] = (total - field.adjust).to_bytes(
            field.size, field.byte_order
        )
    if config.checksum is not None:
        spec = config.checksum
        algorithm = CHECKSUMS[spec.type]
        position, begin, end = spec.span(total, config.tail_length)
        value = algorithm.compute(bytes(frame[begin:end]))
        frame[position : position + algorithm.size] = algorithm.encode(value, spec.byte_order)
    return bytes(frame)
