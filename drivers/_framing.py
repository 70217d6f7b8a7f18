"""Framing: cutting a byte stream into frames, incrementally.

A serial port delivers bytes in whatever chunks the UART and the kernel happened to
make; a framer turns those chunks into complete frames. ``feed(data)`` returns the
frames that ``data`` completed and keeps the rest for the next call. Input that
cannot be a frame (an over-long line, garbage before a start sequence, a bad
checksum) goes to the ``reject`` callback with a reason, and the framer carries on
with the next frame: one bad frame never costs the good one after it.

Memory is bounded: between calls a framer holds less than one maximum-length frame,
whatever it is fed; rejected bytes handed to ``reject`` are capped the same way.

Framers know nothing of time. The driver calls ``expire()`` when the line has been
quiet for ``frame_timeout`` in the middle of a frame: that is how ``fixed`` framing
finds its step again after a lost byte, and how a binary frame with a damaged
length field stops holding back the good frames behind it.

The config, under a driver's ``framing:`` key, picks the framer by ``type``; for
example (one of these):

```yaml
- {type: line}                                  # "\\n"-terminated, a trailing "\\r" stripped
- {type: line, terminator: "\\r\\n", max_length: 512, nmea_checksum: true}
- {type: delimiter, delimiter: "\\x03"}          # e.g. STX ... ETX devices
- {type: fixed, length: 9, frame_timeout: 200ms}
- type: binary                                  # Plantower PMS5003
  start: "42 4d"
  length: {offset: 2, size: 2, byte_order: big, adjust: 4}
  checksum: {type: sum16}                       # last 2 bytes, over everything before
- type: binary                                  # Modbus RTU "read registers" response
  start: "01 03"
  length: {offset: 2, size: 1, adjust: 5}
  checksum: {type: crc16-modbus}                # little-endian, last 2 bytes
```
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BeforeValidator, Field, model_validator

from tidegate.driver import Reject
from tidegate.drivers._checksums import CHECKSUMS, ByteOrder, ChecksumKind, xor8
from tidegate.schema_types import Duration, Section

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


class _FramingBase(Section):
    frame_timeout: Duration | None = Field(
        None,
        gt=0,
        description="Drop a partly received frame (counted as a reject) when no byte has "
        "arrived for this long; this is how a framer without markers (`fixed`) finds "
        "its step again after a lost byte. Unset: wait forever.",
    )


class LineFraming(_FramingBase):
    """Text lines ending in a terminator."""

    type: Literal["line"] = Field("line", description="Frames are lines.")
    terminator: TextBytes = Field(b"\n", min_length=1, description="End-of-line bytes.")
    strip_cr: bool = Field(True, description="Remove one trailing `\\r` from each line.")
    max_length: int = Field(
        1024, ge=1, le=1 << 20, description="Longest line accepted, in bytes, terminator excluded."
    )
    skip_empty: bool = Field(True, description="Ignore empty lines instead of parsing them.")
    nmea_checksum: bool = Field(
        False,
        description="Lines end in an NMEA 0183 `*hh` checksum (XOR of the bytes after the "
        "leading `$`/`!`): verify it, reject mismatches, and strip it from the frame.",
    )


class DelimiterFraming(_FramingBase):
    """Frames separated by one delimiter byte."""

    type: Literal["delimiter"] = Field("delimiter", description="Frames end in a delimiter.")
    delimiter: TextBytes = Field(
        min_length=1, max_length=1, description='The delimiter byte, e.g. ";" or "\\x03".'
    )
    max_length: int = Field(
        1024, ge=1, le=1 << 20, description="Longest frame accepted, delimiter excluded."
    )
    skip_empty: bool = Field(True, description="Ignore empty frames (two delimiters in a row).")


class FixedFraming(_FramingBase):
    """Frames of a fixed length, back to back."""

    type: Literal["fixed"] = Field("fixed", description="Frames have a fixed length.")
    length: int = Field(ge=1, le=65536, description="Bytes per frame.")
    frame_timeout: Duration | None = Field(
        0.5,
        gt=0,
        description="Drop a partly received frame when no byte has arrived for this long, "
        "so a lost byte does not shift every later frame.",
    )


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
        "Default: the last bytes of the frame.",
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


class BinaryFraming(_FramingBase):
    """Binary frames: a start sequence, a length, optionally a checksum."""

    type: Literal["binary"] = Field("binary", description="Binary frames.")
    start: HexBytes = Field(
        min_length=1, max_length=16, description='Start sequence in hex, e.g. "42 4d".'
    )
    length: int | LengthField = Field(
        description="Total frame length in bytes, or a length field inside the frame."
    )
    checksum: ChecksumSpec | None = Field(None, description="Checksum to verify; none if unset.")
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
    def min_length(self) -> int:
        """Shortest frame that can hold the start, the length field and the checksum."""
        least = self.header_length
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
                    f"length field and checksum need ({self.min_length})"
                )
        elif self.max_length < self.min_length:
            raise ValueError(f"max_length must be at least {self.min_length}")
        return self


FramingConfig: TypeAlias = Annotated[
    LineFraming | DelimiterFraming | FixedFraming | BinaryFraming,
    Field(discriminator="type"),
]


class Framer(ABC):
    """Cuts a byte stream into frames; see the module docstring."""

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


class LineFramer(Framer):
    """Frames end in a terminator; also serves the one-byte ``delimiter`` framing."""

    def __init__(
        self,
        terminator: bytes,
        *,
        max_length: int,
        strip_cr: bool,
        skip_empty: bool,
        reject: Reject,
        nmea_checksum: bool = False,
    ) -> None:
        super().__init__(reject)
        self.max_length = max_length
        self._nmea = nmea_checksum
        self._terminator = terminator
        self._strip_cr = strip_cr
        self._skip_empty = skip_empty
        self._buffer = b""
        # While skipping the rest of an over-long frame we keep only the last few bytes,
        # in case a multi-byte terminator straddles two chunks.
        self._discarding = False
        self._carry = b""
        # A line of max_length plus its "\r" must still fit while we wait for the "\n".
        self._tail_limit = max_length + (1 if strip_cr else 0)

    def pending(self) -> int:
        return len(self._buffer) + len(self._carry)

    def flush(self) -> bytes:
        partial, self._buffer = self._buffer, b""
        self._discarding, self._carry = False, b""
        return partial

    def feed(self, data: bytes) -> list[bytes]:
        terminator = self._terminator
        if self._discarding:
            data = self._carry + data
            end = data.find(terminator)
            if end < 0:
                keep = len(terminator) - 1
                self._carry = data[-keep:] if keep else b""
                return []
            data = data[end + len(terminator) :]
            self._discarding, self._carry = False, b""
        if self._buffer:
            data = self._buffer + data
        parts = data.split(terminator)
        tail = parts.pop()
        frames: list[bytes] = []
        limit = self.max_length
        for part in parts:
            if self._strip_cr and part.endswith(b"\r"):
                part = part[:-1]  # noqa: PLW2901 - the stripped line is the frame
            if len(part) > limit:
                self._reject(part[:limit], f"frame longer than {limit} bytes")
            elif part or not self._skip_empty:
                if self._nmea:
                    checked = self._nmea_payload(part)
                    if checked is not None:
                        frames.append(checked)
                else:
                    frames.append(part)
        if len(tail) > self._tail_limit:
            self._reject(tail[:limit], f"frame longer than {limit} bytes")
            keep = len(terminator) - 1
            self._discarding, self._carry = True, tail[-keep:] if keep else b""
            tail = b""
        self._buffer = tail
        return frames

    def _nmea_payload(self, line: bytes) -> bytes | None:
        star = line.rfind(b"*")
        if star < 0 or len(line) - star != 3:
            self._reject(line, "no NMEA checksum (*hh) at the end of the line")
            return None
        body = line[1:star] if line[:1] in (b"$", b"!") else line[:star]
        try:
            carried = int(line[star + 1 :], 16)
        except ValueError:
            self._reject(line, "NMEA checksum is not two hex digits")
            return None
        computed = xor8(body)
        if carried != computed:
            self._reject(
                line,
                f"NMEA checksum mismatch (line carries {carried:02X}, computed {computed:02X})",
            )
            return None
        return line[:star]


def nmea_sentence(payload: bytes) -> bytes:
    """``payload`` with its NMEA ``*hh`` checksum appended."""
    body = payload[1:] if payload[:1] in (b"$", b"!") else payload
    return payload + b"*%02X" % xor8(body)


class FixedFramer(Framer):
    def __init__(self, length: int, reject: Reject) -> None:
        super().__init__(reject)
        self.max_length = length
        self._buffer = b""

    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> bytes:
        partial, self._buffer = self._buffer, b""
        return partial

    def feed(self, data: bytes) -> list[bytes]:
        data = self._buffer + data if self._buffer else data
        n = self.max_length
        whole = len(data) - len(data) % n
        self._buffer = data[whole:]
        return [data[i : i + n] for i in range(0, whole, n)]


class BinaryFramer(Framer):
    """Frames found by a start sequence, sized by a length, verified by a checksum.

    A candidate that fails (impossible length, bad checksum) is rejected and the
    search resumes one byte after its start, so a real frame hidden inside the
    rejected bytes is still found. Bytes already reported as part of a rejected
    frame are not reported again as garbage.
    """

    def __init__(self, config: BinaryFraming, reject: Reject) -> None:
        super().__init__(reject)
        self.max_length = config.longest
        self._start = config.start
        self._header = config.header_length
        self._min = config.min_length
        self._fixed = config.length if isinstance(config.length, int) else None
        self._field = config.length if isinstance(config.length, LengthField) else None
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
            problem = self._verify(frame) if self._checksum is not None else None
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
        if self._fixed is not None:
            return self._fixed
        assert self._field is not None
        at = pos + self._field.offset
        value = int.from_bytes(buffer[at : at + self._field.size], self._field.byte_order)
        return value + self._field.adjust

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
        spec = self._checksum
        assert spec is not None
        total = len(frame)
        size = self._size
        position = total - size if spec.position is None else spec.position
        if position < 0:
            position += total
        begin = spec.start + total if spec.start < 0 else spec.start
        end = position if spec.end is None else spec.end + total if spec.end < 0 else spec.end
        if not (0 <= position <= total - size and 0 <= begin <= end <= total):
            return f"frame of {total} bytes is too short for its checksum"
        carried = int.from_bytes(frame[position : position + size], self._order)
        computed = self._compute(frame[begin:end])
        if carried != computed:
            width = 2 * size
            return (
                f"checksum mismatch ({spec.type}: frame carries 0x{carried:0{width}x}, "
                f"computed 0x{computed:0{width}x})"
            )
        return None


def make_framer(config: FramingConfig, reject: Reject) -> Framer:
    """The framer a ``framing:`` section describes, reporting rejects to ``reject``."""
    if isinstance(config, LineFraming):
        return LineFramer(
            config.terminator,
            max_length=config.max_length,
            strip_cr=config.strip_cr,
            skip_empty=config.skip_empty,
            reject=reject,
            nmea_checksum=config.nmea_checksum,
        )
    if isinstance(config, DelimiterFraming):
        return LineFramer(
            config.delimiter,
            max_length=config.max_length,
            strip_cr=False,
            skip_empty=config.skip_empty,
            reject=reject,
        )
    if isinstance(config, FixedFraming):
        return FixedFramer(config.length, reject)
    return BinaryFramer(config, reject)


def seal_binary_frame(config: BinaryFraming, frame: bytearray) -> bytes:
    """Write the start sequence, length field and checksum into ``frame``.

    The inverse of ``BinaryFramer`` for devices we simulate and for tests: the
    caller lays out the payload at its datasheet offsets, this fills in the rest.
    """
    frame[: len(config.start)] = config.start
    total = len(frame)
    if isinstance(config.length, LengthField):
        field = config.length
        frame[field.offset : field.offset + field.size] = (total - field.adjust).to_bytes(
            field.size, field.byte_order
        )
    if config.checksum is not None:
        spec = config.checksum
        algorithm = CHECKSUMS[spec.type]
        position = total - algorithm.size if spec.position is None else spec.position
        if position < 0:
            position += total
        begin = spec.start + total if spec.start < 0 else spec.start
        end = position if spec.end is None else spec.end + total if spec.end < 0 else spec.end
        value = algorithm.compute(bytes(frame[begin:end]))
        frame[position : position + algorithm.size] = algorithm.encode(value, spec.byte_order)
    return bytes(frame)


def encode_frame(config: FramingConfig, payload: bytes) -> bytes:
    """Wrap ``payload`` the way the framing expects it on the wire.

    For ``fixed`` the payload is padded with zero bytes (or cut) to the length; for
    ``binary`` it goes right after the header, followed by the checksum.
    """
    if isinstance(config, LineFraming):
        if config.nmea_checksum:
            payload = nmea_sentence(payload)
        return payload + config.terminator
    if isinstance(config, DelimiterFraming):
        return payload + config.delimiter
    if isinstance(config, FixedFraming):
        return payload[: config.length].ljust(config.length, b"\0")
    checksum_size = CHECKSUMS[config.checksum.type].size if config.checksum else 0
    header = config.header_length
    if isinstance(config.length, int):
        room = config.length - header - checksum_size
        payload = payload[:room].ljust(room, b"\0")
    return seal_binary_frame(
        config, bytearray(header) + bytearray(payload) + bytearray(checksum_size)
    )
