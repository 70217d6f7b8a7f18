"""The values a simulated Modbus device serves, and how they reach its tables.

Each register of a device's map gets a generator (from ``sim.values``, or a
default that fits its name, unit and type) that gives its value in engineering
units at a time; ``RegisterFeeder`` turns those values into the words the map
says (through the driver's own ``codec.encode``, so scale, offset, byte and word
order are served exactly as a real device would) and writes them into the
slave's tables just before a request is served (at most every ``REFRESH``
seconds, a meter's measurement cycle). A register a master wrote keeps the
written value (a setpoint stays set).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Mapping

from tidegate.config.located_errors import LocatedError
from tidegate.drivers.modbus.codec import RegisterCodec, Writable
from tidegate.drivers.modbus.config import ModbusDevice
from tidegate.drivers.modbus.registers import BIT_TABLES, RegisterSpec
from tidegate.drivers.modbus.sim_config import (
    CounterValue,
    FixedValue,
    ModbusSimSection,
    SimValue,
    ToggleValue,
    WaveValue,
)
from tidegate.drivers.modbus.sim_pdu import SlaveTables, Table
from tidegate.errors import TidegateError

REFRESH = 0.02
"""Seconds between two updates of a device's values (its measurement cycle)."""


class SimConfigError(TidegateError):
    """The ``sim:`` block does not fit the register map (a value for no register, a
    text for a number, ...)."""


_DEFAULTS: tuple[tuple[re.Pattern[str], frozenset[str], SimValue], ...] = (
    # (a register name that says what it is, units that do, a plausible reading)
    (re.compile(r"energy|kwh|total|import|export|_count|counter|hours"),
     frozenset({"kwh", "wh", "mwh", "kvarh", "m3", "m³", "h"}),
     CounterValue(kind="counter", start=1000.0, increase=1.5, every=3600.0)),
    (re.compile(r"factor|^pf|cos"), frozenset(),
     WaveValue(base=0.95, amplitude=0.03, period=300.0, noise=0.005)),
    (re.compile(r"freq"), frozenset({"hz"}),
     WaveValue(base=50.0, amplitude=0.05, period=120.0, noise=0.01)),
    (re.compile(r"volt|^u\d?$|^v(_?l?\d)?$"), frozenset({"v"}),
     WaveValue(base=230.0, amplitude=3.0, period=600.0, noise=0.2)),
    (re.compile(r"curr|amp|^i\d?$"), frozenset({"a"}),
     WaveValue(base=5.0, amplitude=3.0, period=120.0, noise=0.05)),
    (re.compile(r"power|watt"), frozenset({"w", "kw", "va", "var"}),
     WaveValue(base=1200.0, amplitude=800.0, period=120.0, noise=10.0)),
    (re.compile(r"temp"), frozenset({"°c", "degc", "c"}),
     WaveValue(base=21.0, amplitude=3.0, period=600.0, noise=0.05)),
    (re.compile(r"hum|^rh$"), frozenset({"%rh", "%"}),
     WaveValue(base=45.0, amplitude=10.0, period=3600.0, noise=0.2)),
)
_FALLBACK = WaveValue(base=10.0, amplitude=5.0, period=60.0, noise=0.0)
_BITS = ToggleValue(kind="toggle", every=30.0)


def default_value(spec: RegisterSpec) -> SimValue:
    """A plausible generator for a register nobody configured one for."""
    if spec.type in {"bool", "bitfield"}:
        return _BITS
    if spec.type == "string":
        return FixedValue(kind="fixed", value=f"SIM {spec.name}"[: 2 * spec.words])
    name, unit = spec.name.lower(), (spec.unit or "").lower()
    for pattern, units, value in _DEFAULTS:
        if pattern.search(name) or unit in units:
            if isinstance(value, WaveValue) and spec.type.startswith("u"):
                return value.model_copy(update={"base": max(value.base, value.amplitude * 1.5)})
            return value
    return _FALLBACK


