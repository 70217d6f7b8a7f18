"""Serial writes for actions: frame templates, and ``SerialDriver.transact`` on a real pty.

The simulated device answers the exact bytes of its ``respond_to`` with one frame of
its own framing, so a rendered template is what it answers. It runs (``sim.run()``)
on the test's event loop and reads what the driver writes through the pty master.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field, TypeAdapter, ValidationError

from tests.drivers.devices import serial_on, sim_for
from tests.drivers.harness import WAIT, Probe, eventually
from tidegate.config.loader import translate_validation_error
from tidegate.config.types import Section
from tidegate.config.yaml_source import load_yaml_text
from tidegate.driver import DriverState
from tidegate.drivers.framing.checksums import crc16_modbus
from tidegate.drivers.serial import templates, writes
from tidegate.drivers.serial.sim import SerialSim
from tidegate.drivers.serial.templates import FrameTemplate, HexTemplate, TextTemplate
from tidegate.errors import ActionError, ActionRefused

TEMPLATE: TypeAdapter[FrameTemplate] = TypeAdapter(FrameTemplate)


def template(value: Any) -> FrameTemplate:
    return TEMPLATE.validate_python(value)


def test_the_module_docstring_examples_load() -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", templates.__doc__ or "", re.S)
    setpoint, relay, write = (template(entry) for entry in yaml.safe_load(block))
    assert setpoint.render({"value": 21.5}) == b"SET 21.5\r\n"
    assert relay.render({"channel": 2, "state": "ON"}) == b"RELAY 2 ON\r\n"
    assert write.render({"value": 3}) == bytes.fromhex("01 06 00 01 00 03 98 0B")


# --- templates ------------------------------------------------------------------------------


def test_a_text_template_renders_exactly() -> None:
    setpoint = template("SET {value:.1f}\r\n")
    assert isinstance(setpoint, TextTemplate)
    assert setpoint.render({"value": 21.5}) == b"SET 21.5\r\n"
    assert setpoint.render({"value": 7, "unused": "ignored"}) == b"SET 7.0\r\n"
    relay = template("\x02RELAY {channel:d} {state}\x03")
    assert relay.render({"channel": 2, "state": "ON"}) == b"\x02RELAY 2 ON\x03"
    assert relay.placeholders() == frozenset({"channel", "state"})
    assert template("PING {{literal}}\r\n").render({}) == b"PING {literal}\r\n"
    assert template("PING\r\n").placeholders() == frozenset()


def test_a_hex_template_appends_the_checksum_of_the_filled_in_bytes() -> None:
    # Modbus RTU "write single register" (06), slave 1, register 1, value 3: the
    # specification's CRC for 01 06 00 01 00 03 is 98 0B (0x0B98, sent low byte first).
    write = template({"hex": "01 06 00 01 {value:04X}", "checksum": "crc16-modbus"})
    assert isinstance(write, HexTemplate)
    assert write.render({"value": 3}) == bytes.fromhex("01 06 00 01 00 03 98 0B")
    assert write.placeholders() == frozenset({"value"})
    big = template(
        {"hex": "01 06 00 01 {value:04X}", "checksum": "crc16-modbus", "checksum_byte_order": "big"}
    )
    assert big.render({"value": 3}) == bytes.fromhex("01 06 00 01 00 03 0B 98")
    plain = template({"hex": "0xAA {a:02x}{b:02X} 0x55"})
    assert plain.render({"a": 0x0F, "b": 255}) == bytes.fromhex("AA 0F FF 55")


@pytest.mark.parametrize(
    ("source", "args", "message"),
    [
        ("SET {value:.1f}\r\n", {}, "no value for {value:.1f}"),
        ("SET {value:.1f}\r\n", {"value": "warm"}, "{value:.1f} does not fit 'warm'"),
        ("SAY {text}\r\n", {"text": "snow ❄"}, "{text} gave 'snow ❄': characters beyond"),
        ({"hex": "01 06 00 01 {value:04X}"}, {"value": 70000}, "gave '11170' for 70000: not 4"),
        ({"hex": "01 06 00 01 {value:04X}"}, {"value": -1}, "gave '-001' for -1"),
        ({"hex": "01 06 00 01 {value:04X}"}, {"value": 2.5}, "{value:04X} does not fit 2.5"),
        ({"hex": "01 06 00 01 {value:04X}"}, {"other": 1}, "no value for {value:04X}"),
    ],
)
def test_arguments_that_do_not_fit_are_refused_naming_the_placeholder(
    source: Any, args: dict[str, object], message: str
) -> None:
    with pytest.raises(ActionRefused) as caught:
        template(source).render(args)
    assert caught.value.reason == "bad_arguments"
    assert message in str(caught.value), str(caught.value)


TEMPLATES_YAML = """\
templates:
  - "SET {value:.1f}\\r\\n"
  - "SET {value.real}\\r\\n"
  - "SET {value[0]}"
  - "SET {} {0}"
  - "SET {value!r}"
  - "SET {value:zz}"
  - "SET {value"
  - hex: "01 06 00 01 {value}"
  - hex: "01 06 00 01 {value:04X} z"
  - {hex: "01 06 {value:04X}", checksum: crc16-modbus}
