"""The device-time mark (``time_source: "device"``) through the rule engine's ``set:``
and through ``tidegate rules test``: kept where the time is still the device's,
dropped where a rule set the time itself.

A clock step of the gateway corrects every event without the mark; one that lost
it on the way would have the device's time shifted (outbox/clock.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from tests.cli.test_rules_cli import lines, rules_test, write
from tests.rules.rule_support import make_stage, reading
from tidegate.payload import encode_event


def test_set_keeps_the_mark_and_set_time_drops_it() -> None:
    stage = make_stage(
        {"name": "cal", "match": {"name": "temperature"},
         "set": {"value": "value * 2", "name": "'t2'", "tags.room": "'north'"}, "publish": {}},
        {"name": "shift", "match": {"name": "level"}, "set": {"time": "time + 60"},
         "publish": {}},
    )
    device, gateway = reading(21.0, time_source="device"), reading(22.0)
    moved = reading(1.5, name="level", time_source="device")
    out = {o.event.value: o.event for o in stage.process([device, gateway, moved])}
    assert (out[42.0].name, out[42.0].time, out[42.0].time_source) == (
        "t2", device.time, "device"
    )
    assert out[44.0].time_source is None  # no mark is made up
    # The rule's time is the rule's, not the device's: a clock step may correct it.
    assert (out[1.5].time, out[1.5].time_source) == (moved.time + 60, None)


def test_rules_test_reads_published_events_with_their_marks(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.yaml", "- name: all\n  publish: {topic: 'out/{name}'}\n")
    device = reading(1.0, name="gps", time_source="device")
    unsynced = reading(2.0, name="air")
    # As the gateway publishes them (encode_event), and as outbox/clock.py rewrites a
    # payload it corrected after a clock step (time_corrected: true).
    corrected = json.loads(encode_event(reading(3.0, name="soil"), 7, "gw"))
    corrected["time_corrected"] = True
    recorded = "\n".join([
        encode_event(device, 1, "gw").decode(),
        encode_event(unsynced, 2, "gw", synced=False).decode(),
        json.dumps(corrected),
    ])
    assert '"time_source":"device"' in recorded and '"time_synced":false' in recorded
    result = rules_test(rules, write(tmp_path / "events.jsonl", recorded))
    assert result.exit_code == 0, result.stderr
    out = {line["name"]: line for line in lines(result.stdout)}
    assert sorted(out) == ["air", "gps", "soil"]
    assert out["gps"]["time_source"] == "device"  # as the live gateway would route it
    assert all("time_source" not in out[name] for name in ("air", "soil"))
    assert out["gps"]["time"] == orjson.loads(recorded.splitlines()[0])["time"]
    assert result.stderr.splitlines()[-1] == (
        "3 events out, 0 dead letters, 0 lines unreadable"
    )


def test_rules_test_refuses_a_mark_it_cannot_honour(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.yaml", "- name: all\n  publish: {topic: out}\n")
    base = '{"source": "s", "name": "t", "value": 1, "time": 0'
    stdin = "\n".join([
        base + ', "time_source": "gps"}',
        base + ', "time_synced": "no"}',
        base + ', "time_source": "device", "time_corrected": false}',
    ])
    result = rules_test(rules, "-", stdin=stdin)
    assert result.exit_code == 1
    assert '-:1: skipped: `time_source` must be "device"' in result.stderr
    assert "-:2: skipped: `time_synced` must be true or false" in result.stderr
    assert [e["time_source"] for e in lines(result.stdout)] == ["device"]
