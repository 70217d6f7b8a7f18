"""A GPS receiver's real NMEA stream through the real drivers, with ``select:``.

A receiver sends RMC, GGA, GSV… sentences every second; a config that wants RMC
parses those, stamped with the receiver's time, and skips the others: counted as
``skipped``, not dead letters. A damaged sentence is still a dead letter, RMC or
not. The serial test writes into a real pty read by the serial driver; the mqtt
test publishes to a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.drivers.devices import mqtt_config, mqtt_on, publish, q1, sim_for
from tests.drivers.harness import Probe, eventually, running
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import LocalBroker
from tidegate.driver import DriverState
from tidegate.drivers.serial.config import SerialConfig
from tidegate.drivers.serial.driver import SerialDriver
from tidegate.drivers.serial.sim import SerialSimConfig

ROOT = Path(__file__).resolve().parents[2]

# Real sentences, as the NMEA 0183 literature prints them, with their checksums.
GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
GSV = b"$GPGSV,2,1,08,01,40,083,46,02,17,308,41,12,07,344,39,14,22,228,45*75\r\n"

PARSE = {
    "format": "regex",
    "select": ["$GPRMC,", "$GNRMC,"],
    "match": "full",
    "pattern": r"\$G[PN]RMC,(?P<utc>[\d.]+),A,([^,]*,){4}(?P<speed>[\d.]+),[\d.]*,"
    r"(?P<date>\d{6}),.*",
    "fields": {"speed": {"unit": "kn"}},
    "time_field": {"field": "utc", "format": "hhmmss", "date_field": "date"},
}
FRAMING = {"type": "line", "terminator": "\r\n", "nmea_checksum": True, "start": "$"}
TEMPLATE = "$GPRMC,{utc},A,4807.038,N,01131.000,E,{speed},084.4,{date},003.1,W"
"""The simulated device's own sentence (``port: sim``); the tests write their own."""


def sentence(body: str) -> bytes:
    """``$body*hh\\r\\n``: hh is the XOR of the bytes between ``$`` and ``*``."""
    checksum = reduce(lambda acc, byte: acc ^ byte, body.encode("ascii"), 0)
    return f"${body}*{checksum:02X}\r\n".encode("ascii")


def rmc(moment: float, speed: str = "022.4") -> bytes:
    at = datetime.fromtimestamp(moment, UTC)
    return sentence(
        f"GPRMC,{at:%H%M%S}.{at.microsecond // 10000:02d},A,4807.038,N,01131.000,E,"
        f"{speed},084.4,{at:%d%m%y},003.1,W"
    )


def test_the_checksums_are_the_receivers() -> None:
    """The test's own checksum reproduces the printed sentences (so it is not our code's)."""
    assert sentence(GGA[1:-5].decode()) == GGA
    assert sentence(GSV[1:-5].decode()) == GSV


