"""The i2c driver and its bus, through the real driver code: a bus that is missing,
refused (group or systemd unit), no adapter, stuck, lost for a moment or for good
(every chip stale), and an open that completes after the driver stopped."""

from __future__ import annotations

import asyncio
import errno
import os
import pwd
import threading
from pathlib import Path

import pytest

from tests.drivers.harness import Probe, eventually, running
from tests.drivers.i2c.support import config, driver_on
from tidegate.driver import DriverState
from tidegate.drivers.i2c.chips.base import Bus
from tidegate.drivers.i2c.driver import STALE_AFTER, I2cDriver
from tidegate.drivers.i2c.sim_bus import SimulatedBus
from tidegate.drivers.i2c.sim_chips import Bh1750Sim, Sht3xSim

SHT = {"name": "shed", "chip": "sht3x", "address": 0x44}


def test_a_stuck_bus_says_so() -> None:
    sht = Sht3xSim()
    bus = SimulatedBus({0x44: sht}, nack_errno=errno.ETIMEDOUT)

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, [SHT], probe) as driver:
            await probe.wait_for_events(2)
            sht.unplug()  # every transfer now times out, as with SDA held low
            shed = driver.health.device("shed")
            await eventually(lambda: shed.stale, "shed stale")
            assert shed.last_error == (
                "bus 1: Connection timed out (no ACK from 0x44): the bus is stuck: SDA or SCL "
                "held low? check the wiring and pull-ups, power-cycle the chips"
            )
            assert driver.health.counters["io_error"] >= STALE_AFTER

    asyncio.run(scenario())


def test_a_missing_bus_is_retried_with_a_hint_until_it_appears(tmp_path: Path) -> None:
    bus = SimulatedBus({0x44: Sht3xSim()})
    there = threading.Event()
    attempts: list[int] = []

    def opener() -> Bus:
        attempts.append(1)
        if not there.is_set():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/dev/i2c-1")
        bus.open()
        return bus

    async def scenario() -> None:
        probe = Probe()
        driver = I2cDriver(config([SHT]), probe.context, bus=opener)
        async with running(driver, probe):
            await eventually(lambda: len(attempts) >= 3, "retries")
            assert driver.health.state is DriverState.RECONNECTING
            assert driver.health.last_error == (
                "/dev/i2c-1 does not exist: enable I²C: `sudo raspi-config nonint do_i2c 0` "
                "(or `dtparam=i2c_arm=on` in /boot/firmware/config.txt and `i2c-dev` in "
                "/etc/modules-load.d/i2c.conf), then reboot (hardware/onewire-i2c.md)"
            )
            assert driver.health.errors == 1  # one outage, one error
            # Nobody can reach the chip: it is stale, with the bus's reason.
            shed = driver.health.device("shed")
            assert shed.stale and shed.last_error == driver.health.last_error
            there.set()
            await probe.wait_for_events(2)
            assert driver.health.state.value == "running"  # (mypy keeps the narrowing above)
            assert not shed.stale

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.EACCES, "/dev/i2c-1 permission denied: add user {user} to the `i2c` group "
         "(`sudo usermod -aG i2c {user}`), then log in again or restart the service "
         "(hardware/onewire-i2c.md)"),
        (errno.EPERM, "/dev/i2c-1 not permitted: the systemd unit's DevicePolicy does not "
         "allow it: the unit needs `DeviceAllow=char-i2c rw` (`sudo tidegate service "
         "install` writes it; hardware/onewire-i2c.md)"),
    ],
)
def test_a_refused_open_says_whether_the_group_or_the_unit_is_missing(code: int,
                                                                       says: str) -> None:
    def refused() -> Bus:
        raise PermissionError(code, os.strerror(code), "/dev/i2c-1")

    async def scenario() -> str | None:
        probe = Probe()
        driver = I2cDriver(config([SHT]), probe.context, bus=refused)
        async with running(driver, probe):
            await eventually(lambda: driver.health.state is DriverState.RECONNECTING, "refused")
            return driver.health.last_error

    user = pwd.getpwuid(os.geteuid()).pw_name
    assert asyncio.run(scenario()) == says.format(user=user)


