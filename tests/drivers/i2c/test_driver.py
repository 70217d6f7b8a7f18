"""The i2c driver on a simulated bus, through the real driver code: values, a chip
that stops answering and comes back, one NACK that is only counted, CRC rejects
and a chip that sends nothing else, the wrong chip, bus I/O kept off the event
loop, ``bus: sim``. The bus itself failing: test_driver_bus.py."""

from __future__ import annotations

import asyncio
import threading

from tests.drivers.harness import Probe, eventually, running
from tests.drivers.i2c.support import config, driver_on, values
from tidegate.driver import DriverState
from tidegate.drivers.i2c.chips.bme280 import Bme280
from tidegate.drivers.i2c.driver import STALE_AFTER, I2cDriver
from tidegate.drivers.i2c.sim_bus import SimulatedBus
from tidegate.drivers.i2c.sim_chips import Ads1115Sim, Bh1750Sim, Bme280Sim, Sht3xSim

BME = {"name": "garden", "chip": "bme280", "address": 0x76}
SHT = {"name": "shed", "chip": "sht3x", "address": 0x44}


def test_every_profile_publishes_its_quantities() -> None:
    bus = SimulatedBus({
        0x76: Bme280Sim(18.25, 1002.5, 61.0),
        0x44: Sht3xSim(-4.5, 93.0),
        0x23: Bh1750Sim(28067.0),
        0x48: Ads1115Sim((1.5, 0.25, 0.0, 0.0)),
    })
    devices = [
        BME, SHT,
        {"name": "light", "chip": "bh1750", "address": 0x23},
        {"name": "adc", "chip": "ads1115", "address": 0x48, "data_rate": 860, "channels": [
            {"name": "battery", "input": "AIN0", "full_scale": 4.096, "scale": 3.0},
            {"name": "sense", "input": "AIN1", "full_scale": 0.512, "unit": "mV",
             "scale": 1000}]},
    ]

    async def scenario() -> Probe:
        probe = Probe()
        async with driver_on(bus, devices, probe):
            await eventually(lambda: len({e.name for e in probe.events}) == 8, "every quantity")
        return probe

    probe = asyncio.run(scenario())
    first: dict[str, tuple[object, ...]] = {}
    for event in probe.events:
        first.setdefault(event.name, (event.value, event.unit, event.tags, event.source))
    assert first == {
        "garden.temperature": (18.25, "°C", {"device": "garden"}, "env"),
        "garden.pressure": (1002.5, "hPa", {"device": "garden"}, "env"),
        "garden.humidity": (61.0, "%", {"device": "garden"}, "env"),
        "shed.temperature": (-4.5, "°C", {"device": "shed"}, "env"),
        "shed.humidity": (93.0, "%", {"device": "shed"}, "env"),
        "light.illuminance": (28066.7, "lx", {"device": "light"}, "env"),
        "adc.battery": (4.5, "V", {"device": "adc"}, "env"),
        "adc.sense": (250.0, "mV", {"device": "adc"}, "env"),
    }


def test_a_chip_that_stops_answering_goes_stale_and_comes_back() -> None:
    sht = Sht3xSim()
    bus = SimulatedBus({0x76: Bme280Sim(), 0x44: sht})

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, [BME, SHT], probe) as driver:
            health = driver.health
            await eventually(lambda: bool(values(probe, "shed.temperature")), "a first reading")
            sht.unplug()
            await eventually(lambda: health.device("shed").stale, "shed stale")
            assert health.device("shed").last_error == "no answer (NACK)"
            nacks = health.counters["nack"]
            assert nacks >= STALE_AFTER  # stale only after that many in a row
            await eventually(lambda: health.counters["nack"] >= nacks + 2, "retries")
            # One outage is one error, however many retries it takes.
            assert health.errors == 1
            assert health.last_error == "shed: no answer (NACK)"
            # The other chip is read meanwhile.
            seen = len(values(probe, "garden.temperature"))
            await eventually(lambda: len(values(probe, "garden.temperature")) > seen + 2,
                             "garden read while shed is away")
            assert health.state is DriverState.RUNNING
            readings = len(values(probe, "shed.temperature"))
            sht.plug()
            await eventually(lambda: len(values(probe, "shed.temperature")) > readings,
                             "shed back")
            assert not health.device("shed").stale
            assert not health.device("garden").stale

    asyncio.run(scenario())


def test_a_bad_crc_is_rejected_with_its_bytes_and_counted() -> None:
    sht = Sht3xSim(21.0, 45.0)
    bus = SimulatedBus({0x44: sht})

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, [SHT], probe) as driver:
            await eventually(lambda: bool(values(probe, "shed.temperature")), "a first reading")
            sht.bad_crc_next = 1
            await eventually(lambda: bool(probe.rejects), "the reject")
            before = len(values(probe, "shed.temperature"))
            await eventually(lambda: len(values(probe, "shed.temperature")) > before,
                             "readings after it")
            assert driver.health.counters == {"crc_error": 1}
            assert driver.health.errors == 1
            assert not driver.health.device("shed").stale
        ((raw, reason),) = probe.rejects
        assert len(raw) == 6 and raw[2] != 0  # the six bytes as received
        assert reason.startswith("shed: temperature CRC mismatch: 0x")
        assert set(values(probe, "shed.temperature")) == {21.0}  # never a corrupted value

    asyncio.run(scenario())


