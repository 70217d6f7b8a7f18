"""Framing: cutting a byte stream into frames, incrementally.

A serial port delivers bytes in whatever chunks the UART and the kernel happened to
make; a framer turns those chunks into complete frames. ``feed(data)`` returns the
frames that ``data`` completed and keeps the rest for the next call. Input that
cannot be a frame (an over-long line, garbage before a start sequence, a wrong end
sequence, a bad checksum) goes to the ``reject`` callback with a reason, and the
framer carries on with the next frame: one bad frame never costs the good one after
it.

Memory is bounded: between calls a framer holds less than one maximum-length frame,
whatever it is fed; rejected bytes handed to ``reject`` are capped the same way.

Framers know nothing of time. The driver calls ``expire()`` when the line has been
quiet for ``frame_timeout`` in the middle of a frame: that is how ``fixed`` framing
finds its step again after a lost byte, and how a binary frame with a damaged
length field stops holding back the good frames behind it.

This module holds the text framings (``line``, ``delimiter``) and brings in the
others (``fixed``, ``binary``). The config, under a driver's
``framing:`` key, picks the framer by ``type``; for example (one of these):

```yaml
- {type: line}                                  # "\\n"-terminated, a trailing "\\r" stripped
- {type: line, terminator: "\\r\\n", max_length: 512, nmea_checksum: true, start: "$"}
- {type: delimiter, delimiter: "\\x03", start: "\\x02"}   # STX ... ETX devices
- {type: fixed, length: 9, frame_timeout: 200ms}
- {type: fixed, length: 8, end: "0d 0a"}       # 6 data bytes, then CR LF
- type: binary                                  # Plantower PMS5003
  start: "42 4d"
  length: {offset: 2, size: 2, byte_order: big, adjust: 4}
  checksum: {type: sum16}                       # last 2 bytes, over everything before
- type: binary                                  # Modbus RTU "read registers" response
  start: "01 03"
  length: {offset: 2, size: 1, adjust: 5}
  checksum: {type: crc16-modbus}                # little-endian, last 2 bytes
- type: binary                                  # Nova SDS011 particulate sensor
  start: "aa c0"
  length: 10
  checksum: {type: sum8, start: 2}              # byte 8: sum of the data bytes 2..7
  end: "ab"
```
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import Field

from tidegate.driver import Reject
from tidegate.drivers.framing.base import Framer, FramingBase, HexBytes, TextBytes
from tidegate.drivers.framing.binary import (
    BinaryFramer,
    BinaryFraming,
    ChecksumSpec,
    LengthField,
    seal_binary_frame,
)
from tidegate.drivers.framing.checksums import CHECKSUMS, xor8
from tidegate.drivers.framing.fixed import FixedFramer, FixedFraming

__all__ = [
    "BinaryFramer",
    "BinaryFraming",
    "ChecksumSpec",
    "DelimiterFraming",
    "FixedFramer",
    "FixedFraming",
    "Framer",
    "FramingConfig",
    "HexBytes",
    "LengthField",
    "LineFramer",
    "LineFraming",
    "TextBytes",
    "encode_frame",
    "make_framer",
    "nmea_sentence",
    "seal_binary_frame",
]

_START_DESCRIPTION = (
    "Bytes every record begins with, e.g. `\"$\"` for NMEA 0183: a record is taken from "
    "the last start in the line on, the bytes before it are rejected as garbage (so "
    "noise glued to a record costs only the noise), and a line without it is rejected. "
    "Must not occur inside a record."
)


def _quoted(text: bytes) -> str:
    """A text marker as a reject reason shows it: like the config writes it."""
    return repr(text.decode("latin-1"))


class LineFraming(FramingBase):
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
    start: TextBytes | None = Field(
        None, min_length=1, max_length=16, description=_START_DESCRIPTION
    )


class DelimiterFraming(FramingBase):
    """Frames separated by one delimiter byte."""

    type: Literal["delimiter"] = Field("delimiter", description="Frames end in a delimiter.")
    delimiter: TextBytes = Field(
        min_length=1, max_length=1, description='The delimiter byte, e.g. ";" or "\\x03".'
    )
    max_length: int = Field(
        1024, ge=1, le=1 << 20, description="Longest frame accepted, delimiter excluded."
    )
    skip_empty: bool = Field(True, description="Ignore empty frames (two delimiters in a row).")
    start: TextBytes | None = Field(
        None, min_length=1, max_length=16, description=_START_DESCRIPTION
    )


FramingConfig: TypeAlias = Annotated[
    LineFraming | DelimiterFraming | FixedFraming | BinaryFraming,
    Field(discriminator="type"),
]


class LineFramer(Framer):
    """Frames end in a terminator; also serves the one-byte ``delimiter`` framing.

    With a ``start`` sequence, a line is cut at its last start: what comes before is
    garbage (or the remains of a record that lost its line end) and is rejected; a
    start also ends the skipping of an over-long line.
    """

    def __init__(
        self,
        terminator: bytes,
        *,
        max_length: int,
        strip_cr: bool,
        skip_empty: bool,
        reject: Reject,
        nmea_checksum: bool = False,
        start: bytes | None = None,
    ) -> None:
        super().__init__(reject)
        self.max_length = max_length
        self._nmea = nmea_checksum
        self._terminator = terminator
        self._start = start or None
        self._strip_cr = strip_cr
        self._skip_empty = skip_empty
        self._buffer = b""
        # While skipping the rest of an over-long frame we keep only the last few bytes,
        # in case a multi-byte terminator (or start) straddles two chunks.
        self._discarding = False
        self._carry = b""
        self._carry_length = max(len(terminator), len(start or b"")) - 1
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
            resume = self._resume_at(data)
            if resume < 0:
                keep = self._carry_length
                self._carry = data[-keep:] if keep else b""
                return []
            data = data[resume:]
            self._discarding, self._carry = False, b""
        if self._buffer:
            data = self._buffer + data
        parts = data.split(terminator)
        tail = parts.pop()
        frames: list[bytes] = []
        limit = self.max_length
        start = self._start
        for part in parts:
            if self._strip_cr and part.endswith(b"\r"):
                part = part[:-1]  # noqa: PLW2901 - the stripped line is the frame
            if start is not None and part:
                part = self._from_start(part, start)  # noqa: PLW2901 - the record in the line
                if not part:
                    continue
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
            tail = self._overlong_tail(tail)
        self._buffer = tail
        return frames

    def _resume_at(self, data: bytes) -> int:
        """Where the next frame begins in ``data`` while skipping an over-long one: after
        the next terminator, or at the next start sequence if that comes first."""
        end = data.find(self._terminator)
        resume = end + len(self._terminator) if end >= 0 else -1
        if self._start is not None:
            begins = data.find(self._start)
            if begins >= 0 and (end < 0 or begins < end):
                resume = begins
        return resume

    def _from_start(self, line: bytes, start: bytes) -> bytes:
        """The record in ``line`` from its last ``start`` sequence on (b"" if there is
        none); the bytes before it go to reject."""
        at = line.rfind(start)
        if at == 0:
            return line
        if at < 0:
            self._reject(line[: self.max_length], f"no start sequence {_quoted(start)} in the line")
            return b""
        self._reject(
            line[: min(at, self.max_length)],
            f"{at} garbage bytes before the start sequence {_quoted(start)}",
        )
        return line[at:]

    def _overlong_tail(self, tail: bytes) -> bytes:
        """An unterminated line grew past the limit: keep a record that starts in it (with
        a start sequence) and reject the rest, or reject it and skip to its end."""
        limit = self.max_length
        if self._start is not None:
            at = tail.rfind(self._start)
            if at > 0 and len(tail) - at <= self._tail_limit:
                self._reject(
                    tail[: min(at, limit)],
                    f"{at} garbage bytes before the start sequence {_quoted(self._start)}",
                )
                return tail[at:]
        self._reject(tail[:limit], f"frame longer than {limit} bytes")
        keep = self._carry_length
        self._discarding, self._carry = True, tail[-keep:] if keep else b""
        return b""

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
            start=config.start,
        )
    if isinstance(config, DelimiterFraming):
        return LineFramer(
            config.delimiter,
            max_length=config.max_length,
            strip_cr=False,
            skip_empty=config.skip_empty,
            reject=reject,
            start=config.start,
        )
    if isinstance(config, FixedFraming):
        return FixedFramer(config.length, reject, config.end)
    return BinaryFramer(config, reject)


def encode_frame(config: FramingConfig, payload: bytes) -> bytes:
    """Wrap ``payload`` the way the framing expects it on the wire.

    A ``start`` sequence is put before a text payload that does not begin with it;
    for ``fixed`` the payload is padded with zero bytes (or cut) to the length, before
    the end sequence; for ``binary`` it goes right after the header, followed by the
    checksum and the end sequence.
    """
    if isinstance(config, LineFraming | DelimiterFraming):
        if config.start is not None and not payload.startswith(config.start):
            payload = config.start + payload
        if isinstance(config, DelimiterFraming):
            return payload + config.delimiter
        if config.nmea_checksum:
            payload = nmea_sentence(payload)
        return payload + config.terminator
    if isinstance(config, FixedFraming):
        end = config.end or b""
        room = config.length - len(end)
        return payload[:room].ljust(room, b"\0") + end
    checksum_size = CHECKSUMS[config.checksum.type].size if config.checksum else 0
    header = config.header_length
    tail = checksum_size + config.tail_length
    if isinstance(config.length, int):
        room = config.length - header - tail
        payload = payload[:room].ljust(room, b"\0")
    return seal_binary_frame(config, bytearray(header) + bytearray(payload) + bytearray(tail))
