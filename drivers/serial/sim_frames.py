"""The frames a simulated serial device sends: values from its signals, encoded as its
``framing`` and ``parse`` say, and on request damaged the way a noisy line damages them.

``FrameMaker`` is what ``SerialSim`` (the device on a pty) writes; it does no I/O
itself, so tests can build frames of any framing x parse combination to compare
with what the driver made of them.
"""

from __future__ import annotations

import math
import random
import struct
import time
from collections.abc import Mapping
from typing import Literal, TypeAlias

import orjson

from tidegate.drivers.framing.checksums import CHECKSUMS
from tidegate.drivers.framing.lines import (
    BinaryFraming,
    DelimiterFraming,
    FixedFraming,
    LineFraming,
    encode_frame,
    seal_binary_frame,
)
from tidegate.drivers.parsing.config import (
    CsvParse,
    FieldSpec,
    JsonParse,
    KvParse,
    RawParse,
    RegexParse,
    StructParse,
)
from tidegate.drivers.parsing.device_time import device_time
from tidegate.drivers.serial.sim_config import SerialSimConfig, SignalSpec, field_keys

SimValue: TypeAlias = float | int | bool | str
Fault: TypeAlias = Literal["garbage", "partial", "corrupt"]

_STRUCT_CODES = {
    "u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "f32": "f", "f64": "d",
}


def _text(value: SimValue) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else repr(value)
    return str(value)


def _raw_for_field(spec: FieldSpec | None, value: SimValue) -> SimValue:
    """The value the device must send so the parser's conversion gives back ``value``."""
    if spec is None:
        return value
    if spec.type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return (value - spec.bias) / spec.scale if spec.scale else value
    if spec.type == "int" and isinstance(value, int | float) and not isinstance(value, bool):
        return round(value)
    if spec.type == "bool" and not isinstance(value, str):
        return bool(value)
    return value


def _pack_struct(parse: StructParse, values: Mapping[str, SimValue], length: int) -> bytearray:
    frame = bytearray(length)
    for key, spec in parse.fields.items():
        value = values.get(key, 0)
        number = float(value) if not isinstance(value, str) else 0.0
        raw = (number - spec.bias) / spec.scale if spec.scale else number
        code = _STRUCT_CODES[spec.type]
        order = ">" if (spec.byte_order or parse.byte_order) == "big" else "<"
        if code in "fd":
            packed = struct.pack(order + code, raw)
        else:
            bits = struct.calcsize(code) * 8
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if code.islower() else (
                0, (1 << bits) - 1)
            packed = struct.pack(order + code, min(max(round(raw), low), high))
        frame[spec.offset : spec.offset + len(packed)] = packed
    clock = parse.time_field
    if clock is not None:  # a device with a good clock: now, in its unit
        now = time.time()
        order = ">" if (clock.byte_order or parse.byte_order) == "big" else "<"
        layout = struct.Struct(order + ("I" if clock.type == "u32" else "Q"))
        frame[clock.offset : clock.offset + layout.size] = layout.pack(
            int(now * 1000) if clock.format == "epoch_ms" else int(now)
        )
    return frame


def _struct_length(config: SerialSimConfig, parse: StructParse) -> int:
    if config.frame_length is not None:
        return config.frame_length
    framing = config.framing
    if isinstance(framing, FixedFraming):
        return framing.length
    if isinstance(framing, BinaryFraming) and isinstance(framing.length, int):
        return framing.length
    ends = [
        spec.offset + struct.calcsize(_STRUCT_CODES[spec.type]) for spec in parse.fields.values()
    ]
    if parse.time_field is not None:
        ends.append(parse.time_field.offset + (4 if parse.time_field.type == "u32" else 8))
    end = max(ends)
    if isinstance(framing, BinaryFraming):
        tail = CHECKSUMS[framing.checksum.type].size if framing.checksum else 0
        return max(end, framing.header_length) + tail + framing.tail_length
    return end