class Generator:
    """One register's value over time."""

    __slots__ = ("_rng", "spec", "value")

    def __init__(self, value: SimValue, spec: RegisterSpec, rng: random.Random) -> None:
        self.value, self.spec, self._rng = value, spec, rng

    def at(self, elapsed: float) -> Writable:
        """The engineering value ``elapsed`` seconds into the simulation."""
        value = self.value
        if isinstance(value, FixedValue):
            return value.value
        if isinstance(value, ToggleValue):
            on = value.start != (int(elapsed // value.every) % 2 == 1)
            if self.spec.type == "bitfield":
                return {name: on for name in self.spec.bits} if self.spec.bits else int(on)
            return on
        if isinstance(value, CounterValue):
            number = value.start + value.increase * elapsed / value.every
        else:
            number = value.base + value.amplitude * math.sin(2 * math.pi * elapsed / value.period)
            if value.noise:
                number += self._rng.gauss(0.0, value.noise)
        if self.spec.type == "bool":
            return number >= 0.5
        if self.spec.type[0] in "ui" and self.spec.scale is None:
            return round(number)  # an unscaled integer register holds whole numbers
        return number


def _table(spec: RegisterSpec) -> Table:
    return Table(spec.table)


class RegisterFeeder:
    """Keeps one device's tables at the generators' values; ``refresh`` is the
    ``SimSlave.refresh`` hook."""

    def __init__(
        self,
        device: ModbusDevice,
        sim: ModbusSimSection,
        *,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self._clock = clock
        self._started = clock()
        self._refreshed = 0.0
        self.encode_errors = 0
        """Generated values the register could not hold (kept at the previous words)."""
        self._feeds: list[tuple[RegisterSpec, RegisterCodec, Generator]] = []
        for spec in device.registers:
            chosen = pick_value(sim.values, device.name, spec)
            generator = Generator(chosen, spec, rng)
            codec = RegisterCodec(spec)
            try:  # a value the register can never hold is a config error, said now
                codec.encode(generator.at(0.0))
            except ValueError as exc:
                raise SimConfigError(f"sim.values for device {device.name!r}: {exc}") from None
            self._feeds.append((spec, codec, generator))

    def tables(self) -> SlaveTables:
        """New tables mapping every address from each table's lowest to its highest
        register (so reads through small gaps work, as on most devices), at t=0."""
        tables = SlaveTables()
        spans: dict[Table, tuple[int, int]] = {}
        for spec in self.device.registers:
            low, high = spans.get(_table(spec), (spec.address, spec.address))
            spans[_table(spec)] = (min(low, spec.address), max(high, spec.address + spec.words - 1))
        for table, (low, high) in spans.items():
            if table.value in BIT_TABLES:
                tables.map_bits(table, low, [False] * (high - low + 1))
            else:
                tables.map_words(table, low, [0] * (high - low + 1))
        self._write(tables, 0.0)
        return tables

    def refresh(self, tables: SlaveTables) -> None:
        elapsed = self._clock() - self._started
        # A real meter measures in cycles too: values move at most every REFRESH
        # seconds, which keeps a fast poll loop from spending its CPU in here.
        if elapsed - self._refreshed < REFRESH:
            return
        self._refreshed = elapsed
        self._write(tables, elapsed)

    def _write(self, tables: SlaveTables, elapsed: float) -> None:
        written = tables.written
        for spec, codec, generator in self._feeds:
            table = _table(spec)
            if written and any((table, spec.address + i) in written for i in range(spec.words)):
                continue
            try:
                words = codec.encode(generator.at(elapsed))
            except ValueError:
                self.encode_errors += 1
                continue
            if table.value in BIT_TABLES:
                tables.map_bits(table, spec.address, [bool(word) for word in words])
            else:
                tables.map_words(table, spec.address, words)


def pick_value(values: Mapping[str, SimValue], device: str, spec: RegisterSpec) -> SimValue:
    """``device.register`` wins over ``register``, which wins over the default."""
    return values.get(f"{device}.{spec.name}") or values.get(spec.name) or default_value(spec)


def check_values(sim: ModbusSimSection, devices: list[ModbusDevice]) -> None:
    """``SimConfigError`` on the first of ``sim_problems``."""
    problems = sim_problems(sim, devices)
    if problems:
        first = problems[0]
        where = ".".join(str(elem) for elem in first.at[:2])  # sim.values, or devices
        raise SimConfigError(f"{where}: {first}")


def sim_problems(sim: ModbusSimSection, devices: list[ModbusDevice]) -> list[LocatedError]:
    """Where a ``sim:`` block does not fit the register maps, each at the key at fault
    (relative to the driver): a value for no register (a typo would be ignored), a device
    that is not there, a value the register cannot hold (text for a number, 99999 for
    an i16)."""
    problems: list[LocatedError] = []
    known = {spec.name for device in devices for spec in device.registers}
    known |= {f"{device.name}.{spec.name}" for device in devices for spec in device.registers}
    for key in sim.values:
        if key not in known:
            problems.append(LocatedError(
                f"{key!r} names no register (give a register name or device.register)",
                "sim", "values", key, key=True,
            ))
    names = {device.name for device in devices}
    for key in sim.device_faults:
        if key not in names:
            problems.append(LocatedError(
                f"no device is named {key!r}", "sim", "device_faults", key, key=True
            ))
    rng = random.Random(0)
    for index, device in enumerate(devices):
        for number, spec in enumerate(device.registers):
            generator = Generator(pick_value(sim.values, device.name, spec), spec, rng)
            try:
                RegisterCodec(spec).encode(generator.at(0.0))
            except ValueError as exc:
                given = next(
                    (k for k in (f"{device.name}.{spec.name}", spec.name) if k in sim.values), None
                )
                at = ("sim", "values", given) if given else ("devices", index, "registers", number)
                problems.append(LocatedError(f"device {device.name!r}: {exc}", *at))
    return problems
