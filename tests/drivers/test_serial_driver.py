"""The serial driver reading a real pseudo-terminal, opened by path like /dev/ttyUSB0.

The simulated device (``SerialSim``) writes to the pty master; the driver opens the
slave (or the by-id style symlink to it) with pyserial. Events arrive through the
``emit`` coroutine and rejects through ``context.reject``: the driver's contract.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.drivers.devices import serial_on, sim_for
from tests.drivers.harness import Probe, eventually
from tidegate.driver import DriverState
from tidegate.drivers.serial.sim import SerialSim, SerialSimConfig, SimValue

# --- every framing with a representative parser ------------------------------------------

PMS5003_FRAMING = {
    "type": "binary",
    "start": "42 4d",
    "length": {"offset": 2, "size": 2, "adjust": 4},
    "checksum": {"type": "sum16"},
    "max_length": 64,
}
PMS5003_PARSE = {
    "format": "struct",
    "fields": {
        "pm1_0": {"offset": 10, "type": "u16", "unit": "µg/m³"},
        "pm2_5": {"offset": 12, "type": "u16", "unit": "µg/m³"},
        "pm10": {"offset": 14, "type": "u16", "unit": "µg/m³"},
    },
}

CASES: dict[str, tuple[dict[str, Any], list[dict[str, SimValue]], list[list[tuple[str, Any]]]]] = {
    "line-kv": (
        {"framing": {"type": "line"},
         "parse": {"format": "kv", "fields": {"T": {"name": "temperature"}, "H": {}}}},
        [{"T": 21.5, "H": 40.0}, {"T": -3.25, "H": 99.0}],
        [[("temperature", 21.5), ("H", 40.0)], [("temperature", -3.25), ("H", 99.0)]],
    ),
    "line-nmea-regex": (
        {"framing": {"type": "line", "terminator": "\r\n", "nmea_checksum": True},
         "parse": {"format": "regex", "pattern": r"^\$WIMTA,(?P<t>-?[\d.]+),C$",
                   "fields": {"t": {"name": "air_temperature", "unit": "°C"}}},
         "template": "$WIMTA,{t:.1f},C"},
        [{"t": 12.3}, {"t": -0.5}],
        [[("air_temperature", 12.3)], [("air_temperature", -0.5)]],
    ),
    "line-json": (
        {"framing": {"type": "line"},
         "parse": {"format": "json", "fields": {"t": {}, "on": {"type": "bool"}}}},
        [{"t": 1.5, "on": True}, {"t": 2.5, "on": False}],
        [[("t", 1.5), ("on", True)], [("t", 2.5), ("on", False)]],
    ),
    "delimiter-csv": (
        {"framing": {"type": "delimiter", "delimiter": ";"},
         "parse": {"format": "csv", "columns": ["id", "level"],
                   "fields": {"id": {"type": "int"}, "level": {"unit": "cm"}}}},
        [{"id": 7, "level": 120.5}, {"id": 8, "level": 121.0}],
        [[("id", 7), ("level", 120.5)], [("id", 8), ("level", 121.0)]],
    ),
    "fixed-struct": (
        {"framing": {"type": "fixed", "length": 6},
         "parse": {"format": "struct", "byte_order": "little",
                   "fields": {"t": {"offset": 0, "type": "i16", "scale": 0.01},
                              "n": {"offset": 2, "type": "u32"}}}},
        [{"t": -12.5, "n": 70000}, {"t": 30.25, "n": 1}],
        [[("t", -12.5), ("n", 70000)], [("t", 30.25), ("n", 1)]],
    ),
    "binary-pms5003-struct": (
        {"framing": PMS5003_FRAMING, "parse": PMS5003_PARSE, "frame_length": 32},
        [{"pm1_0": 3, "pm2_5": 7, "pm10": 11}, {"pm1_0": 4, "pm2_5": 9, "pm10": 15}],
        [[("pm1_0", 3), ("pm2_5", 7), ("pm10", 11)], [("pm1_0", 4), ("pm2_5", 9), ("pm10", 15)]],
    ),
    "binary-modbus-struct": (
        {"framing": {"type": "binary", "start": "01 03",
                     "length": {"offset": 2, "size": 1, "adjust": 5},
                     "checksum": {"type": "crc16-modbus"}},
         "parse": {"format": "struct",
                   "fields": {"temperature": {"offset": 3, "type": "i16", "scale": 0.1},
                              "humidity": {"offset": 5, "type": "u16", "scale": 0.1}}},
         "frame_length": 9},
        [{"temperature": 21.5, "humidity": 40.2}, {"temperature": -4.0, "humidity": 88.8}],
        [[("temperature", 21.5), ("humidity", 40.2)], [("temperature", -4.0), ("humidity", 88.8)]],
    ),
    "fixed-end-struct": (
        {"framing": {"type": "fixed", "length": 6, "end": "0d 0a"},
         "parse": {"format": "struct",
                   "fields": {"t": {"offset": 0, "type": "i16", "scale": 0.1},
                              "n": {"offset": 2, "type": "u16"}}}},
        [{"t": 21.5, "n": 7}, {"t": -0.3, "n": 8}],
        [[("t", 21.5), ("n", 7)], [("t", -0.3), ("n", 8)]],
    ),
    "binary-end-sds011-struct": (
        {"framing": {"type": "binary", "start": "aa c0", "length": 10,
                     "checksum": {"type": "sum8", "start": 2}, "end": "ab"},
         "parse": {"format": "struct", "byte_order": "little",
                   "fields": {"pm2_5": {"offset": 2, "type": "u16", "scale": 0.1},
                              "pm10": {"offset": 4, "type": "u16", "scale": 0.1}}}},
        [{"pm2_5": 12.3, "pm10": 45.6}, {"pm2_5": 0.1, "pm10": 0.3}],
        [[("pm2_5", 12.3), ("pm10", 45.6)], [("pm2_5", 0.1), ("pm10", 0.3)]],
    ),
    "line-raw": (
        {"framing": {"type": "line"}, "parse": {"format": "raw", "name": "line"}},
        [{"value": "hello world"}, {"value": "second"}],
        [[("line", "hello world")], [("line", "second")]],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_framing_reads_frames_from_a_pty(tmp_path: Path, case: str) -> None:
    sim_config, written, expected = CASES[case]

    async def scenario() -> None:
        probe = Probe()
        with sim_for(tmp_path, **sim_config) as sim:
            async with serial_on(sim, probe) as driver:
                before = time.time()
                for values in written:
                    sim.write_frame(values)
                want = sum(len(events) for events in expected)
                await eventually(lambda: len(probe.events) >= want, f"{want} events")
                assert driver.frames == len(written)
        got = probe.values()
        flat = [pair for events in expected for pair in events]
        assert [name for name, _ in got] == [name for name, _ in flat]
        assert [value for _, value in got] == [pytest.approx(value) for _, value in flat]
        assert probe.rejects == []
        assert all(e.source == "probe" and before <= e.time <= time.time() for e in probe.events)

    asyncio.run(scenario())


# --- bad input ------------------------------------------------------------------------


def test_bad_lines_are_rejected_with_reasons_and_reading_goes_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        sim_config = {"framing": {"type": "line", "max_length": 64},
                      "parse": {"format": "kv", "fields": {"T": {}}}, "seed": 1}
        with sim_for(tmp_path, **sim_config) as sim:
            async with serial_on(sim, probe) as driver:
                sim.write_frame({"T": 1.0})
                sim.write_frame({"T": 2.0}, fault="garbage")  # a noise line, then the frame
                sim.write_frame({"T": 3.0}, fault="corrupt")  # a byte of the line is 0xFF
                sim.write_bytes(b"T=" + b"9" * 300 + b"\n")  # longer than max_length
                sim.write_bytes(b"T=4.0x\n")  # not a number
                sim.write_frame({"T": 5.0})
                await eventually(lambda: ("T", 5.0) in probe.values(), "the last good frame")
                assert driver.rejects == 4 == len(probe.rejects)
                assert driver.health.errors == 4
                assert driver.health.last_error == probe.reasons()[-1]
        assert probe.values() == [("T", 1.0), ("T", 2.0), ("T", 5.0)]
        # Framing rejects of a read are reported before its parse rejects: compare as sets.
        reasons = sorted(re.sub(r"byte \d+", "byte N", r) for r in probe.reasons())
        assert reasons == [
            "field 'T': '4.0x' is not a number",
            "frame longer than 64 bytes",
            "invalid utf-8 at byte N",
            "invalid utf-8 at byte N",
        ]
        assert [len(raw) for raw, r in probe.rejects if r.startswith("frame longer")] == [64]

    asyncio.run(scenario())


def test_binary_faults_cost_only_the_damaged_frames(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        sim_config = {"framing": PMS5003_FRAMING, "parse": PMS5003_PARSE, "frame_length": 32,
                      "seed": 2}
        with sim_for(tmp_path, **sim_config) as sim:
            async with serial_on(sim, probe):
                sim.write_frame({"pm2_5": 1})
                sim.write_frame({"pm2_5": 2}, fault="garbage")  # noise, then the frame
                sim.write_frame({"pm2_5": 3}, fault="corrupt")  # bad checksum
                sim.write_frame({"pm2_5": 4}, fault="partial")  # half a frame...
                sim.write_frame({"pm2_5": 5})  # ...and the next one is still found
                sim.write_frame({"pm2_5": 6})
                await eventually(lambda: ("pm2_5", 6) in probe.values(), "the last frame")
        assert [v for name, v in probe.values() if name == "pm2_5"] == [1, 2, 5, 6]
        reasons = probe.reasons()
        assert re.fullmatch(r"\d+ garbage bytes before the start sequence", reasons[0])
        assert reasons[1].startswith("checksum mismatch (sum16")
        assert reasons[2].startswith("checksum mismatch (sum16")  # the half frame
        assert len(reasons) == 3

    asyncio.run(scenario())


def test_frame_timeout_drops_a_partial_fixed_frame(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        sim_config = {"framing": {"type": "fixed", "length": 4, "frame_timeout": 0.05},
                      "parse": {"format": "struct", "fields": {"n": {"offset": 0, "type": "u32"}}}}
        with sim_for(tmp_path, **sim_config) as sim:
            async with serial_on(sim, probe) as driver:
                sim.write_bytes(b"\x00\x01")  # a frame that lost two bytes on the wire
                await eventually(lambda: len(probe.rejects) == 1, "the partial frame expired")
                assert driver.framer.pending() == 0
                sim.write_frame({"n": 77})  # in step again
                await eventually(lambda: len(probe.events) == 1, "the next frame")
        assert probe.values() == [("n", 77)]
        assert probe.rejects == [(b"\x00\x01", "incomplete frame: no byte for 0.05 s")]

    asyncio.run(scenario())


def test_frame_timeout_frees_frames_behind_a_damaged_length(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        case, _, _ = CASES["binary-modbus-struct"]
        sim_config = {**case, "framing": {**case["framing"], "frame_timeout": 0.05}}
        with sim_for(tmp_path, **sim_config) as sim:
            async with serial_on(sim, probe):
                frame = sim.frame({"temperature": 21.5, "humidity": 40.0})
                damaged = frame[:2] + b"\x30" + frame[3:]  # claims a 53-byte frame
                sim.write_bytes(damaged + frame)  # then the sensor falls silent
                await eventually(lambda: len(probe.events) == 2, "the good frame")
        assert probe.values() == [("temperature", 21.5), ("humidity", 40.0)]
        assert probe.rejects == [(damaged, "incomplete frame: no byte for 0.05 s")]

    asyncio.run(scenario())


def test_a_read_becomes_one_batch(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        sim_config = {"framing": {"type": "line"}, "parse": {"format": "raw"}}
        with sim_for(tmp_path, **sim_config) as sim:
            async with serial_on(sim, probe):
                sim.write_bytes(b"".join(b"line %d\n" % i for i in range(50)))
                await eventually(lambda: len(probe.events) == 50, "50 events")
        assert [e.value for e in probe.events] == [f"line {i}" for i in range(50)]
        assert len(probe.batches) < 50 and max(len(b) for b in probe.batches) > 1

    asyncio.run(scenario())


# --- the device going away ----------------------------------------------------------------


def test_unplug_and_replug_at_the_same_by_id_path(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        sim_config = {"framing": {"type": "line"}, "parse": {"format": "kv", "fields": {"T": {}}}}
        with sim_for(tmp_path, **sim_config) as sim:
            async with serial_on(sim, probe) as driver:
                first_pty = sim.slave_name
                sim.write_frame({"T": 1.0})
                await eventually(lambda: len(probe.events) == 1, "the first event")
                sim.write_bytes(b"T=2")  # half a line, then the cable is pulled
                await eventually(lambda: driver.framer.pending() == 3, "the half line read")

                sim.disconnect()
                await eventually(lambda: driver.health.state is DriverState.RECONNECTING,
                                 "RECONNECTING")
                assert driver.health.last_error is not None
                assert "failed" in driver.health.last_error or "open" in driver.health.last_error
                errors_at_unplug = driver.health.errors
                await eventually(lambda: "No such file" in (driver.health.last_error or ""),
                                 "a failed reopen")

                sim.open()  # replugged: a new pty behind the same link
                await eventually(lambda: driver.health.state is DriverState.RUNNING, "RUNNING")
                assert driver.opens == 2
                # A streak of failed reopens is one error, not one per attempt.
                assert driver.health.errors == errors_at_unplug
                sim.write_frame({"T": 3.0})
                await eventually(lambda: len(probe.events) == 2, "events after the replug")
                assert sim.slave_name is not None and first_pty is not None
        assert probe.values() == [("T", 1.0), ("T", 3.0)]
        assert ("incomplete frame when the device went away" in probe.reasons())
        assert probe.rejects[0][0] == b"T=2"

    asyncio.run(scenario())


def test_a_device_missing_at_start_is_retried_with_capped_backoff(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        sim = SerialSim(SerialSimConfig.model_validate({
            "link": str(tmp_path / "by-id" / "late-device"),
            "framing": {"type": "line"}, "parse": {"format": "raw"},
        }))
        reconnect = {"initial_delay": 0.02, "max_delay": 0.1, "jitter": False}
        async with serial_on(sim, probe, reconnect=reconnect) as driver:
            await eventually(lambda: driver.health.state is DriverState.RECONNECTING,
                             "RECONNECTING")
            await eventually(lambda: driver.retry_delay == 0.1, "the backoff to reach its cap")
            assert driver.health.errors == 1
            assert "late-device" in (driver.health.last_error or "")
            with sim:
                await eventually(lambda: driver.health.state is DriverState.RUNNING, "RUNNING")
                sim.write_bytes(b"finally\n")
                await eventually(lambda: len(probe.events) == 1, "an event")
        assert probe.values() == [("raw", "finally")]

    asyncio.run(scenario())


def test_sim_unplug_removes_the_link_and_replug_recreates_it(tmp_path: Path) -> None:
    with sim_for(tmp_path, parse={"format": "raw"}) as sim:
        link = Path(sim.path)
        first = os.readlink(link)
        assert first == sim.slave_name
        sim.disconnect()
        assert not os.path.lexists(link) and not sim.connected
        sim.open()
        assert os.readlink(link) == sim.slave_name
    assert not os.path.lexists(link)


def test_simulated_device_run_with_random_faults_and_unplugs(tmp_path: Path) -> None:
    """The sim as `tidegate simulate` runs it: the driver rides out every fault."""

    async def scenario() -> None:
        probe = Probe()
        sim_config = {
            "framing": PMS5003_FRAMING, "parse": PMS5003_PARSE, "frame_length": 32,
            "rate": 400, "seed": 3,
            "faults": {"garbage": 0.05, "partial": 0.05, "corrupt": 0.05,
                       "disconnect_every": 0.25, "disconnect_for": 0.05},
        }
        with sim_for(tmp_path, **sim_config) as sim:
            device = asyncio.create_task(sim.run())
            async with serial_on(sim, probe) as driver:
                await eventually(lambda: driver.opens >= 3 and len(probe.rejects) >= 10,
                                 "two replugs and some rejects")
                await eventually(lambda: driver.health.state is DriverState.RUNNING, "RUNNING")
                seen = len(probe.events)
                await eventually(lambda: len(probe.events) > seen, "events after a replug")
            device.cancel()
            with pytest.raises(asyncio.CancelledError):
                await device
        assert {name for name, _ in probe.values()} == {"pm1_0", "pm2_5", "pm10"}
        reasons = " ".join(probe.reasons())
        assert "checksum mismatch" in reasons and "garbage bytes" in reasons

    asyncio.run(scenario())


# --- request/response ---------------------------------------------------------------------


def test_polling_with_response_timeout(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        sim_config = {"framing": {"type": "line"},
                      "parse": {"format": "kv", "fields": {"T": {}}},
                      "respond_to": "READ\r\n",
                      "signals": {"T": {"base": 20, "amplitude": 0, "noise": 0}}}
        poll = {"on_open": ["MODE KV\r\n"], "request": "READ\r\n", "every": 0.05,
                "response_timeout": 0.04}
        with sim_for(tmp_path, **sim_config) as sim:
            device = asyncio.create_task(sim.run())
            async with serial_on(sim, probe, poll=poll) as driver:
                await eventually(lambda: len(probe.events) >= 3, "three answers")
                assert sim.received.startswith(b"MODE KV\r\nREAD\r\n")
                assert driver.missed_responses == 0

                sim.responding = False  # the sensor stops answering
                await eventually(lambda: driver.missed_responses >= 2, "two missed responses")
                assert (driver.health.last_error or "").startswith("no response within 0.04 s")
                assert driver.health.state is DriverState.RUNNING

                sim.responding = True
                answered = len(probe.events)
                await eventually(lambda: len(probe.events) > answered, "answers again")
            device.cancel()
            with pytest.raises(asyncio.CancelledError):
                await device
        assert set(probe.values()) == {("T", 20.0)}
        assert sim.requests >= 5

    asyncio.run(scenario())
