"""A simulated 1-Wire bus: a fake sysfs tree in a real folder, and a task that
keeps it changing.

``W1Tree`` writes what the kernel's ``w1_therm`` module shows: a folder per sensor
holding a ``w1_slave`` file in the kernel's format (the 9-byte DS18B20 scratchpad
with its Dallas/Maxim CRC-8, the verdict, ``t=`` in millidegrees), and a
``w1_bus_master1/w1_master_slaves`` list. Each write replaces the file in one
step (``os.replace``), as a sysfs read never sees half a reading. Tests drive a
tree directly (``tree.write(id, 21.5)``, ``tree.crc_error(id)``, ``tree.vanish(id)``);
``path: sim`` makes the driver build one in a temporary folder and run
``simulate_bus`` beside it, which rewrites every sensor's file each ``update``
with a drifting value and the configured faults. Either way the driver reads
the folder with the code that reads ``/sys/bus/w1/devices``.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tidegate.drivers.onewire.config import OneWireConfig, OneWireSim, OneWireSimFaults

MASTER = "w1_bus_master1"

POWER_ON_SCRATCHPAD = bytes.fromhex("50054b467fff0c101c")
"""A DS18B20's scratchpad before its first conversion (85.000 °C)."""


def crc8(data: bytes) -> int:
    """Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1, reflected), as the sensors compute it."""
    crc = 0
    for byte in data:
        for bit in range(8):
            mix = (crc ^ (byte >> bit)) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
    return crc


def scratchpad(celsius: float) -> bytes:
    """A DS18B20's 9 scratchpad bytes at 12 bits for ``celsius`` (in 1/16 °C steps),
    after a conversion: byte 6 is ``0x10 - (t & 0x0f)``, as a genuine DS18B20
    writes it (0x10 at 85.000 °C; 0x0C only after power-on)."""
    raw = max(-0x8000, min(0x7FFF, round(celsius * 16)))
    low, high = (raw & 0xFFFF).to_bytes(2, "little")
    body = bytes([low, high, 0x4B, 0x46, 0x7F, 0xFF, 0x10 - (raw & 0x0F), 0x10])
    return body + bytes([crc8(body)])


def _hex(pad: bytes) -> str:
    return " ".join(f"{b:02x}" for b in pad) + " "


def w1_slave_text(pad: bytes, last_good: bytes = bytes(9)) -> str:
    """The ``w1_slave`` text a kernel that prints failed reads (before the 2020
    rewrite) shows for a DS18B20 scratchpad ``pad`` read off the wire.

    Line 1 is ``pad`` and the CRC verdict. Line 2 is the scratchpad the kernel
    keeps: ``pad`` when its CRC is good, otherwise ``last_good``, the last one that
    passed (zeros until one has), as ``w1_slave_show`` copies only verified reads;
    its ``t=`` is still worked out from ``pad``."""
    crc = crc8(pad[:8])
    good = crc == pad[8]
    raw = int.from_bytes(pad[:2], "little", signed=True)
    millidegrees = int(raw * 1000 / 16)  # the kernel's C division truncates toward zero
    kept = pad if good else last_good
    return (f"{_hex(pad)}: crc={crc:02x} {'YES' if good else 'NO'}\n"
            f"{_hex(kept)}t={millidegrees}\n")


def damaged(pad: bytes) -> bytes:
    """The scratchpad with one bit flipped on the wire: its CRC no longer matches."""
    return bytes([pad[0] ^ 0x04, *pad[1:]])


