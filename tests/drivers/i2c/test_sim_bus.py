"""The simulated bus and chips answer like the parts: NACKs, timing, registers, CRCs.

The profiles run against them step by step on a hand-moved clock (no sleeping)."""

from __future__ import annotations

import errno
from dataclasses import replace

import pytest
from smbus2 import i2c_msg

from tests.drivers.i2c.support import ManualClock, measure
from tidegate.drivers.i2c.chips import sht3x
from tidegate.drivers.i2c.chips.ads1115 import Ads1115, Channel
from tidegate.drivers.i2c.chips.base import BadReading, WrongChip
from tidegate.drivers.i2c.chips.bh1750 import Bh1750
from tidegate.drivers.i2c.chips.bme280 import Bme280
from tidegate.drivers.i2c.chips.sht3x import Sht3x
from tidegate.drivers.i2c.sim_bus import SimChip, SimulatedBus
from tidegate.drivers.i2c.sim_chips import (
    EXAMPLE_CALIBRATION,
    Ads1115Sim,
    Bh1750Sim,
    Bme280Sim,
    RegisterSim,
    Sht3xSim,
)


def test_an_absent_address_is_a_nack_as_linux_reports_it() -> None:
    bus = SimulatedBus(chips={0x76: SimChip()})
    assert bus.read_byte(0x76) == 0xFF  # nothing to say: the idle bus level
    with pytest.raises(OSError) as caught:
        bus.read_byte(0x50)
    assert caught.value.errno == errno.EREMOTEIO
    other = SimulatedBus(chips={}, nack_errno=errno.ENXIO)
    with pytest.raises(OSError) as caught:
        other.write_byte(0x50, 0)
    assert caught.value.errno == errno.ENXIO


def test_an_unplugged_chip_nacks_until_plugged_back() -> None:
    chip = RegisterSim({0x10: b"\x2a"})
    bus = SimulatedBus({0x29: chip})
    chip.unplug()
    with pytest.raises(OSError):
        bus.read_byte_data(0x29, 0x10)
    chip.plug()
    assert bus.read_byte_data(0x29, 0x10) == 0x2A
    chip.nack_next = 1
    with pytest.raises(OSError):
        bus.read_byte_data(0x29, 0x10)
    assert bus.read_byte_data(0x29, 0x10) == 0x2A


def test_register_pointer_and_combined_transactions() -> None:
    chip = RegisterSim({0x00: bytes(range(10))})
    bus = SimulatedBus({0x29: chip})
    assert bus.read_i2c_block_data(0x29, 0x02, 3) == [2, 3, 4]
    assert bus.read_byte(0x29) == 5  # the pointer auto-increments
    bus.write_i2c_block_data(0x29, 0x20, [7, 8])
    write, read = i2c_msg.write(0x29, [0x20]), i2c_msg.read(0x29, 2)
    bus.i2c_rdwr(write, read)  # smbus2's own message objects
    assert bytes(read) == b"\x07\x08"
    assert bus.read_word_data(0x29, 0x20) == 0x0807  # SMBus words are little-endian
    with pytest.raises(ValueError):
        bus.read_i2c_block_data(0x29, 0, 33)
    bus.close()
    with pytest.raises(OSError) as caught:
        bus.read_byte(0x29)
    assert caught.value.errno == errno.EBADF


@pytest.mark.parametrize(
    ("t", "p", "h"), [(21.5, 1013.25, 45.0), (-12.3, 985.5, 88.2), (39.99, 1040.01, 5.5)]
)
def test_bme280_sim_reads_back_its_targets(t: float, p: float, h: float) -> None:
    clock = ManualClock()
    bus = SimulatedBus({0x76: Bme280Sim(t, p, h, clock=clock)})
    chip = Bme280(0x76)
    chip.setup(bus)
    readings = {r.quantity: r.value for r in measure(chip, bus, clock)}
    # The raw values come from inverting the compensation: within one step of the target.
    assert readings["temperature"] == pytest.approx(t, abs=0.011)
    assert readings["pressure"] == pytest.approx(p, abs=0.011)
    assert readings["humidity"] == pytest.approx(h, abs=0.011)