class FrameMaker:
    """Valid and damaged frames of the device ``config`` describes."""

    def __init__(self, config: SerialSimConfig) -> None:
        self.config = config
        self._keys = field_keys(config)
        self._rng = random.Random(config.seed)
        self._epoch = time.monotonic()

    def sample(self, now: float | None = None) -> dict[str, SimValue]:
        """Values for every field at ``now`` (monotonic seconds), from their signals."""
        moment = time.monotonic() if now is None else now
        values: dict[str, SimValue] = {}
        parse = self.config.parse
        fields: Mapping[str, FieldSpec] = (
            parse.fields if isinstance(parse, JsonParse | CsvParse | KvParse | RegexParse) else {}
        )
        clock = (
            parse.time_field if isinstance(parse, JsonParse | CsvParse | KvParse | RegexParse)
            else None
        )
        for key in self._keys:
            if clock is not None and key in (clock.field, clock.date_field):
                values[key] = device_time(clock, key, time.time())
                continue
            signal = self.config.signals.get(key) or SignalSpec()
            phase = 2 * math.pi * (moment - self._epoch) / signal.period
            reading = signal.base + signal.amplitude * math.sin(phase)
            reading += self._rng.gauss(0.0, signal.noise) if signal.noise else 0.0
            spec = fields.get(key)
            kind = spec.type if spec is not None else "number"
            if kind == "int":
                values[key] = round(reading)
            elif kind == "bool":
                values[key] = reading >= signal.base
            elif kind == "string":
                values[key] = f"s{round(reading)}"
            else:
                values[key] = round(reading, 3)
        return values

    def payload(self, values: Mapping[str, SimValue]) -> bytes:
        """The frame's content (before framing) that parses back to ``values``."""
        config = self.config
        parse = config.parse
        if isinstance(parse, StructParse):
            return bytes(_pack_struct(parse, values, _struct_length(config, parse)))
        fields: Mapping[str, FieldSpec] = (
            parse.fields if not isinstance(parse, RawParse) else {}
        )
        raw = {key: _raw_for_field(fields.get(key), value) for key, value in values.items()}
        encoding = "utf-8" if parse.encoding == "hex" else parse.encoding
        if config.template is not None:
            text = config.template.format(**raw)
        elif isinstance(parse, JsonParse):
            nested: dict[str, object] = {}
            for key, value in raw.items():
                node = nested
                *parents, leaf = key.split(".")
                for parent in parents:
                    child = node.setdefault(parent, {})
                    assert isinstance(child, dict)
                    node = child
                node[leaf] = value
            return orjson.dumps(nested)
        elif isinstance(parse, CsvParse):
            text = parse.delimiter.join(
                _text(raw.get(column, 0)) for column in parse.columns
            )
        elif isinstance(parse, KvParse):
            text = parse.pair_separator.join(
                f"{key}{parse.kv_separator}{_text(value)}" for key, value in raw.items()
            )
        else:
            text = _text(raw.get("value", ""))
        if isinstance(parse, RawParse) and parse.encoding == "hex":
            return text.encode()
        return text.encode(encoding)

    def frame(self, values: Mapping[str, SimValue] | None = None) -> bytes:
        """A complete, valid frame on the wire for ``values`` (default: sampled now)."""
        values = self.sample() if values is None else values
        framing = self.config.framing
        payload = self.payload(values)
        if isinstance(framing, BinaryFraming) and isinstance(self.config.parse, StructParse):
            return seal_binary_frame(framing, bytearray(payload))
        return encode_frame(framing, payload)

    def garbage(self) -> bytes:
        """Noise that can never be a valid frame of this device, ending where a frame may."""
        count = self._rng.randint(1, 24)
        framing = self.config.framing
        if isinstance(framing, BinaryFraming):
            # Any bytes but the first start byte: the framer must skip all of it.
            first = framing.start[0]
            return bytes(b if b != first else (b + 1) & 0xFF for b in self._rng.randbytes(count))
        # Continuation bytes 0x80-0xBF are never valid UTF-8 and never a terminator.
        noise = bytes(0x80 | self._rng.getrandbits(6) for _ in range(count))
        if isinstance(framing, LineFraming):
            return noise + framing.terminator  # a noise line (without a start sequence)
        if isinstance(framing, DelimiterFraming):
            return noise + framing.delimiter
        if isinstance(framing, FixedFraming) and framing.end is not None:
            # Fewer bytes than a frame, none of them the end: the framer must step over them.
            first = framing.end[0]
            return bytes(b if b != first else (b + 1) & 0xFF for b in noise[: framing.length - 1])
        return encode_frame(framing, noise)

    def faulty(self, frame: bytes, fault: Fault) -> bytes:
        """``frame`` damaged by ``fault``."""
        if fault == "garbage":
            return self.garbage() + frame
        if fault == "partial":
            return frame[: max(1, len(frame) // 2)]
        damaged = bytearray(frame)
        framing = self.config.framing
        # Damage the payload, not the start sequence or the terminator, so the damage
        # shows as a bad checksum or an unparsable frame.
        first = len(framing.start) if isinstance(framing, BinaryFraming) else 0
        last = len(frame) - (len(framing.terminator) if isinstance(framing, LineFraming) else 0)
        if isinstance(framing, LineFraming) and framing.nmea_checksum:
            last -= 3
        if isinstance(framing, BinaryFraming | FixedFraming) and framing.end is not None:
            last -= len(framing.end)
        at = self._rng.randrange(first, max(first + 1, last))
        damaged[at] = 0xFF if not isinstance(framing, BinaryFraming) else damaged[at] ^ 0x5A
        return bytes(damaged)

    def next_frame(self) -> bytes:
        """A frame as ``run()`` sends it: damaged now and then, as ``faults`` says."""
        frame = self.frame()
        faults = self.config.faults
        roll = self._rng.random()
        if roll < faults.garbage:
            return self.faulty(frame, "garbage")
        roll -= faults.garbage
        if roll < faults.partial:
            return self.faulty(frame, "partial")
        roll -= faults.partial
        if roll < faults.corrupt:
            return self.faulty(frame, "corrupt")
        return frame
