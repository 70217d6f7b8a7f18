"""ThingsBoard's server-side RPC through a real Mosquitto to a running gateway: a "ThingsBoard"
client sends RPC to a device behind the gateway and to the gateway itself; the vent's
simulated line and the boiler's simulated register move; the answers arrive where
ThingsBoard reads them; refusals answer with an error; the audit has every one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.commands.cloud import running
from tests.commands.platform import Platform, audit, plant, vent_levels
from tests.support import Received, wait_until
from tidegate.demo.local_broker import LocalBroker
from tidegate.uplink.formats import FormatContext, format_named
from tidegate.uplink.formats.offers import CommandOffer

RPC = "v1/gateway/rpc"


def answer_to(platform: Platform, request: int) -> dict[str, Any]:
    """The gateway's answer to RPC ``request`` on v1/gateway/rpc (not the request itself)."""

    def answered(m: Received) -> bool:
        doc = json.loads(m.payload)
        return doc.get("id") == request and "method" not in doc.get("data", {})

    return dict(
        json.loads(platform.wait_for(RPC, f"the answer to RPC {request}", answered).payload)
    )


def rpc(platform: Platform, request: int, method: str, params: object) -> dict[str, Any]:
    doc = {"device": "gw/vent", "data": {"id": request, "method": method, "params": params}}
    platform.publish(RPC, json.dumps(doc))
    return answer_to(platform, request)


def test_rpc_to_a_device_and_to_the_gateway_run_declared_commands(
    tmp_path: Path, broker: LocalBroker
) -> None:
    text = plant(tmp_path, broker.port, "thingsboard")
    with (
        running(text) as gateway,
        Platform(broker.port, [RPC, "v1/devices/me/rpc/response/+"]) as tb,
    ):
        on = rpc(tb, 1, "vent", {"state": True})
        assert on == {"device": "gw/vent", "id": 1, "data": {"result": True}}
        # A switch widget sends its value bare: it goes to the one argument, `state`.
        off = rpc(tb, 2, "vent", False)
        assert off["data"] == {"result": False}
        wait_until(lambda: vent_levels(gateway) == [0, 1, 0], 10, "the vent to open and close")

        # An RPC to the gateway itself, answered on its response topic.
        tb.publish(
            "v1/devices/me/rpc/request/7", json.dumps({"method": "setpoint", "params": 22.5})
        )
        own = tb.wait_for("v1/devices/me/rpc/response/7", "the gateway's own answer")
        assert json.loads(own.payload) == {"result": 22.5}

        high = rpc(tb, 3, "setpoint", {"value": 31})["data"]
        assert high["reason"] == "bad_arguments" and "maximum 30" in high["error"]
        unknown = rpc(tb, 4, "reboot", {})["data"]
        assert unknown["reason"] == "unknown_command" and "reboot" in unknown["error"]
        signed = rpc(tb, 5, "ping", {})["data"]
        assert signed["reason"] == "not_authorised" and "signed" in signed["error"]
        # A bare value to a command of several arguments, or none, has nowhere to go.
        bare = rpc(tb, 6, "flush", 3)["data"]
        assert bare["reason"] == "bad_arguments"

        # The same request delivered twice on one connection acts once.
        again = {
            "device": "gw/vent",
            "data": {"id": 1, "method": "vent", "params": {"state": True}},
        }
        tb.publish(RPC, json.dumps(again))
        wait_until(
            lambda: gateway.commands is not None and gateway.commands.counters.repeated == 1,
            10,
            "the repeated RPC to be answered from the first",
        )
        assert vent_levels(gateway) == [0, 1, 0]

    rows = audit(tmp_path)
    outcomes = [(r["command"], r["status"], r["reason"]) for r in rows]
    assert outcomes == [
        ("vent", "done", None),
        ("vent", "done", None),
        ("setpoint", "done", None),
        ("setpoint", "refused", "bad_arguments"),
        ("reboot", "refused", "unknown_command"),
        ("ping", "refused", "not_authorised"),
        ("flush", "refused", "bad_arguments"),
    ]
    first = rows[0]
    assert first["id"].startswith("thingsboard:gw/vent:1@")
    assert first["message"]["args"] == {"state": True}


def test_messages_that_are_not_rpc_are_ignored() -> None:
    fmt = format_named(
        "thingsboard", FormatContext("s", commands=(CommandOffer("vent", "switch", "state"),))
    )
    filters = fmt.command_filters()
    assert filters == [RPC, "v1/devices/me/rpc/request/+"]
    # Our own answer, heard back from the broker; not JSON; not an object; no method.
    for payload in (
        b'{"device": "d", "id": 1, "data": {"result": true}}',
        b"\xff",
        b"[1]",
        b'{"device": "d", "data": {"id": 1}}',
    ):
        assert fmt.command_of(RPC, payload) is None
    assert fmt.command_of("v1/devices/me/rpc/request/3", b'{"params": 1}') is None
    call = fmt.command_of(
        RPC, b'{"device": "d", "data": {"id": 9, "method": "vent", "params": true}}'
    )
    assert call is not None and (call.name, call.args) == ("vent", {"state": True})
    assert call.reply("accepted", {}) == []
    (topic, payload), *_ = call.reply("failed", {"message": "the line is busy"})
    assert (topic, json.loads(payload)) == (
        RPC,
        {"device": "d", "id": 9, "data": {"error": "the line is busy"}},
    )
    # A new connection is a new session: the same number is a new RPC.
    fmt.command_filters()
    later = fmt.command_of(RPC, b'{"device": "d", "data": {"id": 9, "method": "vent"}}')
    assert later is not None and later.id != call.id and later.args == {}
