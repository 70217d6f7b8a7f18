"""Sparkplug B's NCMD and DCMD through a real Mosquitto to a running gateway: a
"SCADA host" client (Eclipse Tahu's ``sparkplug_b`` writing the payloads) finds the
commands in the NBIRTH, writes them, and the vent's simulated line and the boiler's
simulated register move; what was done arrives as the ``actions`` device's DDATA;
refusals are audited; a rebirth request is honoured without being a command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tahutils.tahu import sparkplug_b as tahu

from tests.commands.cloud import running
from tests.commands.platform import Platform, audit, plant, vent_levels
from tests.support import Received, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.pipeline import Gateway
from tidegate.uplink.formats import FormatContext, format_named
from tidegate.uplink.formats.offers import CommandOffer

NODE = "spBv1.0/tidegate/{}/gw"
T: Any = tahu.MetricDataType


def write(host: Platform, topic: str, name: str, datatype: int, value: object) -> None:
    payload = tahu.Payload()
    tahu.addMetric(payload, name, None, datatype, value)
    host.publish(topic, payload.SerializeToString())


def read(msg: Received) -> Any:
    return tahu.Payload.FromString(msg.payload)


def counted(gateway: Gateway, outcome: str) -> int:
    assert gateway.commands is not None
    c = gateway.commands.counters
    return c.done if outcome == "done" else c.refused.get(outcome, 0)


def test_a_host_writes_the_commands_the_nbirth_declares(
    tmp_path: Path, broker: LocalBroker
) -> None:
    text = plant(tmp_path, broker.port, "sparkplug_b")
    with running(text) as gateway, Platform(broker.port, ["spBv1.0/#"]) as host:
        # (The NBIRTH went before the host subscribed: a rebirth asks for it, as a host
        # coming online does; `rebirth` is not under allow, and is honoured anyway.)
        write(host, NODE.format("NCMD"), "Node Control/Rebirth", T.Boolean, True)
        nbirth = read(host.wait_for(NODE.format("NBIRTH"), "the NBIRTH"))
        declared = {m.name: (m.datatype, m.is_null) for m in nbirth.metrics}
        assert declared["vent"] == (T.Boolean, True)
        assert declared["setpoint"] == (T.Double, True)
        assert declared["flush"] == (T.Boolean, True)
        assert "ping" not in declared  # signed: no host can call it

        dcmd = NODE.format("DCMD")
        write(host, f"{dcmd}/vent", "vent", T.Boolean, True)
        wait_until(lambda: vent_levels(gateway) == [0, 1], 10, "the vent to open")
        write(host, NODE.format("NCMD"), "setpoint", T.Double, 22.5)
        wait_until(lambda: counted(gateway, "done") == 2, 10, "the setpoint written")
        write(host, f"{dcmd}/vent", "vent", T.Boolean, False)
        wait_until(lambda: counted(gateway, "done") == 3, 10, "the vent closed")
        write(host, f"{dcmd}/vent", "flush", T.Boolean, True)
        write(host, f"{dcmd}/vent", "flush", T.Boolean, False)  # a momentary tag reset
        wait_until(lambda: counted(gateway, "done") == 4, 10, "the flush done")
        wait_until(lambda: vent_levels(gateway) == [0, 1, 0, 1, 0], 10, "the flush to pulse")

        write(host, f"{dcmd}/plant", "setpoint", T.Double, 31.0)
        write(host, f"{dcmd}/plant", "setpoint", T.String, "warm")
        wait_until(lambda: counted(gateway, "bad_arguments") == 2, 10, "bad values refused")
        write(host, NODE.format("NCMD"), "ping", T.Boolean, True)
        wait_until(lambda: counted(gateway, "not_authorised") == 1, 10, "ping refused")
        write(host, NODE.format("NCMD"), "reboot", T.Boolean, True)
        wait_until(lambda: counted(gateway, "unknown_command") == 1, 10, "reboot refused")

        # What was done, as the host sees it: the `actions` device's data.
        def actions_data() -> list[str]:
            return [
                m.string_value
                for msg in host.on(NODE.format("DDATA") + "/actions")
                for m in read(msg).metrics
            ]

        wait_until(lambda: actions_data().count("done") == 4, 10, "the actions' DDATA")
        assert len(host.on(NODE.format("NBIRTH"))) == 1

    rows = audit(tmp_path)
    assert [(r["command"], r["status"], r["reason"]) for r in rows] == [
        ("vent", "done", None),
        ("setpoint", "done", None),
        ("vent", "done", None),
        ("flush", "done", None),
        ("setpoint", "refused", "bad_arguments"),
        ("setpoint", "refused", "bad_arguments"),
        ("ping", "refused", "not_authorised"),
        ("reboot", "refused", "unknown_command"),
    ]
    assert rows[1]["message"]["args"] == {"value": 22.5}
    assert all(r["id"] is None for r in rows)  # Sparkplug's commands carry no id


def test_what_names_no_command_is_not_one() -> None:
    offers = (CommandOffer("vent", "switch", "state", "bool"), CommandOffer("flush", "button"))
    fmt = format_named("sparkplug_b", FormatContext("s", gateway="gw", commands=offers))
    assert fmt.command_filters() == [NODE.format("NCMD"), NODE.format("DCMD") + "/+"]
    assert fmt.command_of(NODE.format("NCMD"), b"\x80") is None  # not a payload

    def payload(name: str | None, datatype: int, value: object, alias: int | None = None) -> bytes:
        p = tahu.Payload()
        tahu.addMetric(p, name, alias, datatype, value)
        return bytes(p.SerializeToString())

    assert fmt.command_of("t", payload(None, T.Boolean, True, alias=5)) is None  # alias only
    assert fmt.command_of("t", payload("Node Control/Rebirth", T.Boolean, True)) is None
    flush = fmt.command_of("t", payload("flush", T.Int32, 3))
    assert flush is not None and flush.args == {"value": 3}  # refused: it takes none
    assert flush.reply("done", {"result": None}) == []  # Sparkplug has no answer
    vent = fmt.command_of("t", payload("vent", T.Boolean, False))
    assert vent is not None and (vent.name, vent.args, vent.id) == ("vent", {"state": False}, None)
    # Without commands the uplink takes no Sparkplug commands (only the rebirth).
    assert format_named("sparkplug_b", FormatContext("s")).command_filters() == []