def test_bme280_sim_is_busy_until_the_conversion_time_passed() -> None:
    clock = ManualClock()
    sim = Bme280Sim(21.0, clock=clock)
    bus = SimulatedBus({0x76: sim})
    chip = Bme280(0x76)
    chip.setup(bus)
    steps = chip.measure(bus)
    next(steps)  # forced mode started; no time has passed
    assert bus.read_byte_data(0x76, 0xF3) & 0x08  # status: measuring
    assert bus.read_i2c_block_data(0x76, 0xFA, 3) == [0x80, 0, 0]  # no result yet
    assert sim.conversions == 0
    with pytest.raises(BadReading) as caught:  # never finishes while time stands still
        while True:
            steps.send(None)
    assert caught.value.counter == "not_ready"
    clock.advance(0.01)
    assert {r.quantity: r.value for r in measure(chip, bus, clock)}["temperature"] == 21.0


@pytest.mark.parametrize(("slowness", "finishes"), [(2.2, True), (2.3, False)])
def test_bme280_checks_the_status_after_its_last_wait(slowness: float, finishes: bool) -> None:
    # The profile waits the maximum time, then up to POLLS quarters of it (2.25 x in
    # all); a conversion done within the last quarter is read, not given up.
    clock = ManualClock()
    sim = Bme280Sim(21.0, clock=clock)
    sim.slowness = slowness
    bus = SimulatedBus({0x76: sim})
    chip = Bme280(0x76)
    chip.setup(bus)
    assert 1 + Bme280.POLLS / 4 == 2.25
    if finishes:
        assert measure(chip, bus, clock)[0].value == 21.0
    else:
        with pytest.raises(BadReading, match="did not finish") as caught:
            measure(chip, bus, clock)
        assert caught.value.counter == "not_ready"


def test_bme280_setup_waits_for_the_calibration_copy() -> None:
    clock = ManualClock()
    sim = Bme280Sim(21.0, clock=clock)
    bus = SimulatedBus({0x76: sim})
    sim.nvm_copying = Bme280.SETUP_POLLS - 1  # done before the polls run out
    chip = Bme280(0x76)
    chip.setup(bus)
    assert sim.nvm_copying == 0
    sim.nvm_copying = Bme280.SETUP_POLLS + 1  # still copying: tried again later
    again = Bme280(0x76)
    with pytest.raises(BadReading, match="im_update") as caught:
        again.setup(bus)
    assert caught.value.counter == "not_ready" and again.calibration is None
    again.setup(bus)  # the copy is over by the next try
    assert measure(again, bus, clock)[0].value == 21.0


@pytest.mark.parametrize("zeroed", ["T1", "P1"])
def test_bme280_refuses_a_calibration_without_t1_or_p1(zeroed: str) -> None:
    clock = ManualClock()
    bus = SimulatedBus({0x76: Bme280Sim(
        clock=clock, calibration=replace(EXAMPLE_CALIBRATION, **{zeroed: 0}))})
    chip = Bme280(0x76)
    with pytest.raises(BadReading, match="dig_T1 or dig_P1 = 0") as caught:
        chip.setup(bus)
    assert caught.value.counter == "bad_calibration" and len(caught.value.raw) == 24
    assert chip.calibration is None  # measure() cannot run on it


def test_bme280_never_publishes_the_pressure_guard_zero() -> None:
    clock = ManualClock()
    bus = SimulatedBus({0x76: Bme280Sim(clock=clock)})
    chip = Bme280(0x76)
    chip.setup(bus)
    assert chip.calibration is not None
    # A calibration that makes the compensation's divisor 0 (dig_P1 = 0 got past setup).
    chip.calibration = replace(chip.calibration, P1=0)
    with pytest.raises(BadReading, match="divides by zero") as caught:
        measure(chip, bus, clock)
    assert caught.value.counter == "bad_reading"


def test_bmp280_has_no_humidity_and_another_chip_is_refused() -> None:
    clock = ManualClock()
    bus = SimulatedBus({0x76: Bme280Sim(chip_id=0x58, clock=clock),
                        0x77: Bme280Sim(chip_id=0x55, clock=clock)})
    bmp = Bme280(0x76)
    bmp.setup(bus)
    assert [r.quantity for r in measure(bmp, bus, clock)] == ["temperature", "pressure"]
    with pytest.raises(WrongChip, match=r"chip id 0x55 at 0x77 is neither a BME280"):
        Bme280(0x77).setup(bus)