"""


class Templates(Section):
    templates: list[FrameTemplate] = Field(description="Templates under test.")


def test_bad_templates_are_schema_errors_at_their_line() -> None:
    data, smap = load_yaml_text(TEMPLATES_YAML, "actions.yaml")
    with pytest.raises(ValidationError) as caught:
        Templates.model_validate(data)
    messages = translate_validation_error(caught.value, Templates, data, smap).messages
    expected = {
        3: "placeholder {value.real}: a placeholder is a plain name",
        4: "placeholder {value[0]}: a placeholder is a plain name",
        5: "placeholder {}: a placeholder is a plain name",
        6: "placeholder {value!r}: no conversions",
        7: "placeholder {value:zz}: ':zz' is not a format spec",
        8: "expected '}' before end of string",
        9: "placeholder {value}: in hex, say how many hex digits it fills, e.g. {value:04X}",
        10: "'01 06 00 01 {value:04X} z' is not hex bytes around its placeholders",
    }
    for line, text in expected.items():
        found = [m for m in messages if m.startswith(f"actions.yaml:{line}:")]
        assert found and text in found[0], (line, messages)
    assert len(messages) == len(expected), messages


# --- transact on a real pty ---------------------------------------------------------------

KV_DEVICE: dict[str, Any] = {
    "framing": {"type": "line"},
    "parse": {"format": "kv", "fields": {"T": {}}},
    "respond_to": "SET 21.5\r\n",
    "signals": {"T": {"base": 20, "amplitude": 0, "noise": 0}},
}


@contextlib.asynccontextmanager
async def playing(sim: SerialSim) -> AsyncIterator[SerialSim]:
    """The simulated device reading what the host writes and answering ``respond_to``."""
    device = asyncio.create_task(sim.run())
    try:
        yield sim
    finally:
        device.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await device


def test_transact_without_a_reply_writes_the_rendered_frame(tmp_path: Path) -> None:
    async def scenario() -> None:
        frame = template("LED {state}\r\n").render({"state": "ON"})
        with sim_for(tmp_path, **KV_DEVICE) as sim:
            async with playing(sim), serial_on(sim, Probe()) as driver:
                assert await driver.transact(frame) is None
                await eventually(lambda: sim.received.endswith(b"LED ON\r\n"), "the frame")
                assert driver.health.counters["writes"] == 1
                assert sim.requests == 0

    asyncio.run(scenario())


def test_transact_with_a_reply_returns_it_and_emits_no_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        frame = template("SET {value:.1f}\r\n").render({"value": 21.5})
        with sim_for(tmp_path, **KV_DEVICE) as sim:
            async with playing(sim), serial_on(sim, probe) as driver:
                assert await driver.transact(frame, reply_timeout=WAIT) == b"T=20"
                assert sim.received.endswith(b"SET 21.5\r\n") and sim.requests == 1
                # Frames after the reply are events again; the reply never was one.
                sim.write_frame({"T": 99.0})
                await eventually(lambda: len(probe.events) >= 1, "the next frame's event")
                assert probe.values() == [("T", 99.0)]
                assert driver.frames == 2 and driver.health.counters["writes"] == 1

    asyncio.run(scenario())


def test_a_hex_template_is_answered_through_binary_framing(tmp_path: Path) -> None:
    async def scenario() -> None:
        request = {"hex": "01 06 00 01 {value:04X}", "checksum": "crc16-modbus"}
        device = {
            "framing": {
                "type": "binary",
                "start": "01 03",
                "length": {"offset": 2, "size": 1, "adjust": 5},
                "checksum": {"type": "crc16-modbus"},
            },
            "parse": {
                "format": "struct",
                "fields": {"t": {"offset": 3, "type": "i16", "scale": 0.1}},
            },
            "frame_length": 7,
            "respond_to": {"hex": "01 06 00 01 00 03", "checksum": "crc16-modbus"},
            "signals": {"t": {"base": 21.5, "amplitude": 0, "noise": 0}},
        }
        probe = Probe()
        with sim_for(tmp_path, **device) as sim:
            async with playing(sim), serial_on(sim, probe) as driver:
                frame = template(request).render({"value": 3})
                reply = await driver.transact(frame, reply_timeout=WAIT)
                assert sim.received.endswith(bytes.fromhex("01 06 00 01 00 03 98 0B"))
                assert reply is not None and reply[:3] == b"\x01\x03\x02"
                assert int.from_bytes(reply[3:5], "big", signed=True) == 215
                assert reply[-2:] == crc16_modbus(reply[:-2]).to_bytes(2, "little")
        assert probe.events == [] and probe.rejects == []

    asyncio.run(scenario())


def test_no_reply_in_time_is_an_action_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        with sim_for(tmp_path, **KV_DEVICE) as sim:
            async with playing(sim), serial_on(sim, Probe()) as driver:
                sim.responding = False
                with pytest.raises(ActionError, match=r"no reply within 0\.05 s to b'SET 21\.5"):
                    await driver.transact(b"SET 21.5\r\n", reply_timeout=0.05)
                assert driver.health.counters == {"writes": 1, "write_timeouts": 1}
                # The lock is free again, and a late-coming device is answered again.
                sim.responding = True
                assert await driver.transact(b"SET 21.5\r\n", reply_timeout=WAIT) == b"T=20"
                assert driver.health.state is DriverState.RUNNING

    asyncio.run(scenario())


def test_a_device_that_is_away_is_an_action_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        with sim_for(tmp_path, **KV_DEVICE) as sim:
            async with serial_on(sim, Probe()) as driver:
                # Nobody answers (the device does not run): it goes away mid-wait.
                waiting = asyncio.create_task(driver.transact(b"SET 1\r\n", reply_timeout=WAIT))
                await eventually(lambda: driver.health.counters.get("writes") == 1, "the write")
                sim.disconnect()
                with pytest.raises(ActionError, match="closed before the reply came"):
                    await waiting
                await eventually(
                    lambda: driver.health.state is DriverState.RECONNECTING, "RECONNECTING"
                )
                with pytest.raises(ActionError, match=r"port .*usb-sim-if00-port0 not open"):
                    await driver.transact(b"SET 1\r\n")
                assert driver.health.counters == {"writes": 1}

    asyncio.run(scenario())


def test_transacts_and_poll_requests_take_turns(tmp_path: Path) -> None:
    async def scenario() -> None:
        probe = Probe()
        device = {**KV_DEVICE, "respond_to": "READ\r\n"}
        poll = {"request": "READ\r\n", "every": 0.02, "response_timeout": 0.02}
        with sim_for(tmp_path, **device) as sim:
            async with playing(sim), serial_on(sim, probe, poll=poll) as driver:
                replies = await asyncio.gather(
                    *(driver.transact(b"READ\r\n", reply_timeout=WAIT) for _ in range(20))
                )
                assert replies == [b"T=20"] * 20
                await eventually(lambda: len(probe.events) >= 3, "polled events meanwhile")
                # Every answer went to exactly one party: a transact, or the events.
                await eventually(
                    lambda: len(probe.events) + 20 == sim.frames_written, "answers accounted for"
                )

    asyncio.run(scenario())


def test_transact_before_the_port_ever_opened_is_an_action_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        with sim_for(tmp_path, **KV_DEVICE) as sim:
            sim.disconnect()
            async with serial_on(sim, Probe()) as driver:
                await eventually(lambda: driver.opens == 0 and driver.retry_delay > 0, "a retry")
                with pytest.raises(ActionError, match="not open"):
                    await driver.transact(b"SET 1\r\n", reply_timeout=1)

    asyncio.run(scenario())


def test_a_frame_larger_than_the_port_takes_at_once_goes_out_whole(tmp_path: Path) -> None:
    async def scenario() -> None:
        frame = bytes(range(256)) * 1024  # 256 KiB: many times what a pty buffers
        with sim_for(tmp_path, **KV_DEVICE) as sim:
            async with playing(sim), serial_on(sim, Probe()) as driver:
                assert await driver.transact(frame) is None
                await eventually(lambda: sim.received == frame[-4096:], "the whole frame")

    asyncio.run(scenario())


def test_a_port_that_takes_no_more_bytes_fails_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes, "WRITE_SLACK", 0.05)

    async def scenario() -> None:
        frame = bytes(256 * 1024)
        with sim_for(tmp_path, **KV_DEVICE) as sim:  # not running: it reads nothing
            async with serial_on(sim, Probe(), baudrate=4_000_000) as driver:
                with pytest.raises(ActionError, match=r"took \d+ of 262144 bytes and no more"):
                    await driver.transact(frame)
                assert driver.health.counters == {"write_timeouts": 1}
                assert driver.health.state is DriverState.RUNNING

    asyncio.run(scenario())
