"""Home Assistant's command entities through a real Mosquitto to a running gateway: the
switch, number and button configs announced by discovery; a "Home Assistant" client
switching the vent's simulated line, setting the boiler's simulated register and
pressing a pulse; the confirmed states on the state topics (retained); refusals
audited and never shown as states."""

from __future__ import annotations

import json
from pathlib import Path

from tests.commands.cloud import running
from tests.commands.platform import Platform, audit, plant, vent_levels
from tests.support import Subscriber, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.pipeline import Gateway
from tidegate.uplink.formats import FormatContext, format_named
from tidegate.uplink.formats.offers import CommandOffer

HA = "tidegate/gw/ha"


def refused(gateway: Gateway, reason: str) -> int:
    assert gateway.commands is not None
    return gateway.commands.counters.refused.get(reason, 0)


def test_home_assistant_switches_sets_and_presses_through_its_entities(
    tmp_path: Path, broker: LocalBroker
) -> None:
    text = plant(tmp_path, broker.port, "homeassistant")
    with (
        running(text) as gateway,
        Platform(broker.port, ["homeassistant/+/gw/+/config", f"{HA}/#"]) as ha,
    ):
        switch = json.loads(
            ha.wait_for("homeassistant/switch/gw/cmd_vent/config", "the switch").payload
        )
        assert switch["command_topic"] == f"{HA}/vent/set"
        assert switch["state_topic"] == f"{HA}/vent/state"
        assert (switch["payload_on"], switch["payload_off"]) == ("ON", "OFF")
        assert switch["availability_topic"] == "tidegate/gw/status"
        assert switch["device"]["identifiers"] == ["tidegate_gw"]
        number = json.loads(
            ha.wait_for("homeassistant/number/gw/cmd_setpoint/config", "the number").payload
        )
        assert (number["min"], number["max"], number["step"]) == (5, 30, 0.1)
        button = json.loads(
            ha.wait_for("homeassistant/button/gw/cmd_flush/config", "the button").payload
        )
        assert button["payload_press"] == "PRESS" and "state_topic" not in button
        # ping is signed: no Home Assistant control could call it.
        assert not [m for m in ha.messages if "cmd_ping" in m.topic]

        ha.publish(f"{HA}/vent/set", "ON")
        ha.wait_for(f"{HA}/vent/state", "the switch's state", lambda m: m.payload == b"ON")
        ha.publish(f"{HA}/setpoint/set", "22.5")
        ha.wait_for(f"{HA}/setpoint/state", "the number's state", lambda m: m.payload == b"22.5")
        ha.publish(f"{HA}/vent/set", "OFF")
        ha.wait_for(f"{HA}/vent/state", "the switch's state", lambda m: m.payload == b"OFF")
        ha.publish(f"{HA}/flush/set", "PRESS")
        wait_until(lambda: vent_levels(gateway) == [0, 1, 0, 1, 0], 10, "the flush to pulse")

        ha.publish(f"{HA}/setpoint/set", "31")
        wait_until(lambda: refused(gateway, "bad_arguments") == 1, 10, "31 refused")
        ha.publish(f"{HA}/vent/set", "MAYBE")
        wait_until(lambda: refused(gateway, "bad_arguments") == 2, 10, "MAYBE refused")
        ha.publish(f"{HA}/ping/set", "PRESS")
        wait_until(lambda: refused(gateway, "not_authorised") == 1, 10, "ping refused")
        ha.publish(f"{HA}/reboot/set", "PRESS")
        wait_until(lambda: refused(gateway, "unknown_command") == 1, 10, "reboot refused")
        # A refusal changes no state: the last ones stand.
        assert [m.payload for m in ha.on(f"{HA}/setpoint/state")][-1] == b"22.5"

        # The confirmed states are also sent retained, with the next announcements: a
        # Home Assistant starting now reads them.
        # (Each last state seen twice: at once, then again retained.)
        def twice(topic: str, state: bytes) -> bool:
            return [m.payload for m in ha.on(topic)].count(state) >= 2

        wait_until(
            lambda: twice(f"{HA}/vent/state", b"OFF") and twice(f"{HA}/setpoint/state", b"22.5"),
            10,
            "the states sent retained",
        )
        late = Subscriber("127.0.0.1", broker.port, f"{HA}/+/state").start()
        try:
            wait_until(lambda: len(late.snapshot()) == 2, 10, "the retained states")
            kept = {m.topic: (m.payload, m.retain) for m in late.snapshot()}
        finally:
            late.stop()
        assert kept == {
            f"{HA}/vent/state": (b"OFF", True),
            f"{HA}/setpoint/state": (b"22.5", True),
        }

    rows = audit(tmp_path)
    assert [(r["command"], r["status"], r["reason"]) for r in rows] == [
        ("vent", "done", None),
        ("setpoint", "done", None),
        ("vent", "done", None),
        ("flush", "done", None),
        ("setpoint", "refused", "bad_arguments"),
        ("vent", "refused", "bad_arguments"),
        ("ping", "refused", "not_authorised"),
        ("reboot", "refused", "unknown_command"),
    ]
    assert all(r["id"] is None for r in rows)  # Home Assistant's calls carry no id
    assert rows[0]["message"]["args"] == {"state": True}


def test_an_uplink_without_entities_to_offer_subscribes_to_nothing() -> None:
    context = FormatContext("p/status", commands=(CommandOffer("status"),))
    fmt = format_named("homeassistant", context)
    assert fmt.command_filters() == []
    assert fmt.reannounce() == []


def test_an_int_argument_takes_whole_numbers() -> None:
    offer = CommandOffer("speed", "number", "rpm", "int", 0, 3000, 1.0)
    fmt = format_named("homeassistant", FormatContext("p/status", commands=(offer,)))
    assert fmt.command_filters() == ["p/ha/+/set"]
    call = fmt.command_of("p/ha/speed/set", b"1200.0")
    assert call is not None and call.args == {"rpm": 1200}
    assert call.reply("done", {"result": None}) == [("p/ha/speed/state", b"1200")]
    half = fmt.command_of("p/ha/speed/set", b"12.5")
    assert half is not None and half.args == {"rpm": 12.5}  # refused by the check, as int
    assert fmt.command_of("p/other/speed/set", b"1") is None