def test_sht3x_sim_nacks_a_read_before_the_result_and_sends_real_crcs() -> None:
    clock = ManualClock()
    sim = Sht3xSim(23.45, 51.2, clock=clock)
    bus = SimulatedBus({0x44: sim})
    bus.write_byte_data(0x44, 0x24, 0x00)
    with pytest.raises(OSError) as caught:
        bus.i2c_rdwr(i2c_msg.read(0x44, 6))
    assert caught.value.errno == errno.EREMOTEIO
    clock.advance(sht3x.MEASUREMENT_TIME)
    message = i2c_msg.read(0x44, 6)
    bus.i2c_rdwr(message)
    data = bytes(message)
    assert data[2] == sht3x.crc8(data[:2]) and data[5] == sht3x.crc8(data[3:5])
    assert [r.value for r in measure(Sht3x(0x44), bus, clock)] == [23.45, 51.2]


def test_sht3x_bad_crc_is_a_bad_reading_with_the_bytes() -> None:
    clock = ManualClock()
    sim = Sht3xSim(clock=clock)
    sim.bad_crc_next = 1
    bus = SimulatedBus({0x44: sim})
    with pytest.raises(BadReading) as caught:
        measure(Sht3x(0x44), bus, clock)
    assert caught.value.counter == "crc_error" and len(caught.value.raw) == 6
    assert len(measure(Sht3x(0x44), bus, clock)) == 2  # the next one is fine


def test_ads1115_single_ended_differential_and_clipping() -> None:
    clock = ManualClock()
    sim = Ads1115Sim((1.5, 0.25, 3.0, 0.5), clock=clock)
    bus = SimulatedBus({0x48: sim})
    channels = [Channel("a0", "AIN0"), Channel("d23", "AIN2-AIN3", 4.096),
                Channel("clipped", "AIN2", 2.048), Channel("neg", "AIN1-AIN3", 0.512),
                Channel("divided", "AIN0", 4.096, scale=3.0, unit="V")]
    got = {r.quantity: r.value for r in measure(Ads1115(0x48, channels, 860), bus, clock)}
    assert got == {"a0": 1.5, "d23": 2.5, "clipped": 2.047938, "neg": -0.25, "divided": 4.5}
    assert sim.conversions == 5


def test_ads1115_waits_for_the_os_bit() -> None:
    clock = ManualClock()
    bus = SimulatedBus({0x48: Ads1115Sim(clock=clock)})
    steps = Ads1115(0x48, [Channel("a0", "AIN0")], 8).measure(bus)
    next(steps)
    assert bus.read_i2c_block_data(0x48, 0x01, 2)[0] & 0x80 == 0  # converting
    clock.advance(1 / 8)
    assert bus.read_i2c_block_data(0x48, 0x01, 2)[0] & 0x80  # done


@pytest.mark.parametrize(("slowness", "finishes"), [(2.2, True), (2.3, False)])
def test_ads1115_checks_the_os_bit_after_its_last_wait(slowness: float, finishes: bool) -> None:
    clock = ManualClock()
    sim = Ads1115Sim((1.5, 0.0, 0.0, 0.0), clock=clock)
    chip = Ads1115(0x48, [Channel("a0", "AIN0")], 860)
    # Done at `slowness` conversion waits; the profile checks until 1 + POLLS/4 = 2.25.
    sim.slowness = slowness * chip.conversion_time * 860
    bus = SimulatedBus({0x48: sim})
    if finishes:
        assert measure(chip, bus, clock)[0].value == 1.5
    else:
        with pytest.raises(BadReading, match="did not finish"):
            measure(chip, bus, clock)


def test_bh1750_one_time_measurement() -> None:
    clock = ManualClock()
    bus = SimulatedBus({0x23: Bh1750Sim(28067.0, clock=clock)})
    (reading,) = measure(Bh1750(0x23), bus, clock)
    assert (reading.quantity, round(reading.value), reading.unit) == ("illuminance", 28067, "lx")
    sim = bus.chips[0x23]
    assert isinstance(sim, Bh1750Sim)
    sim.lux = 100.0
    bus.write_byte(0x23, 0x20)  # the one-time mode powered it down: ignored
    clock.advance(1)
    # Still the old result, the datasheet's example bytes (0x00 written first is the
    # power-down command, harmless here).
    assert bytes(bus.read_i2c_block_data(0x23, 0x00, 2)) == b"\x83\x90"
    (again,) = measure(Bh1750(0x23), bus, clock)  # the profile powers it on first
    assert again.value == 100.0
