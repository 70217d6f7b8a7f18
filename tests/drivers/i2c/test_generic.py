"""Generic register mode: types, byte order, shift, scale; a value that is no number."""

from __future__ import annotations

import asyncio
import struct

import pytest

from tests.drivers.harness import Probe, eventually
from tests.drivers.i2c.support import driver_on, measure
from tidegate.drivers.i2c.chips.base import BadReading
from tidegate.drivers.i2c.chips.generic import GenericChip, decode
from tidegate.drivers.i2c.devices import GenericDevice, RegisterValue
from tidegate.drivers.i2c.sim_bus import SimulatedBus
from tidegate.drivers.i2c.sim_chips import RegisterSim


def spec(**keys: object) -> RegisterValue:
    return RegisterValue.model_validate({"name": "v", "register": 0, **keys})


@pytest.mark.parametrize(
    ("keys", "raw", "value"),
    [
        ({"type": "u8"}, b"\xfe", 254),
        ({"type": "i8"}, b"\xfe", -2),
        ({"type": "u16"}, b"\x01\x02", 0x0102),
        ({"type": "u16", "byte_order": "little"}, b"\x01\x02", 0x0201),
        ({"type": "i16"}, b"\xff\x38", -200),
        ({"type": "u24"}, b"\x01\x02\x03", 0x010203),
        ({"type": "i24", "byte_order": "little"}, b"\x00\x00\x80", -(2**23)),
        ({"type": "i32"}, b"\xff\xff\xff\xfe", -2),
        ({"type": "u16", "shift": 4}, b"\xab\xc0", 0xABC),  # 12 bits left-aligned
        ({"type": "f32", "byte_order": "little"}, struct.pack("<f", 1.5), 1.5),
    ],
)
def test_decode(keys: dict[str, object], raw: bytes, value: float) -> None:
    assert decode(spec(**keys), raw) == value


def test_setup_trigger_scale_and_a_nan() -> None:
    sim = RegisterSim({0x10: b"\x01\x2c", 0x20: struct.pack(">f", float("nan"))})
    bus = SimulatedBus({0x29: sim})
    device = GenericDevice.model_validate({
        "name": "x", "address": 0x29,
        "setup": [{"register": 0x80, "value": 0x03}],
        "trigger": {"register": 0x81, "value": 0x01}, "wait": "5ms",
        "registers": [{"name": "t", "register": 0x10, "scale": 0.1, "unit": "°C"}],
    })
    chip = GenericChip(device)
    chip.setup(bus)
    assert sim.memory[0x80] == 0x03
    (reading,) = measure(chip, bus)
    # 300 * 0.1 is 30.000000000000004 in binary floating point: exact here.
    assert (reading.quantity, reading.value, reading.unit) == ("t", 30.0, "°C")
    assert sim.memory[0x81] == 0x01
    nan = GenericChip(GenericDevice.model_validate({
        "name": "x", "address": 0x29, "registers": [{"name": "f", "register": 0x20,
                                                     "type": "f32"}]}))
    with pytest.raises(BadReading) as caught:
        measure(nan, bus)
    assert caught.value.raw == struct.pack(">f", float("nan"))
    assert caught.value.reason.startswith("f: ")


def test_the_driver_rejects_a_nan_and_publishes_the_rest() -> None:
    sim = RegisterSim({0x10: b"\x00\x07", 0x20: struct.pack(">f", float("nan"))})
    bus = SimulatedBus({0x29: sim, 0x2A: RegisterSim({0x00: b"\x2a"})})
    devices = [
        {"name": "odd", "address": 0x29, "registers": [{"name": "f", "register": 0x20,
                                                        "type": "f32"}]},
        {"name": "ok", "address": 0x2A, "registers": [{"name": "n", "register": 0,
                                                       "type": "u8"}]},
    ]

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, devices, probe) as driver:
            await eventually(lambda: len(probe.rejects) >= 2, "rejects")
            await probe.wait_for_events(2)
            assert driver.health.counters["bad_reading"] >= 2
            assert not driver.health.device("odd").stale  # it answers; its value is bad
        assert {e.name for e in probe.events} == {"ok.n"}
        assert probe.rejects[0][0] == struct.pack(">f", float("nan"))

    asyncio.run(scenario())
