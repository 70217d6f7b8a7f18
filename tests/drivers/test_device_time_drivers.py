"""Device time through the real drivers: a GPS-like device on a real pty read by the
serial driver, and devices publishing to a real broker read by the mqtt driver.

The drivers stamp a frame with the wall clock when it arrives; the device times
sent here are minutes or hours from it, far beyond any scheduling delay, so which
clock an event got is certain.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.drivers.devices import mqtt_config, mqtt_on, publish, q1, serial_on, sim_for
from tests.drivers.harness import Probe, eventually
from tidegate.demo.local_broker import LocalBroker

HOUR = 3600.0


def hhmmss(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H%M%S.%f")[:9]


def ddmmyy(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%d%m%y")


def test_serial_gps_times_are_used_checked_and_counted(tmp_path: Path) -> None:
    parse = {
        "format": "csv",
        "columns": ["utc", "date", "speed"],
        "fields": {"speed": {}},
        "time_field": {"field": "utc", "format": "hhmmss", "date_field": "date"},
    }

    async def scenario() -> None:
        probe = Probe()
        with sim_for(tmp_path, framing={"type": "line"}, parse=parse) as sim:
            async with serial_on(sim, probe) as driver:
                fix = time.time() - 30  # a fix half a minute old: used
                sim.write_bytes(f"{hhmmss(fix)},{ddmmyy(fix)},1.5\n".encode())
                late = time.time() + HOUR  # the receiver's clock an hour ahead
                sim.write_bytes(f"{hhmmss(late)},{ddmmyy(late)},2.5\n".encode())
                sim.write_bytes(b"123519,310226,3.5\n")  # 31 February
                await eventually(lambda: len(probe.events) == 3, "three readings")
                counters = dict(driver.health.counters)
        times = {e.value: e.time for e in probe.events}
        assert abs(times[1.5] - fix) < 0.01  # to the fix's 1/100 s, as hhmmss.ss sends it
        # The other two got the gateway's clock: within a minute of now, not an hour off.
        assert abs(times[2.5] - time.time()) < 60 and abs(times[3.5] - time.time()) < 60
        assert counters == {
            "device_time": 1,
            "clock_fallback": 2,
            "device_time_ahead": 1,
            "device_time_unparsable": 1,
        }
        assert probe.rejects == []

    asyncio.run(scenario())


def test_serial_reject_mode_puts_the_frame_in_the_dead_letters(tmp_path: Path) -> None:
    parse = {
        "format": "kv",
        "fields": {"t": {}},
        "time_field": {"field": "ts", "max_behind": "1d", "on_invalid": "reject"},
    }

    async def scenario() -> None:
        probe = Probe()
        with sim_for(tmp_path, framing={"type": "line"}, parse=parse) as sim:
            async with serial_on(sim, probe) as driver:
                stale = int(time.time() - 3 * 86400)  # a logger uploading last week
                sim.write_bytes(b"t=1,ts=%d\n" % stale)
                sim.write_bytes(b"t=2\n")
                sim.write_bytes(b"t=3,ts=%d\n" % int(time.time()))
                await eventually(lambda: len(probe.events) == 1, "the reading on time")
                await eventually(lambda: len(probe.rejects) == 2, "two dead letters")
                assert driver.health.errors == 2
                counters = dict(driver.health.counters)
        assert probe.values() == [("t", 3)]
        (first, why_first), (second, why_second) = probe.rejects
        assert first == b"t=1,ts=%d" % stale and why_first.startswith("device time is 3.0 d behind")
        assert (second, why_second) == (b"t=2", "time field 'ts' is missing")
        assert counters == {
            "device_time": 1, "device_time_behind": 1, "device_time_missing": 1,
        }

    asyncio.run(scenario())


def test_mqtt_sources_share_the_drivers_counters(broker: LocalBroker) -> None:
    config = mqtt_config(broker.port, [{
        "topic": "logger/+/up",
        "source": "{topic[1]}",
        "qos": 1,
        "parse": {"format": "json", "fields": {"t": {}},
                  "time_field": {"field": "at", "format": "rfc3339"}},
    }])

    def rfc3339(moment: float) -> str:
        return datetime.fromtimestamp(moment, UTC).isoformat()

    async def scenario() -> None:
        probe = Probe()
        async with mqtt_on(config, probe) as driver:
            recorded = time.time() - 2 * HOUR  # uploaded after a network outage: used
            await publish(broker.port, [
                q1("logger/a/up", f'{{"t": 1, "at": "{rfc3339(recorded)}"}}'),
                q1("logger/b/up", f'{{"t": 2, "at": "{rfc3339(time.time() + HOUR)}"}}'),
                q1("logger/b/up", '{"t": 3}'),
            ])
            await eventually(lambda: len(probe.events) == 3, "three readings")
            counters = dict(driver.health.counters)
        times = {(e.source, e.value): e.time for e in probe.events}
        assert abs(times["a", 1] - recorded) < 1e-3
        assert abs(times["b", 2] - time.time()) < 60 and abs(times["b", 3] - time.time()) < 60
        assert counters == {
            "device_time": 1,
            "clock_fallback": 2,
            "device_time_ahead": 1,
            "device_time_missing": 1,
        }

    asyncio.run(scenario())


def test_a_simulated_gps_sends_times_the_driver_uses(tmp_path: Path) -> None:
    """``port: sim`` devices fill the time (and date) fields from their own good clock."""
    parse = {
        "format": "kv",
        "fields": {"speed": {}},
        "time_field": {"field": "utc", "format": "hhmmss", "date_field": "day",
                       "date_format": "yyyy-mm-dd"},
    }

    async def scenario() -> None:
        probe = Probe()
        with sim_for(tmp_path, framing={"type": "line"}, parse=parse) as sim:
            async with serial_on(sim, probe) as driver:
                frame = sim.frame()
                sim.write_bytes(frame)
                await eventually(lambda: len(probe.events) == 1, "a reading")
                counters = dict(driver.health.counters)
        assert b",utc=" in frame and b",day=20" in frame  # e.g. day=2026-12-02
        assert counters == {"device_time": 1}

    asyncio.run(scenario())
