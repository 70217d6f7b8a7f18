"""The onewire driver on a fake sysfs tree: names and calibration, each rejection
counted and never published, sensors that vanish and return, discovery, and a
missing bus."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from tests.drivers.harness import Probe, eventually, running
from tests.drivers.onewire.support import FAST, A, B, C, driver_on, from_sensor
from tidegate.driver import DriverState
from tidegate.drivers.onewire.config import OneWireConfig
from tidegate.drivers.onewire.driver import OneWireDriver
from tidegate.drivers.onewire.sim import W1Tree, scratchpad, w1_slave_text
from tidegate.drivers.onewire.sysfs import DEFAULT_BUS, OVERLAY_HINT


def state_of(driver: OneWireDriver) -> DriverState:
    return driver.health.state


@pytest.fixture
def tree(tmp_path: Path) -> W1Tree:
    return W1Tree(tmp_path / "devices")


def test_listed_sensors_carry_their_names_units_and_calibration(tree: W1Tree) -> None:
    tree.write(A, 23.125)
    tree.write(B, 100.0)
    tree.write(C, -10.125)

    async def scenario() -> Probe:
        probe = Probe()
        driver = driver_on(tree, probe, sensors=[
            {"id": A, "name": "water_top", "offset": -0.25},
            {"id": B.upper(), "name": "flue", "unit": "°F"},
            {"id": C, "unit": "K", "scale": 1.01},
        ])
        async with running(driver, probe):
            await probe.wait_for_events(3)
        return probe

    probe = asyncio.run(scenario())
    first = {e.name: (e.value, e.unit, e.tags) for e in probe.events[:3]}
    assert first == {
        "water_top": (22.875, "°C", {"sensor": A}),
        "flue": (212.0, "°F", {"sensor": B}),
        C: (round(263.025 * 1.01, 4), "K", {"sensor": C}),
    }


@pytest.mark.parametrize(
    ("spoil", "counter"),
    [
        (W1Tree.crc_error, "crc_error"),
        (W1Tree.power_on, "power_on_85"),
        (W1Tree.stuck_low, "stuck_low"),
        (lambda tree, sensor: tree.write(sensor, -127), "out_of_range"),
        (lambda tree, sensor: tree.write_text(sensor, "garbage\n"), "malformed"),
    ],
)
def test_a_bad_reading_is_counted_kept_and_never_published(
    tree: W1Tree, spoil: object, counter: str
) -> None:
    tree.write(A, 21.5)
    assert callable(spoil)
    spoil(tree, B)
    bad = (tree.folder(B) / "w1_slave").read_bytes()

    async def scenario() -> None:
        probe = Probe()
        driver = driver_on(tree, probe)
        async with running(driver, probe):
            await eventually(lambda: len(probe.rejects) >= 3, "three rejected readings")
            await eventually(lambda: len(from_sensor(probe, A)) >= 3, "A read on meanwhile")
            # Counted on the event loop's side of each read: stop before comparing.
        health = driver.health
        assert health.counters[counter] == len(probe.rejects) == health.errors
        assert set(probe.rejects) == {(bad, f"{B}: {probe.rejects[0][1].split(': ', 1)[1]}")}
        assert health.last_error == probe.rejects[-1][1]
        assert from_sensor(probe, B) == []
        assert set(from_sensor(probe, A)) == {21.5}
        assert health.devices[B].stale  # rejected three times in a row
        assert not health.devices[A].stale
        assert health.state is DriverState.STOPPED

    asyncio.run(scenario())


def test_a_real_85_is_published_and_the_power_on_85_is_not(tree: W1Tree) -> None:
    tree.write(A, 85.0)  # a boiler at 85 °C: byte 6 is 0x10
    tree.power_on(B)  # the same 85.000 °C with the power-on mark 0x0c

    async def scenario() -> Probe:
        probe = Probe()
        async with running(driver_on(tree, probe), probe):
            await eventually(lambda: len(from_sensor(probe, A)) >= 2, "A read twice")
            await eventually(lambda: len(probe.rejects) >= 2, "B rejected twice")
        return probe

    probe = asyncio.run(scenario())
    assert set(from_sensor(probe, A)) == {85.0}
    assert from_sensor(probe, B) == []
    assert {reason.split(":")[0] for reason in probe.reasons()} == {B}


def test_a_max31850_reads_above_125_and_a_listed_range_is_kept(tree: W1Tree) -> None:
    hot = "3b-0000001a2b3d"
    tree.write(C, 600.0)  # family 3b: a MAX31850 on a thermocouple in a flue
    tree.write(hot, 600.0)

    async def scenario() -> Probe:
        probe = Probe()
        driver = driver_on(tree, probe, discover=True,
                           sensors=[{"id": hot, "range": [-270, 500]}])
        async with running(driver, probe):
            await eventually(lambda: len(from_sensor(probe, C)) >= 1, "C read")
            await eventually(lambda: len(probe.rejects) >= 1, "hot rejected")
        return probe

    probe = asyncio.run(scenario())
    assert set(from_sensor(probe, C)) == {600.0}
    assert from_sensor(probe, hot) == []
    assert probe.reasons()[0] == f"{hot}: t=600000 is outside the sensor's -270..500 °C range"


def test_85_is_published_when_the_config_accepts_it(tree: W1Tree) -> None:
    tree.power_on(A)
    tree.power_on(B)

    async def scenario() -> Probe:
        probe = Probe()
        driver = driver_on(tree, probe, accept_85=True,
                           sensors=[{"id": A}, {"id": B, "accept_85": False}])
        async with running(driver, probe):
            await probe.wait_for_events(1)
            await eventually(lambda: len(probe.rejects) >= 1, "B's 85 rejected")
        return probe

    probe = asyncio.run(scenario())
    assert set(from_sensor(probe, A)) == {85.0}
    assert from_sensor(probe, B) == []
    assert {reason.split(":")[0] for reason in probe.reasons()} == {B}


def test_a_sensor_that_is_unstable_goes_stale_and_recovers(tree: W1Tree) -> None:
    tree.crc_error(A)

    async def scenario() -> None:
        probe = Probe()
        driver = driver_on(tree, probe, sensors=[{"id": A}])
        device = driver.health.device(A)
        async with running(driver, probe):
            await eventually(lambda: len(probe.rejects) >= 1, "one CRC error")
            assert not device.stale  # one damaged reading is noise, not an absence
            await eventually(lambda: device.stale, "stale after three in a row")
            tree.write(A, 20.0)
            await probe.wait_for_events(1)
            assert not device.stale and device.last_seen_monotonic is not None

    asyncio.run(scenario())


def test_a_vanished_sensor_is_stale_while_the_others_read_on_and_it_comes_back(
    tree: W1Tree,
) -> None:
    tree.write(A, 21.0)
    tree.write(B, 22.0)

    async def scenario() -> None:
        probe = Probe()
        driver = driver_on(tree, probe)
        health = driver.health
        async with running(driver, probe):
            await eventually(lambda: len(from_sensor(probe, A)) >= 1, "A read")
            tree.vanish(A)
            await eventually(lambda: health.devices[A].stale, "A stale")
            assert health.devices[A].last_error == "vanished"
            from_b = len(from_sensor(probe, B))
            await eventually(lambda: len(from_sensor(probe, B)) >= from_b + 3, "B read on")
            # Missing for several cycles, counted once.
            assert (health.counters["vanished"], health.errors) == (1, 1)
            assert not health.devices[B].stale
            from_a = len(from_sensor(probe, A))
            tree.write(A, 19.5)
            await eventually(lambda: len(from_sensor(probe, A)) > from_a, "A back")
            assert not health.devices[A].stale
            assert health.counters["returned"] == 1
            assert health.state is DriverState.RUNNING
        assert probe.rejects == []

    asyncio.run(scenario())


def test_a_listed_sensor_never_on_the_bus_says_which_ids_are(tree: W1Tree) -> None:
    tree.write(A, 21.0)
    tree.write_text("2d-00000a1b2c3d", "an EEPROM is no thermometer\n")
    typo = A[:-1] + "e"  # 28-0316a2795cfe: one digit off

    async def scenario() -> None:
        probe = Probe()
        driver = driver_on(tree, probe, sensors=[{"id": A}, {"id": typo}])
        health = driver.health
        async with running(driver, probe):
            await eventually(lambda: typo in health.devices, "the typo looked for")
            await probe.wait_for_events(3)
            assert health.devices[typo].stale and not health.devices[A].stale
            assert health.devices[typo].last_error == (
                f"not on the bus (found: {A}; `tidegate devices` lists them)"
            )
            # Said once, not once per cycle, and not called a sensor that vanished.
            assert (health.counters, health.errors) == ({"not_found": 1}, 1)
            tree.write(typo, 19.0)  # plugged in after all
            await eventually(lambda: len(from_sensor(probe, typo)) >= 1, "typo read")
            assert not health.devices[typo].stale
            tree.vanish(typo)  # once seen, leaving is vanishing
            await eventually(lambda: health.counters.get("vanished") == 1, "vanished")
        assert {e.tags["sensor"] for e in probe.events if e.tags} == {A, typo}

    asyncio.run(scenario())


def test_discovery_picks_up_a_sensor_plugged_in_later_and_only_thermometers(
    tree: W1Tree,
) -> None:
    tree.write(A, 21.0)
    tree.write_text("2d-00000a1b2c3d", "an EEPROM is no thermometer\n")
    tree.write(C, 30.0)  # a DS1825, left out by `families`

    async def scenario() -> None:
        probe = Probe()
        driver = driver_on(tree, probe, families=["28"])
        async with running(driver, probe):
            await eventually(lambda: len(from_sensor(probe, A)) >= 2, "A read twice")
            assert driver.known == {A}
            tree.write(B, 18.0)
            await eventually(lambda: len(from_sensor(probe, B)) >= 1, "B found and read")
        assert driver.known == {A, B}
        assert driver.health.counters["discovered"] == 2
        assert {e.name for e in probe.events} == {A, B}  # named by id
        assert probe.rejects == []

    asyncio.run(scenario())


def test_listing_sensors_turns_discovery_off_unless_asked(tree: W1Tree) -> None:
    tree.write(A, 21.0)
    tree.write(B, 22.0)

    async def scenario(discover: bool | None) -> set[str]:
        probe = Probe()
        keys = {} if discover is None else {"discover": discover}
        driver = driver_on(tree, probe, sensors=[{"id": A, "name": "listed"}], **keys)
        async with running(driver, probe):
            await eventually(lambda: len(from_sensor(probe, A)) >= 2, "two cycles")
        return {e.name for e in probe.events}

    assert asyncio.run(scenario(None)) == {"listed"}
    assert asyncio.run(scenario(True)) == {"listed", B}


def test_an_unreadable_file_is_a_read_error_not_a_vanished_sensor(tree: W1Tree) -> None:
    tree.folder(A).mkdir()
    (tree.folder(A) / "w1_slave").mkdir()  # reading it fails with EISDIR

    async def scenario() -> None:
        probe = Probe()
        driver = driver_on(tree, probe)
        async with running(driver, probe):
            await eventually(lambda: driver.health.counters.get("read_error", 0) >= 3, "3 tries")
        assert "vanished" not in driver.health.counters
        assert driver.health.devices[A].stale
        assert "cannot read w1_slave: Is a directory" in (driver.health.last_error or "")

    asyncio.run(scenario())


def test_an_empty_read_is_a_failed_read_with_nothing_to_keep(tree: W1Tree) -> None:
    tree.read_failed(A)
    tree.write(B, 21.0)

    async def scenario() -> None:
        probe = Probe()
        driver = driver_on(tree, probe)
        health = driver.health
        async with running(driver, probe):
            await eventually(lambda: health.counters.get("read_failed", 0) >= 3, "3 empty reads")
            assert health.devices[A].stale
            tree.write(A, 22.0)
            await eventually(lambda: len(from_sensor(probe, A)) >= 1, "A answers again")
            assert not health.devices[A].stale
        assert probe.rejects == []  # no text: no dead letter
        assert health.errors == health.counters["read_failed"]

    asyncio.run(scenario())


def test_a_missing_folder_is_waited_for_and_counted_once_per_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = tmp_path / "w1" / "devices"
    caplog.set_level(logging.DEBUG, logger="tidegate.drivers.onewire.driver")

    def looks() -> int:
        return sum("looking again" in record.getMessage() for record in caplog.records)

    async def scenario() -> None:
        probe = Probe()
        driver = driver_on(base, probe, sensors=[{"id": A}])
        health = driver.health
        async with running(driver, probe):
            await eventually(lambda: looks() >= 3, "three looks for the bus")
            assert state_of(driver) is DriverState.RECONNECTING
            # A user's path that is not there is a typo, not a missing overlay.
            message = (f"no folder {base}: check `path:` (the kernel's 1-Wire bus is "
                       "/sys/bus/w1/devices)")
            assert (health.errors, health.last_error) == (1, message)
            assert health.devices[A].stale and health.devices[A].last_error == message
            W1Tree(base).write(A, 21.0)
            await probe.wait_for_events(1)
            assert state_of(driver) is DriverState.RUNNING
            assert not health.devices[A].stale
            shutil.rmtree(base)  # the overlay unloaded: the whole bus is gone
            seen = looks()
            await eventually(lambda: looks() >= seen + 3, "three more looks")
            assert state_of(driver) is DriverState.RECONNECTING
            assert health.errors == 2 and health.devices[A].stale  # a second outage
            W1Tree(base).write(A, 22.0)
            await eventually(lambda: 22.0 in from_sensor(probe, A), "the bus back")
            assert not health.devices[A].stale

    asyncio.run(scenario())


@pytest.mark.skipif(Path(DEFAULT_BUS).exists(), reason="this machine has a 1-Wire bus")
def test_no_kernel_bus_says_how_to_enable_it() -> None:
    async def scenario() -> None:
        probe = Probe()
        config = OneWireConfig.model_validate({"name": "w1", "reconnect": {
            "initial_delay": FAST, "max_delay": FAST}})
        driver = OneWireDriver(config, probe.context)
        async with running(driver, probe):
            await eventually(lambda: driver.health.errors >= 1, "a look for the bus")
        assert driver.health.last_error == f"no 1-Wire bus at {DEFAULT_BUS}: {OVERLAY_HINT}"
        assert "dtoverlay=w1-gpio,gpiopin=4" in OVERLAY_HINT

    asyncio.run(scenario())


def test_each_reading_is_emitted_as_soon_as_it_is_read(tree: W1Tree) -> None:
    tree.write(A, 21.0)
    tree.write(B, 22.0)

    async def scenario() -> None:
        probe = Probe()
        probe.gate = asyncio.Event()  # hold the first emit: what has been read by then?
        async with running(driver_on(tree, probe), probe):
            await eventually(lambda: probe.blocked == 1, "the first emit")
            assert probe.held == 1  # A alone: it did not wait for B's ~750 ms
            probe.gate.set()
            await probe.wait_for_events(4)
        assert all(len(batch) == 1 for batch in probe.batches)

    asyncio.run(scenario())


def test_the_text_the_kernel_printed_is_what_a_dead_letter_keeps(tree: W1Tree) -> None:
    text = w1_slave_text(scratchpad(-127.0))
    tree.write_text(A, text)

    async def scenario() -> Probe:
        probe = Probe()
        async with running(driver_on(tree, probe), probe):
            await eventually(lambda: len(probe.rejects) >= 1, "a reject")
        return probe

    raw, reason = asyncio.run(scenario()).rejects[0]
    assert raw == text.encode()
    assert reason == f"{A}: t=-127000 is outside the sensor's -55..125 °C range"
