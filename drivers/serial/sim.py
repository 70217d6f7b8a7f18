"""A simulated serial device on a real pseudo-terminal.

``SerialSim`` opens a pty pair: the "device" writes to the master side, and the
slave side is a real tty path that the ``serial`` driver opens with pyserial exactly
as it opens ``/dev/ttyUSB0``. With ``link`` set, the slave is also reachable
through a symlink that plays the part of ``/dev/serial/by-id/...``: an unplug
closes the pty and removes the link; a replug makes a new pty at the same link.

The device speaks any framing x parse combination the driver understands: it
builds frames from the same ``framing:`` and ``parse:`` sections (a ``template``
fills in a text format such as ``regex`` that cannot be inverted), with values
from per-field signals (sine plus noise), at a rate, with injected faults.

Two ways to drive it:

- ``run()`` writes frames at ``rate``, injects faults at random, answers requests
  (``respond_to``) and unplugs on a schedule. The ``serial`` driver does this for
  ``port: sim``: it builds the device from its own ``sim:`` block
  (``SimDeviceOptions``) plus its ``framing`` and ``parse``, with typical signals for
  fields it recognises by name or unit (``typical_signal``) and ``respond_to`` set to
  its ``poll.request``, and reads the pty like any port;
- tests call ``write_frame(values, fault=...)`` (synchronous, exact content) and
  ``disconnect()`` / ``reconnect()``.

```yaml
link: /tmp/tidegate/serial/by-id/usb-sim-weather   # optional stable path
rate: 2                                             # frames per second
framing: {type: line}
parse:
  format: kv
  fields:
    T: {name: temperature, unit: "°C"}
    H: {name: humidity, unit: "%"}
signals:
  T: {base: 21, amplitude: 3, period: 10m, noise: 0.05}
  H: {base: 45, amplitude: 10, period: 1h}
faults: {garbage: 0.01, partial: 0.01, corrupt: 0.01, disconnect_every: 5m, disconnect_for: 3s}
```
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import os
import random
import re
import select
import string
import struct
import time
import tty
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeAlias

import orjson
from pydantic import Field, model_validator

from tidegate.config.types import Duration, Section
from tidegate.drivers.framing.checksums import CHECKSUMS
from tidegate.drivers.framing.lines import (
    BinaryFraming,
    DelimiterFraming,
    FixedFraming,
    FramingConfig,
    LineFraming,
    encode_frame,
    seal_binary_frame,
)
from tidegate.drivers.parsing.parse import (
    CsvParse,
    FieldSpec,
    JsonParse,
    KvParse,
    ParseConfig,
    RawParse,
    RegexParse,
    StructField,
    StructParse,
)
from tidegate.drivers.serial.commands import Command, command_bytes
from tidegate.errors import TidegateError

SimValue: TypeAlias = float | int | bool | str
Fault: TypeAlias = Literal["garbage", "partial", "corrupt"]

_STRUCT_CODES = {
    "u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "f32": "f", "f64": "d",
}
_INPUT_KEEP = 4096


class SimDeviceError(TidegateError):
    """The simulated device could not be created or written."""


class SignalSpec(Section):
    """A value that drifts like a real measurement: base + sine + noise."""

    base: float = Field(20.0, description="Centre value.")
    amplitude: float = Field(5.0, ge=0, description="Height of the sine swing.")
    period: Duration = Field(60.0, gt=0, description="Length of one sine cycle.")
    noise: float = Field(0.1, ge=0, description="Standard deviation of Gaussian noise.")


class SimFaults(Section):
    """Faults the device injects while ``run()`` writes frames."""

    garbage: float = Field(0.0, ge=0, le=1, description="Chance of garbage bytes before a frame.")
    partial: float = Field(0.0, ge=0, le=1, description="Chance a frame is cut short.")
    corrupt: float = Field(0.0, ge=0, le=1, description="Chance one byte of a frame is damaged.")
    disconnect_every: Duration | None = Field(
        None, gt=0, description="Unplug the device this often (the pty and link vanish)."
    )
    disconnect_for: Duration = Field(2.0, gt=0, description="How long it stays unplugged.")


class SimDeviceOptions(Section):
    """How a simulated serial device behaves; what it speaks is ``framing`` and ``parse``.

    This is the ``sim:`` block of a ``serial`` driver with ``port: sim``, which takes
    the framing and parse from the driver itself.
    """

    link: str | None = Field(
        None, description="Symlink to create to the pty (a stand-in for /dev/serial/by-id/...)."
    )
    rate: float = Field(1.0, gt=0, le=100_000, description="Frames per second `run()` writes.")
    template: str | None = Field(
        None,
        description="Text payload with {key} placeholders (Python format specs allowed), "
        "e.g. '$WIMDA,{pressure:.4f},B'; required for `regex`, optional for text formats.",
    )
    signals: dict[str, SignalSpec] = Field(
        default_factory=dict,
        description="Signal per field key; others get a typical one for their name or unit "
        "(temperature, humidity, pressure, particulates, CO2, voltage) or a default.",
    )
    frame_length: int | None = Field(
        None, ge=1, le=65536, description="Length of struct frames (default: just fits the fields)."
    )
    respond_to: Command | None = Field(
        None, description="Answer each occurrence of this request with one frame, instead of "
        "writing at `rate` (with `port: sim`, default: the driver's `poll.request`)."
    )
    faults: SimFaults = Field(default_factory=SimFaults, description="Injected faults.")
    seed: int | None = Field(None, description="Random seed, for a repeatable run.")


def check_encodable(parse: ParseConfig, template: str | None, *, where: str = "template") -> None:
    """Raise ValueError when a device cannot produce frames for ``parse``."""
    if isinstance(parse, RegexParse) and template is None:
        raise ValueError(f"a regex parser cannot be inverted: give `{where}`")
    if isinstance(parse, StructParse) and template is not None:
        raise ValueError(f"`{where}` is for text formats, not `struct`")


class SerialSimConfig(SimDeviceOptions):
    """A simulated serial sensor for ``tidegate simulate``, ``port: sim`` and the tests."""

    framing: FramingConfig = Field(
        default_factory=LineFraming, description="Same schema as the serial driver's."
    )
    parse: ParseConfig = Field(description="Same schema as the serial driver's: what to encode.")

    @model_validator(mode="after")
    def _encodable(self) -> SerialSimConfig:
        check_encodable(self.parse, self.template)
        return self


_TYPICAL: tuple[tuple[re.Pattern[str], frozenset[str], SignalSpec], ...] = (
    # (a field key or name that says what it is, units that do, a plausible indoor reading)
    (re.compile(r"temp"), frozenset({"°c", "degc", "c"}),
     SignalSpec(base=21.0, amplitude=3.0, period=600.0, noise=0.05)),
    (re.compile(r"hum|^rh$"), frozenset({"%rh"}),
     SignalSpec(base=45.0, amplitude=10.0, period=3600.0, noise=0.2)),
    (re.compile(r"press|baro"), frozenset({"hpa", "mbar"}),
     SignalSpec(base=1013.0, amplitude=4.0, period=3600.0, noise=0.1)),
    (re.compile(r"^pm\d"), frozenset({"µg/m³", "ug/m3"}),
     SignalSpec(base=12.0, amplitude=6.0, period=900.0, noise=1.0)),
    (re.compile(r"co2"), frozenset({"ppm"}),
     SignalSpec(base=600.0, amplitude=150.0, period=1800.0, noise=5.0)),
    (re.compile(r"volt|^v(bat|cc|in)?$"), frozenset({"v"}),
     SignalSpec(base=12.6, amplitude=0.3, period=3600.0, noise=0.02)),
)


def typical_signal(key: str, name: str | None, unit: str | None) -> SignalSpec | None:
    """A realistic signal for a field called ``key``/``name`` in ``unit``, if one fits."""
    words = [key.lower(), (name or "").lower()]
    for pattern, _, signal in _TYPICAL:
        if any(pattern.search(word) for word in words if word):
            return signal
    for _, units, signal in _TYPICAL:
        if unit is not None and unit.lower() in units:
            return signal
    return None


def typical_signals(config: SerialSimConfig) -> dict[str, SignalSpec]:
    """Typical signals for the fields of ``config`` that have one (see ``typical_signal``)."""
    parse = config.parse
    specs: Mapping[str, FieldSpec | StructField] = (
        parse.fields if not isinstance(parse, RawParse) else {}
    )
    found: dict[str, SignalSpec] = {}
    for key in _field_keys(config):
        spec = specs.get(key)
        signal = typical_signal(key, spec.name if spec else None, spec.unit if spec else None)
        if signal is not None:
            found[key] = signal
    return found


def _field_keys(config: SerialSimConfig) -> list[str]:
    parse = config.parse
    if config.template is not None:
        return [name for _, name, _, _ in string.Formatter().parse(config.template) if name]
    if isinstance(parse, CsvParse):
        return [column for column in parse.columns if column not in ("", "_")]
    if isinstance(parse, StructParse):
        return list(parse.fields)
    if isinstance(parse, RawParse):
        return ["value"]
    keys = list(parse.fields) or list(config.signals) or ["value"]
    if parse.timestamp is not None and parse.timestamp.field not in keys:
        keys.append(parse.timestamp.field)
    return keys


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
    return frame


def _struct_length(config: SerialSimConfig, parse: StructParse) -> int:
    if config.frame_length is not None:
        return config.frame_length
    framing = config.framing
    if isinstance(framing, FixedFraming):
        return framing.length
    if isinstance(framing, BinaryFraming) and isinstance(framing.length, int):
        return framing.length
    end = max(
        spec.offset + struct.calcsize(_STRUCT_CODES[spec.type]) for spec in parse.fields.values()
    )
    if isinstance(framing, BinaryFraming):
        tail = CHECKSUMS[framing.checksum.type].size if framing.checksum else 0
        return max(end, framing.header_length) + tail + framing.tail_length
    return end


class SerialSim:
    """A serial device on a pty; see the module docstring."""

    def __init__(self, config: SerialSimConfig) -> None:
        self.config = config
        self.master: int | None = None
        self._slave: int | None = None
        self.slave_name: str | None = None
        self.responding = True
        """Answer requests (``respond_to``); tests turn it off to test timeouts."""
        self.frames_written = 0
        self.bytes_dropped = 0
        """Bytes ``run()`` could not write because nobody read them (a UART overruns too)."""
        self.requests = 0
        """Requests (``respond_to``) seen from the host."""
        self.received = bytearray()
        """The last bytes the host wrote to the device, for tests."""
        self._keys = _field_keys(config)
        self._rng = random.Random(config.seed)
        self._epoch = time.monotonic()
        self._request = command_bytes(config.respond_to) if config.respond_to is not None else None
        self._pending_input = bytearray()

    # --- the pty --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.master is not None

    @property
    def path(self) -> str:
        """What a driver opens: the link if there is one, else the pty's own name."""
        if self.config.link is not None:
            return self.config.link
        if self.slave_name is None:
            raise SimDeviceError("the simulated device is not plugged in")
        return self.slave_name

    def open(self) -> None:
        """Plug the device in: create the pty (and the link)."""
        if self.master is not None:
            return
        master, slave = os.openpty()
        # Raw mode: no echo back to the device, no line editing, no CR/LF translation.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        if self.config.link is not None:
            link = Path(self.config.link)
            link.parent.mkdir(parents=True, exist_ok=True)
            temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(self.slave_name)
            temporary.replace(link)  # atomic: a reader never sees a missing or half link

    def close(self) -> None:
        """Unplug: the pty goes away (the host's reads fail with EIO) and so does the link."""
        if self.config.link is not None:
            with contextlib.suppress(FileNotFoundError):
                Path(self.config.link).unlink()
        for fd in (self.master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self._slave = None
        self._pending_input.clear()

    def disconnect(self) -> None:
        self.close()

    def reconnect(self) -> None:
        self.close()
        self.open()

    def __enter__(self) -> SerialSim:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- frames -----------------------------------------------------------------------

    def sample(self, now: float | None = None) -> dict[str, SimValue]:
        """Values for every field at ``now`` (monotonic seconds), from their signals."""
        moment = time.monotonic() if now is None else now
        values: dict[str, SimValue] = {}
        parse = self.config.parse
        fields: Mapping[str, FieldSpec] = (
            parse.fields if isinstance(parse, JsonParse | CsvParse | KvParse | RegexParse) else {}
        )
        timestamp = getattr(parse, "timestamp", None)
        for key in self._keys:
            if timestamp is not None and key == timestamp.field:
                wall = time.time()
                if timestamp.format == "unix":
                    values[key] = round(wall, 3)
                elif timestamp.format == "unix_ms":
                    values[key] = int(wall * 1000)
                else:
                    values[key] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
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

    def write_frame(
        self,
        values: Mapping[str, SimValue] | None = None,
        *,
        fault: Fault | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> bytes:
        """Write ``count`` frames (optionally damaged) now; return the bytes written."""
        one = self.frame(values)
        data = (self.faulty(one, fault) if fault else one) * count
        self.write_bytes(data, timeout=timeout)
        self.frames_written += count
        return data

    def write_bytes(self, data: bytes, *, timeout: float = 5.0) -> None:
        """Write all of ``data``, waiting up to ``timeout`` for the host to read."""
        master = self.master
        if master is None:
            raise SimDeviceError("the simulated device is not plugged in")
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                view = view[os.write(master, view) :]
                continue
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimDeviceError(f"the host did not read {len(view)} bytes in {timeout} s")
            select.select([], [master], [], left)

    def _write_nowait(self, data: bytes) -> None:
        """Write what fits; like a UART without flow control, the rest is lost."""
        if self.master is None:
            return
        try:
            written = os.write(self.master, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            written = 0
        self.bytes_dropped += len(data) - written

    # --- host -> device ---------------------------------------------------------------

    def _on_input(self) -> None:
        if self.master is None:
            return
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        self.received += data
        del self.received[:-_INPUT_KEEP]
        if self._request is None:
            return
        self._pending_input += data
        while True:
            found = self._pending_input.find(self._request)
            if found < 0:
                del self._pending_input[: -len(self._request)]
                return
            del self._pending_input[: found + len(self._request)]
            self.requests += 1
            if self.responding:
                self._write_nowait(self.frame())
                self.frames_written += 1

    # --- the simulation loop ----------------------------------------------------------

    async def run(self) -> None:
        """Be the device until cancelled: frames at ``rate``, faults, unplugs, replies."""
        loop = asyncio.get_running_loop()
        faults = self.config.faults
        self.open()
        watched: int | None = None
        started = loop.time()
        sent = 0
        next_unplug = started + faults.disconnect_every if faults.disconnect_every else math.inf
        try:
            while True:
                if self.master != watched:
                    if watched is not None:
                        loop.remove_reader(watched)
                    watched = self.master
                    if watched is not None:
                        loop.add_reader(watched, self._on_input)
                now = loop.time()
                if now >= next_unplug:
                    if watched is not None:
                        loop.remove_reader(watched)
                        watched = None
                    self.disconnect()
                    await asyncio.sleep(faults.disconnect_for)
                    self.open()
                    assert faults.disconnect_every is not None
                    next_unplug = loop.time() + faults.disconnect_every
                    continue
                if self._request is not None:
                    # Request/response device: replies come from _on_input.
                    await asyncio.sleep(min(next_unplug - now, 1.0))
                    continue
                due = int((now - started) * self.config.rate)
                if due > sent:
                    burst = [self._next_frame() for _ in range(min(due - sent, 1000))]
                    self._write_nowait(b"".join(burst))
                    self.frames_written += len(burst)
                    sent = due
                wait = (sent + 1) / self.config.rate - (loop.time() - started)
                await asyncio.sleep(max(0.0, min(wait, next_unplug - loop.time())))
        finally:
            if watched is not None:
                loop.remove_reader(watched)

    def _next_frame(self) -> bytes:
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