class W1Tree:
    """A folder laid out like /sys/bus/w1/devices, written like the kernel shows it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._last_good: dict[str, bytes] = {}
        (base / MASTER).mkdir(parents=True, exist_ok=True)
        self._list_slaves()

    def folder(self, sensor_id: str) -> Path:
        return self.base / sensor_id

    def present(self) -> list[str]:
        return sorted(p.name for p in self.base.iterdir() if p.name != MASTER and p.is_dir())

    def write_text(self, sensor_id: str, text: str) -> None:
        """Put ``text`` in the sensor's w1_slave in one step (creating the sensor)."""
        folder = self.folder(sensor_id)
        created = not folder.is_dir()
        folder.mkdir(exist_ok=True)
        spare = folder / ".w1_slave.new"
        spare.write_text(text, encoding="ascii")
        os.replace(spare, folder / "w1_slave")
        if created:
            self._list_slaves()

    def write(self, sensor_id: str, celsius: float) -> None:
        """A good reading of ``celsius`` (rounded to the sensor's 1/16 °C steps)."""
        self.write_pad(sensor_id, scratchpad(celsius))

    def write_pad(self, sensor_id: str, pad: bytes) -> None:
        """What the kernel shows after reading ``pad`` off the wire."""
        self.write_text(sensor_id, w1_slave_text(pad, self._last_good.get(sensor_id, bytes(9))))
        if crc8(pad[:8]) == pad[8]:
            self._last_good[sensor_id] = pad

    def crc_error(self, sensor_id: str, celsius: float = 21.0) -> None:
        self.write_pad(sensor_id, damaged(scratchpad(celsius)))

    def power_on(self, sensor_id: str) -> None:
        """The power-on scratchpad (a conversion that never ran): 85.000 °C, and
        byte 6 at its reset value 0x0C."""
        self.write_pad(sensor_id, POWER_ON_SCRATCHPAD)

    def stuck_low(self, sensor_id: str) -> None:
        """Nine zero bytes: a shorted data line; their CRC is zero too, so it says YES."""
        self.write_pad(sensor_id, bytes(9))

    def read_failed(self, sensor_id: str) -> None:
        """What kernels since 5.10 show when every try failed: nothing."""
        self.write_text(sensor_id, "")

    def vanish(self, sensor_id: str) -> None:
        """The sensor leaves the bus: the kernel removes its folder."""
        shutil.rmtree(self.folder(sensor_id), ignore_errors=True)
        self._last_good.pop(sensor_id, None)  # a returning sensor is a new kernel device
        self._list_slaves()

    def _list_slaves(self) -> None:
        listing = self.base / MASTER / "w1_master_slaves"
        listing.write_text("".join(f"{sensor_id}\n" for sensor_id in self.present()))


def simulated_ids(config: OneWireConfig) -> list[str]:
    """The sensors on the simulated bus: the listed ones, then ``sim.sensors``."""
    listed = [sensor.id for sensor in config.sensors]
    wanted = config.sim.sensors
    if isinstance(wanted, list):
        extra = wanted
    else:
        extra = [f"28-00000000{0x5e1 + i:04x}" for i in range(wanted)]
    return listed + [sensor_id for sensor_id in extra if sensor_id not in listed]


Fault = Callable[[W1Tree, str], None]


def _pick_fault(draw: float, faults: OneWireSimFaults) -> Fault | None:
    """The fault a uniform ``draw`` in [0, 1) lands on, if any (each has its chance)."""
    chances: list[tuple[float, Fault]] = [
        (faults.crc_error, W1Tree.crc_error),
        (faults.power_on_85, W1Tree.power_on),
        (faults.stuck_low, W1Tree.stuck_low),
        (faults.read_failed, W1Tree.read_failed),
    ]
    for chance, fault in chances:
        if draw < chance:
            return fault
        draw -= chance
    return None


async def simulate_bus(tree: W1Tree, ids: list[str], sim: OneWireSim) -> None:
    """Rewrite each present sensor's file every ``sim.update`` until cancelled: a
    slow sine per sensor plus noise, with ``sim.faults`` injected; unplug one
    sensor every ``vanish_every`` for ``vanish_for``."""
    rng = random.Random(sim.seed)
    faults = sim.faults
    phases = {sensor_id: rng.uniform(0, 2 * math.pi) for sensor_id in ids}
    started = time.monotonic()
    next_vanish = started + faults.vanish_every if faults.vanish_every else math.inf
    away: dict[str, float] = {}  # sensor id -> when it comes back
    while True:
        now = time.monotonic()
        for sensor_id, back_at in list(away.items()):
            if now >= back_at:
                del away[sensor_id]
        if now >= next_vanish and faults.vanish_every:
            candidates = [i for i in ids if i not in away]
            if candidates:
                gone = rng.choice(candidates)
                away[gone] = now + faults.vanish_for
                tree.vanish(gone)
            next_vanish = now + faults.vanish_every
        angle = 2 * math.pi * (now - started) / sim.period
        for sensor_id in ids:
            if sensor_id in away:
                continue
            fault = _pick_fault(rng.random(), faults)
            if fault is not None:
                fault(tree, sensor_id)
            else:
                value = sim.base + sim.amplitude * math.sin(angle + phases[sensor_id])
                tree.write(sensor_id, value + rng.gauss(0.0, sim.noise))
        await asyncio.sleep(sim.update)