def docs_gps_driver(port: str) -> SerialConfig:
    """The GPS example of docs/drivers.md, on ``port``: what a user pastes."""
    page = (ROOT / "docs" / "drivers.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if "$GPRMC" in b]
    block = re.sub(r"(?m)^(    port:) \S+$", rf"\1 {port}", block, count=1)
    assert f"port: {port}" in block
    (driver,) = load_config_text(block, "docs/drivers.md").drivers
    assert isinstance(driver, SerialConfig)
    return driver


def test_serial_gps_rmc_parsed_other_sentences_skipped_damage_rejected(tmp_path: Path) -> None:
    """The docs' GPS example on a pty fed a receiver's stream: RMC gives speed on the
    receiver's time, GGA and GSV are skipped, damaged sentences are dead letters."""
    async def scenario() -> None:
        probe = Probe()
        with sim_for(tmp_path, framing=FRAMING, parse=PARSE, template=TEMPLATE) as sim:
            assert sim.config.link is not None
            config = docs_gps_driver(sim.config.link)
            async with running(SerialDriver(config, probe.context), probe) as driver:
                await eventually(lambda: driver.health.state is DriverState.RUNNING, "open")
                fix = int(time.time()) - 2 + 0.25  # a 1/100 s the sentence carries exactly
                for second in range(3):  # what a receiver sends in three seconds
                    sim.write_bytes(rmc(fix + second) + GGA + GSV + GSV)
                # Before its first fix a receiver sends void RMC, with or without a time.
                sim.write_bytes(sentence("GPRMC,,V,,,,,,,,,,N"))
                # An RMC with a good checksum that does not match: a dead letter.
                odd = sentence("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4")
                # An RMC that lost bytes: its checksum catches it in the framer.
                lost = rmc(fix).replace(b"4807.038,N,", b"4807")
                # A GGA whose checksum is wrong: damage, whatever its kind.
                bad_gga = GGA.replace(b"*47", b"*48")
                sim.write_bytes(odd + lost + bad_gga)
                await eventually(lambda: len(probe.rejects) == 3, "three dead letters")
                await eventually(lambda: len(probe.events) == 7, "three fixes and a void")
                counters = dict(driver.health.counters)
                errors = driver.health.errors
        fixes = [e for e in probe.events if e.name == "speed"]
        assert [e.value for e in fixes] == [22.4, 22.4, 22.4]
        assert all(e.time_source == "device" and e.unit == "kn" for e in fixes)
        assert [e.time - fix for e in fixes] == [0.0, 1.0, 2.0]
        assert [(e.value, e.time_source) for e in probe.events if e.name == "status"] == [
            ("A", "device"), ("A", "device"), ("A", "device"), ("V", None),
        ]
        assert counters == {
            "device_time": 3, "skipped": 9, "clock_fallback": 1, "device_time_missing": 1,
        }
        assert errors == 3
        # The framer rejects a read's bad sentences as it cuts them, before any parse.
        reasons = {raw: reason for raw, reason in probe.rejects}
        assert reasons.pop(odd[:-5]) == "does not match the pattern"  # without *hh
        assert sorted(reasons) == sorted([bad_gga[:-2], lost[:-2]])
        assert all(why.startswith("NMEA checksum mismatch") for why in reasons.values())

    asyncio.run(scenario())


def test_mqtt_skips_the_messages_select_does_not_want(broker: LocalBroker) -> None:
    config = mqtt_config(broker.port, [{
        "topic": "boat/nmea",
        "source": "gps",
        "qos": 1,
        "parse": {**PARSE, "time_field": None,
                  # Over MQTT the sentence keeps its checksum: the pattern's `.*` takes it.
                  "fields": {"speed": {"unit": "kn"}}},
    }])

    async def scenario() -> None:
        probe = Probe()
        async with mqtt_on(config, probe) as driver:
            await publish(broker.port, [
                q1("boat/nmea", GGA.strip()),
                q1("boat/nmea", rmc(time.time(), "005.1").strip()),
                q1("boat/nmea", GSV.strip()),
                q1("boat/nmea", b"$GPRMC,cut"),
            ])
            await eventually(lambda: len(probe.rejects) == 1, "the damaged RMC rejected")
            await eventually(lambda: len(probe.events) == 1, "the RMC's speed")
            counters = dict(driver.health.counters)
        assert probe.values() == [("speed", 5.1)]
        assert counters == {"skipped": 2}
        assert probe.rejects == [(b"$GPRMC,cut", "topic 'boat/nmea': does not match the pattern")]

    asyncio.run(scenario())


def test_a_simulated_device_must_send_what_select_wants() -> None:
    """``port: sim`` with ``select:``: a template that begins otherwise would make a demo
    whose every frame is skipped, so the config is refused."""
    device = {"framing": FRAMING, "parse": PARSE, "template": TEMPLATE}
    assert SerialSimConfig.model_validate(device).template == TEMPLATE
    device["template"] = TEMPLATE.replace("$GPRMC", "$GPGGA")
    with pytest.raises(ValidationError, match="start `template` with '\\$GPRMC,'"):
        SerialSimConfig.model_validate(device)
    kv = {"format": "kv", "select": "T=", "fields": {"T": {}}}
    with pytest.raises(ValidationError, match="simulated frames must begin with a selected"):
        SerialSimConfig.model_validate({"parse": kv, "template": "t={T}"})
    assert SerialSimConfig.model_validate({"parse": kv}).parse  # its own frames: "T=…"