def test_a_path_that_is_no_i2c_adapter_is_refused(tmp_path: Path) -> None:
    not_a_bus = tmp_path / "i2c-1"
    not_a_bus.write_bytes(b"")  # a plain file: the I2C_FUNCS ioctl fails on it

    async def scenario() -> str | None:
        probe = Probe()
        driver = I2cDriver(config([SHT], bus=str(not_a_bus)), probe.context)
        async with running(driver, probe):
            await eventually(lambda: driver.health.state is DriverState.RECONNECTING, "refused")
            return driver.health.last_error

    assert asyncio.run(scenario()) == (
        f"{not_a_bus} is not an I²C adapter (`tidegate devices` lists the buses)"
    )


def test_a_bus_that_goes_away_is_reopened() -> None:
    bus = SimulatedBus({0x44: Sht3xSim()})

    async def scenario() -> None:
        probe = Probe()
        async with driver_on(bus, [SHT], probe) as driver:
            await probe.wait_for_events(2)
            bus.close()  # the adapter's descriptor fails under the driver (EBADF)
            await eventually(lambda: driver.health.errors == 1, "the loss noticed")
            assert driver.health.last_error == "bus 1: Bad file descriptor"
            seen = len(probe.events)
            await eventually(lambda: len(probe.events) > seen, "readings after the reopen")
            assert driver.health.state is DriverState.RUNNING

    asyncio.run(scenario())


def test_a_bus_lost_for_good_leaves_every_chip_stale_until_it_is_back() -> None:
    bus = SimulatedBus({0x44: Sht3xSim(), 0x23: Bh1750Sim()})
    gone = threading.Event()

    def opener() -> Bus:
        if gone.is_set():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/dev/i2c-1")
        bus.open()
        return bus

    async def scenario() -> None:
        probe = Probe()
        devices = [SHT, {"name": "light", "chip": "bh1750", "address": 0x23}]
        driver = I2cDriver(config(devices), probe.context, bus=opener)
        health = driver.health
        async with running(driver, probe):
            await eventually(lambda: {e.name for e in probe.events} >= {
                "shed.temperature", "light.illuminance"}, "both read")
            gone.set()
            bus.close()  # the adapter is unbound: the descriptor fails, the node is gone
            await eventually(lambda: health.state is DriverState.RECONNECTING, "the loss")
            await eventually(lambda: health.device("shed").stale
                             and health.device("light").stale, "every chip stale")
            assert health.device("light").last_error == health.last_error
            errors = health.errors
            await eventually(lambda: health.last_error is not None
                             and "does not exist" in health.last_error, "the retries")
            assert health.errors <= errors + 1  # the open failures: one outage
            gone.clear()
            await eventually(lambda: not health.device("shed").stale
                             and not health.device("light").stale, "both back")

    asyncio.run(scenario())


def test_a_bus_opened_after_the_driver_was_cancelled_is_closed() -> None:
    class Counted(SimulatedBus):
        opens = closes = 0

        def open(self, bus: int | str = "sim") -> None:
            self.opens += 1
            super().open(bus)

        def close(self) -> None:
            self.closes += 1
            super().close()

    bus = Counted({0x44: Sht3xSim()})
    opening, release = threading.Event(), threading.Event()

    def slow_opener() -> Bus:
        opening.set()
        release.wait(10)
        bus.open()
        return bus

    async def scenario() -> None:
        probe = Probe()
        driver = I2cDriver(config([SHT]), probe.context, bus=slow_opener)
        async with running(driver, probe):
            await eventually(opening.is_set, "the open under way")
        release.set()  # the open completes after the driver stopped
        await eventually(lambda: (bus.opens, bus.closes) == (1, 1), "the bus closed again")

    asyncio.run(scenario())
