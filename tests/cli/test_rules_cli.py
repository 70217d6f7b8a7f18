"""``tidegate rules test``: recorded events through a rule set, deterministically.

The shipped example rules (config/rules/, run by config/simulate.yaml) must
give exactly tests/data/demo-expected.jsonl for tests/data/demo-events.jsonl.
After a deliberate change to the examples, regenerate and review the diff:

    tidegate rules test config/simulate.yaml tests/data/demo-events.jsonl \\
        --dead-letters tests/data/demo-dead-letters.jsonl > tests/data/demo-expected.jsonl
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from tests.support import TIDEGATE
from tidegate.cli.rules import rules_app
from tidegate.rules.recording import UnreadableLine, read_events

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
DEMO_CONFIG = ROOT / "config" / "simulate.yaml"


def rules_test(*args: str | Path, stdin: str | None = None) -> Result:
    return CliRunner().invoke(rules_app, ["test", *map(str, args)], input=stdin)


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_shipped_examples_give_the_checked_in_output(tmp_path: Path) -> None:
    letters = tmp_path / "dead.jsonl"
    result = rules_test(DEMO_CONFIG, DATA / "demo-events.jsonl", "--dead-letters", letters)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (DATA / "demo-expected.jsonl").read_text()
    assert letters.read_text() == (DATA / "demo-dead-letters.jsonl").read_text()
    # The summary: per rule in, out, filtered, dropped, dead letters, errors.
    summary = {line.split()[0]: line.split()[1:] for line in result.stderr.splitlines()}
    assert summary["greenhouse-fahrenheit"] == ["35", "34", "0", "0", "1", "1"]
    assert summary["no-debug"][3] == "5"
    assert summary["(default)"][1] == "6"
    assert result.stderr.splitlines()[-1] == ("87 events out, 2 dead letters, 0 lines unreadable")


def test_a_rules_folder_and_the_events_own_clock(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    write(
        folder / "minute.yaml",
        "- name: minute\n  window: {kind: tumbling, size: 60s, aggregate: [count, max]}\n",
    )
    events = write(
        tmp_path / "events.jsonl",
        "\n".join(
            json.dumps({"source": "s", "name": "t", "value": v, "time": t})
            for v, t in [(1, "2001-09-09T01:47:00Z"), (5, 1000000050.5), (2, 1000000081)]
        ),
    )
    result = rules_test(folder, events, "--no-flush", "--gateway-id", "gw7")
    assert result.exit_code == 0, result.stderr
    # The window of 2001 closed at the 2001 event that passed its end, not at today's clock.
    (window,) = lines(result.stdout)
    assert window["rule"] == "(default)" and window["topic"] == "tidegate/gw7/s/t"
    assert (window["value"], window["time"]) == (
        {"count": 2, "max": 5.0},
        "2001-09-09T01:48:00.000000Z",
    )

    flushed = lines(rules_test(folder, events, "--topic", "all/{name}").stdout)
    assert [w["value"]["count"] for w in flushed] == [2, 1]
    assert flushed[1]["tags"]["partial"] == "true" and flushed[1]["topic"] == "all/t"


def test_unreadable_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.yaml", "- name: all\n  publish: {topic: out}\n")
    good = '{"source": "s", "name": "t", "value": 1, "time": 0}'
    stdin = "\n".join(
        [good, "not json", '{"source": "s", "name": "t", "value": 1, "time": 0, "tag": {}}', good]
    )
    result = rules_test(rules, "-", stdin=stdin)
    assert result.exit_code == 1
    assert [e["topic"] for e in lines(result.stdout)] == ["out", "out"]
    assert "-:2: skipped: not JSON" in result.stderr
    assert "-:3: skipped: unknown key 'tag'" in result.stderr
    assert result.stderr.splitlines()[-1] == "2 events out, 0 dead letters, 2 lines unreadable"


def test_ids_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.yaml", "- name: all\n  publish: {}\n")
    event = '{"id": "abc", "source": "s", "name": "t", "value": 1, "time": 0}'
    assert "id" not in lines(rules_test(rules, "-", stdin=event).stdout)[0]
    assert lines(rules_test(rules, "-", "--ids", stdin=event).stdout)[0]["id"] == "abc"


def test_the_real_command_refuses_broken_rules_with_positions(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.yaml", "- name: r\n  where: value >> 3\n  publish: {}\n")
    events = write(tmp_path / "e.jsonl", "")
    proc = subprocess.run(
        [*TIDEGATE, "rules", "test", str(rules), str(events)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"{rules}:2:16: rules[0].where: bitwise operators are not supported",
        "tidegate: configuration invalid (1 problem)",
    ]
    assert "Traceback" not in proc.stderr


def test_the_real_command_runs_the_shipped_examples() -> None:
    proc = subprocess.run(
        [*TIDEGATE, "rules", "test", str(DEMO_CONFIG), str(DATA / "demo-events.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (DATA / "demo-expected.jsonl").read_text()


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=40),
            st.recursive(
                st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(
                        st.sampled_from(["source", "name", "value", "time", "tags", "unit", "x"]),
                        inner,
                        max_size=5,
                    )
                ),
                max_leaves=8,
            ).map(json.dumps),
        ),
        max_size=6,
    )
)
def test_no_input_line_can_break_the_reader(text_lines: list[str]) -> None:
    problems: list[UnreadableLine] = []
    events = list(read_events(text_lines, problems))
    assert all(1 <= p.number <= len(text_lines) for p in problems)
    for event in events:  # what is read is a valid event
        assert isinstance(event.source, str) and event.source and event.name
        assert isinstance(event.value, int | float | str | dict) and event.time >= 0
