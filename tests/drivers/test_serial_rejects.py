"""Ambiguous records and wrong markers, read from a real pty: dead letters, not events.

The serial driver reads the simulated device's pty as it reads /dev/ttyUSB0; what it
rejects reaches ``context.reject`` with the raw bytes and the reason (the outbox's
dead letters in a running gateway), and is counted in ``health.errors``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.drivers.devices import serial_on, sim_for
from tests.drivers.harness import Probe, eventually


def test_glued_kv_line_is_a_dead_letter_not_a_mixed_reading(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        fields = {key: {"type": "int"} for key in "abc"}
        with sim_for(tmp_path, framing={"type": "line"},
                     parse={"format": "kv", "fields": fields}) as sim:
            async with serial_on(sim, probe) as driver:
                sim.write_bytes(b"a=1,b=2,c=1a=3,b=4,c=0\n")  # the line end after c=1 lost
                sim.write_frame({"a": 5, "b": 6, "c": 7})
                await eventually(lambda: ("c", 7) in probe.values(), "the next record")
                assert driver.health.errors == 1
        assert probe.values() == [("a", 5), ("b", 6), ("c", 7)]
        assert probe.rejects == [(
            b"a=1,b=2,c=1a=3,b=4,c=0",
            "key 'c': value '1a=3' holds '=': two records run together (a lost line end?)",
        )]

    asyncio.run(scenario())


def test_start_sequence_keeps_a_sentence_behind_garbage_and_a_lost_line_end(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        probe = Probe()
        with sim_for(
            tmp_path,
            framing={"type": "line", "terminator": "\r\n", "nmea_checksum": True, "start": "$"},
            parse={"format": "regex", "match": "full", "pattern": r"\$WIMTA,(?P<t>-?[\d.]+),C",
                   "fields": {"t": {}}},
            template="$WIMTA,{t:.1f},C",
        ) as sim:
            async with serial_on(sim, probe) as driver:
                sim.write_frame({"t": 1.0})
                sim.write_bytes(b"xx#" + sim.frame({"t": 2.0}))  # noise glued before
                lost_end = sim.frame({"t": 3.0})[:-2]
                sim.write_bytes(lost_end + sim.frame({"t": 4.0}))
                sim.write_frame({"t": 5.0})
                await eventually(lambda: len(probe.events) == 4, "four sentences")
                assert driver.rejects == 2
        assert probe.values() == [("t", 1.0), ("t", 2.0), ("t", 4.0), ("t", 5.0)]
        assert probe.rejects == [
            (b"xx#", "3 garbage bytes before the start sequence '$'"),
            (lost_end, f"{len(lost_end)} garbage bytes before the start sequence '$'"),
        ]

    asyncio.run(scenario())


def test_binary_frame_with_a_valid_checksum_and_a_wrong_end_is_a_dead_letter(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        probe = Probe()
        framing = {"type": "binary", "start": "aa c0", "length": 10,
                   "checksum": {"type": "sum8", "start": 2}, "end": "ab"}
        parse = {"format": "struct", "byte_order": "little",
                 "fields": {"pm2_5": {"offset": 2, "type": "u16", "scale": 0.1}}}
        with sim_for(tmp_path, framing=framing, parse=parse, frame_length=10) as sim:
            async with serial_on(sim, probe):
                wrong = sim.frame({"pm2_5": 99.9})[:-1] + b"\xac"  # checksum still valid
                sim.write_bytes(wrong)
                sim.write_frame({"pm2_5": 12.3})
                await eventually(lambda: len(probe.events) == 1, "the good frame")
        assert probe.values() == [("pm2_5", 12.3)]
        assert probe.rejects == [(wrong, "frame ends in ac, not in ab")]

    asyncio.run(scenario())


def test_simulated_faults_on_fixed_frames_with_an_end(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        framing = {"type": "fixed", "length": 4, "end": "0a", "frame_timeout": 5}
        parse = {"format": "struct", "fields": {"n": {"offset": 0, "type": "u16"}}}
        with sim_for(tmp_path, framing=framing, parse=parse, seed=4) as sim:
            async with serial_on(sim, probe):
                sim.write_frame({"n": 1})
                sim.write_frame({"n": 2}, fault="garbage")  # noise, then the frame
                sim.write_frame({"n": 3}, fault="partial")  # half a frame...
                sim.write_frame({"n": 4})  # ...and the next one is in step again
                await eventually(lambda: ("n", 4) in probe.values(), "the last frame")
        assert probe.values() == [("n", 1), ("n", 2), ("n", 4)]
        assert all(reason.startswith("frame does not end in 0a") for _, reason in probe.rejects)
        assert len(probe.rejects) == 2

    asyncio.run(scenario())