def test_one_nack_is_counted_but_does_not_mark_the_chip_stale() -> None:
    sht = Sht3xSim(21.0, 45.0)
    bus = SimulatedBus({0x44: sht})

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, [SHT], probe) as driver:
            health = driver.health
            await eventually(lambda: bool(values(probe, "shed.temperature")), "a first reading")
            sht.nack_next = STALE_AFTER - 1  # a glitch just short of an outage
            await eventually(lambda: health.counters.get("nack", 0) >= 1, "the NACK counted")
            before = len(values(probe, "shed.temperature"))
            await eventually(lambda: len(values(probe, "shed.temperature")) > before,
                             "read again")
            # Never marked stale: no device error was counted, none is shown.
            assert health.errors == 0 and not health.device("shed").stale
            assert health.counters["nack"] >= 1

    asyncio.run(scenario())


def test_a_chip_that_only_sends_bad_crcs_is_stale_with_the_reason() -> None:
    bus = SimulatedBus({0x44: Sht3xSim(crc_error_rate=1.0), 0x23: Bh1750Sim()})
    devices = [SHT, {"name": "light", "chip": "bh1750", "address": 0x23}]

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, devices, probe) as driver:
            shed = driver.health.device("shed")
            await eventually(lambda: shed.stale, "shed stale")
            assert shed.last_error is not None and "CRC mismatch" in shed.last_error
            assert driver.health.counters["crc_error"] >= STALE_AFTER
            assert not driver.health.device("light").stale
            # Each reject is one error; going stale adds none.
            assert driver.health.errors == len(probe.rejects)
        assert not values(probe, "shed.temperature")

    asyncio.run(scenario())


def test_the_wrong_chip_is_a_clear_error_and_the_others_are_read() -> None:
    bus = SimulatedBus({0x76: Bme280Sim(chip_id=0x55), 0x44: Sht3xSim()})

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, [BME, SHT], probe) as driver:
            await eventually(lambda: driver.health.counters.get("wrong_chip", 0) >= 2,
                             "the id checked again")
            await eventually(lambda: bool(values(probe, "shed.humidity")), "shed read")
            garden = driver.health.device("garden")
            assert garden.stale
            assert garden.last_error == (
                "chip id 0x55 at 0x76 is neither a BME280 (0x60) nor a BMP280 (0x58): "
                "check `chip:` and `address:`"
            )
            assert driver.health.errors == 1
        assert not [e for e in probe.events if e.name.startswith("garden.")]

    asyncio.run(scenario())


def test_a_bme280_still_copying_its_calibration_is_set_up_at_the_next_interval() -> None:
    sim = Bme280Sim(19.5)
    sim.nvm_copying = Bme280.SETUP_POLLS  # just powered on: the first setup gives up
    bus = SimulatedBus({0x76: sim})

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, [BME], probe) as driver:
            await eventually(lambda: bool(values(probe, "garden.temperature")), "a reading")
            assert driver.health.counters.get("not_ready") == 1
            assert not driver.health.device("garden").stale
        ((_, reason),) = probe.rejects
        assert reason == "garden: the calibration is still being copied from NVM (status im_update)"
        assert set(values(probe, "garden.temperature")) == {19.5}

    asyncio.run(scenario())


def test_a_bmp280_gives_temperature_and_pressure_only() -> None:
    bus = SimulatedBus({0x76: Bme280Sim(22.0, 990.0, chip_id=0x58)})

    async def scenario() -> Probe:
        probe = Probe()
        async with driver_on(bus, [BME], probe):
            await probe.wait_for_events(4)
        return probe

    probe = asyncio.run(scenario())
    assert {e.name for e in probe.events} == {"garden.temperature", "garden.pressure"}


def test_bus_io_never_runs_on_the_event_loop() -> None:
    class Watched(Sht3xSim):
        def write(self, data: bytes) -> None:
            threads.add(threading.get_ident())
            super().write(data)

        def read(self, length: int) -> bytes:
            threads.add(threading.get_ident())
            return super().read(length)

    threads: set[int] = set()
    bus = SimulatedBus({0x44: Watched()})

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, [SHT], probe):
            await probe.wait_for_events(4)

    asyncio.run(scenario())
    assert threads and threading.get_ident() not in threads


def test_bus_sim_reads_every_device_of_the_config() -> None:
    async def scenario() -> Probe:
        probe = Probe()
        cfg = config([BME, SHT, {"name": "light", "chip": "bh1750"},
                      {"name": "adc", "chip": "ads1115", "channels": [
                          {"name": "a0", "input": "AIN0"}]},
                      {"name": "raw", "address": 0x29, "registers": [
                          {"name": "count", "register": 0x10, "type": "u16"}]}],
                     bus="sim", sim={"seed": 3})
        driver = I2cDriver(cfg, probe.context)
        assert driver.sim_bus is None  # made when the driver runs, not when it is built
        async with running(driver, probe):
            await eventually(lambda: len({e.name for e in probe.events}) == 8, "every quantity")
        return probe

    probe = asyncio.run(scenario())
    by_name = {e.name: e.value for e in probe.events}
    temperature, pressure = by_name["garden.temperature"], by_name["garden.pressure"]
    assert isinstance(temperature, float) and 5 <= temperature <= 35
    assert isinstance(pressure, float) and 980 <= pressure <= 1040
    assert by_name["raw.count"] == 100


