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
from tests.drivers.test_serial_sim_port import running
from tidegate.config.loader import load_config_text
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
                before = time.time()
                sim.write_bytes(f"{hhmmss(fix)},{ddmmyy(fix)},1.5\n".encode())
                late = time.time() + HOUR  # the receiver's clock an hour ahead
                sim.write_bytes(f"{hhmmss(late)},{ddmmyy(late)},2.5\n".encode())
                sim.write_bytes(b"123519,310226,3.5\n")  # 31 February
                await eventually(lambda: len(probe.events) == 3, "three readings")
                after = time.time()
                counters = dict(driver.health.counters)
        times = {e.value: e.time for e in probe.events}
        assert abs(times[1.5] - fix) < 0.01  # to the fix's 1/100 s, as hhmmss.ss sends it
        # The other two got the gateway's clock when they arrived, not the device's.
        assert before <= times[2.5] <= after and before <= times[3.5] <= after
        sources = {e.value: e.time_source for e in probe.events}
        assert sources == {1.5: "device", 2.5: None, 3.5: None}
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
            before = time.time()
            await publish(broker.port, [
                q1("logger/a/up", f'{{"t": 1, "at": "{rfc3339(recorded)}"}}'),
                q1("logger/b/up", f'{{"t": 2, "at": "{rfc3339(time.time() + HOUR)}"}}'),
                q1("logger/b/up", '{"t": 3}'),
            ])
            await eventually(lambda: len(probe.events) == 3, "three readings")
            after = time.time()
            counters = dict(driver.health.counters)
        times = {(e.source, e.value): e.time for e in probe.events}
        assert abs(times["a", 1] - recorded) < 1e-3
        assert before <= times["b", 2] <= after and before <= times["b", 3] <= after
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


SIM_STRUCT_CLOCK = """
drivers:
  - name: logger
    type: serial
    port: sim
    framing:
      type: binary
      start: "42 4d"
      length: {offset: 2, size: 2, byte_order: big, adjust: 4}
      checksum: {type: sum16}
    parse:
      format: struct
      fields: {level: {offset: 4, type: u16}}
      # After the last value: the simulated frame must be long enough to hold it.
      time_field: {offset: 6, type: u64, byte_order: little, format: epoch_ms}
    sim: {rate: 50, seed: 1}
  - name: meter
    type: serial
    port: sim
    framing: {type: fixed, length: 6}
    parse:
      format: struct
      fields: {a: {offset: 0, type: u16}}
      time_field: {offset: 2, type: u32}
    sim: {rate: 50, seed: 1}
"""


def test_a_simulated_struct_device_sends_its_time() -> None:
    """``port: sim`` with a struct ``time_field``: the frames carry the device's (good)
    time, so the driver uses it; without it, every frame fell back (a zero time) or
    was too short."""
    config = load_config_text(SIM_STRUCT_CLOCK, "test.yaml").drivers

    async def scenario() -> None:
        probe = Probe()
        async with running(config[0], probe) as logger, running(config[1], probe) as meter:
            before = time.time()
            await eventually(
                lambda: logger.health.counters.get("device_time", 0) >= 5
                and meter.health.counters.get("device_time", 0) >= 5,
                "five frames of each with the device's time",
            )
            after = time.time()
            counts = dict(logger.health.counters), dict(meter.health.counters)
        assert probe.rejects == []
        assert all(set(count) == {"device_time"} for count in counts), counts
        assert {e.time_source for e in probe.events} == {"device"}
        # The times the devices sent: milliseconds (logger), whole seconds (meter).
        late = [e for e in probe.events if e.time >= before]
        assert late and all(e.time <= after for e in late)
        assert all(e.time == int(e.time) for e in probe.events if e.source == "meter")

    asyncio.run(scenario())


def test_mqtt_renamed_events_keep_the_device_time_mark(broker: LocalBroker) -> None:
    """A subscription's ``name:`` (plain or with ``{field}``) rebuilds the events: they
    must still say their time is the device's, or a clock step would shift it."""
    parse = {"format": "json", "fields": {"t": {}, "h": {}},
             "time_field": {"field": "at", "format": "epoch_ms"}}
    config = mqtt_config(broker.port, [
        {"topic": "plain/+", "source": "{topic[1]}", "name": "level", "qos": 1,
         "parse": parse},
        {"topic": "field/+", "source": "{topic[1]}", "name": "{topic[1]}.{field}", "qos": 1,
         "parse": parse},
    ])

    async def scenario() -> None:
        probe = Probe()
        async with mqtt_on(config, probe):
            recorded = int((time.time() - HOUR) * 1000)  # uploaded an hour late: used
            await publish(broker.port, [
                q1("plain/a", f'{{"t": 1, "at": {recorded}}}'),
                q1("field/b", f'{{"t": 2, "h": 3, "at": {recorded}}}'),
                q1("field/c", '{"t": 4}'),  # no time: the gateway's clock, no mark
            ])
            await eventually(lambda: len(probe.events) == 4, "four readings")
        marks = {(e.source, e.name): (e.time, e.time_source) for e in probe.events}
        device = (recorded / 1000, "device")
        assert {key: mark for key, mark in marks.items() if key != ("c", "c.t")} == {
            ("a", "level"): device, ("b", "b.t"): device, ("b", "b.h"): device,
        }
        assert marks["c", "c.t"][1] is None

    asyncio.run(scenario())
