"""Broken configs: exit 2, a FILE:LINE:COL message each, never a traceback."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from tests.support import TIDEGATE
from tidegate.config.loader import validate_data
from tidegate.config.types import Duration
from tidegate.config.yaml_source import SourceMap
from tidegate.errors import ConfigError

GOOD_DRIVER = """
drivers:
  - name: gh
    type: sim
    signals: [{name: t, kind: sine, rate: 1}]
"""

BROKEN: dict[str, tuple[str, int, str]] = {
    # name: (config text, line of the expected message, text the message must contain)
    "yaml_syntax": ("gateway:\n  id: [unclosed\n" + GOOD_DRIVER, 4, "YAML syntax error"),
    "tab_indent": ("gateway:\n\tid: x\n" + GOOD_DRIVER, 2, "YAML syntax error"),
    "unknown_top_key": ("gatway:\n  id: x\n" + GOOD_DRIVER, 1, "did you mean 'gateway'"),
    "unknown_nested_key": (
        "mqtt:\n  host: localhost\n  prot: 1883\n" + GOOD_DRIVER,
        3,
        "did you mean 'port'",
    ),
    "wrong_type": ("mqtt:\n  host: localhost\n  port: abc\n" + GOOD_DRIVER, 3, "mqtt.port"),
    "out_of_range": ("mqtt:\n  host: localhost\n  port: 70000\n" + GOOD_DRIVER, 3, "65535"),
    "bad_qos": ("mqtt:\n  host: localhost\n  qos: 2\n" + GOOD_DRIVER, 3, "mqtt.qos"),
    "missing_required": ("mqtt:\n  port: 1883\n" + GOOD_DRIVER, 2, "missing required key 'host'"),
    "missing_drivers": ("gateway:\n  id: x\n", 1, "missing required key 'drivers'"),
    "unknown_driver_type": (
        "drivers:\n  - name: a\n    type: serail\n",
        3,
        "unknown driver type 'serail'",
    ),
    "bad_topic_template": (
        "mqtt:\n  host: h\n  topic: 'site/{gateway}/{sorce}'\n" + GOOD_DRIVER,
        3,
        "did you mean '{source}'",
    ),
    "wildcard_topic": (
        GOOD_DRIVER + "rules:\n  - name: r\n    publish: {topic: 'a/+/b'}\n",
        8,
        "wildcard",
    ),
    "bad_duration": (
        "buffer:\n  commit_interval: soon\n" + GOOD_DRIVER,
        2,
        "not a duration",
    ),
    "duplicate_driver_name": (
        GOOD_DRIVER
        + "  - name: gh\n    type: sim\n    signals: [{name: u, kind: counter, rate: 1}]\n",
        6,
        "duplicate driver name 'gh'",
    ),
    "bad_driver_name": (
        "drivers:\n  - name: 'a/b'\n    type: sim\n    signals: [{name: t, kind: sine, rate: 1}]\n",
        2,
        "drivers[0].name",
    ),
    "rule_without_outcome": (
        GOOD_DRIVER + "rules:\n  - name: r\n    match: {name: x}\n",
        7,
        "publish",
    ),
    "password_without_user": ("mqtt:\n  host: h\n  password_env: X\n" + GOOD_DRIVER, 2, "username"),
    "not_a_mapping": ("- just\n- a list\n", 1, "top level must be a mapping"),
    "empty_file": ("", 1, "empty"),
    # Text, so past the YAML layer's bounds on numbers: inf once converted.
    "duration_too_large_as_text": (
        "buffer:\n  commit_interval: '" + "1" * 400 + "s'\n" + GOOD_DRIVER,
        2,
        "a duration is a finite number of seconds",
    ),
    # A field with no upper bound took it.
    "infinite_duration": (
        GOOD_DRIVER + "rules:\n  - name: d\n    dedup: {within: .inf}\n",
        8,
        "inf is not a duration",
    ),
    "size_too_large_as_text": (
        "buffer:\n  max_bytes: '" + "1" * 5000 + "'\n" + GOOD_DRIVER,
        2,
        "is larger than a size can be (8 EiB)",
    ),
    "long_text_not_a_duration": (
        "buffer:\n  commit_interval: '" + "x" * 5000 + "'\n" + GOOD_DRIVER,
        2,
        "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is not a duration",
    ),
    # Unions with a kind (window kinds): the kind picks the model, and a key is
    # judged against that kind's keys, at its own position.
    "window_key_typo": (
        GOOD_DRIVER
        + "rules:\n  - name: r\n    window: {kind: tumbling, size: 60, agregate: avg}\n",
        8,
        "rules[0].window.agregate: unknown key 'agregate' (did you mean 'aggregate'?)",
    ),
    "unknown_window_kind": (
        GOOD_DRIVER + "rules:\n  - name: r\n    window: {kind: tumbeling, size: 1m}\n",
        8,
        "rules[0].window.kind: unknown kind 'tumbeling' (did you mean 'tumbling'?)",
    ),
    "key_of_another_window_kind": (
        GOOD_DRIVER + "rules:\n  - name: r\n    window: {kind: count, count: 5, size: 5}\n",
        8,
        "rules[0].window.size: unknown key 'size'",
    ),
    "key_of_another_window_kind_names_the_kinds": (
        GOOD_DRIVER + "rules:\n  - name: r\n    window: {kind: count, count: 5, size: 5}\n",
        8,
        "`size` is a key of kind: tumbling, hopping, sliding",
    ),
    # The same for the kinds of drivers' own sections (``tidegate.drivers.kinds.pick_by``):
    # the message at the value, with a suggestion, as for window kinds.
    "gpio_mode_typo": (
        "drivers:\n  - name: g\n    type: gpio\n    line: 4\n    mode: countr\n",
        5,
        "drivers[0].mode: unknown mode 'countr' (did you mean 'counter'?); "
        "known: edge, counter, level",
    ),
    "sim_kind_typo": (
        "drivers:\n  - name: s\n    type: sim\n    signals:\n"
        "      - {name: n, kind: countr, rate: 1}\n",
        5,
        "drivers[0].signals[0].kind: unknown kind 'countr' (did you mean 'counter'?)",
    ),
    "sim_kind_missing": (
        "drivers:\n  - name: s\n    type: sim\n    signals:\n      - {name: n, rate: 1}\n",
        5,
        "drivers[0].signals[0].kind: missing required key 'kind'",
    ),
    "key_of_another_gpio_mode": (
        "drivers:\n  - name: g\n    type: gpio\n    line: 4\n    mode: edge\n    per_pulse: 1\n",
        6,
        "drivers[0].per_pulse: unknown key 'per_pulse'; `per_pulse` is a key of mode: counter",
    ),
    "key_of_another_signal_kind": (
        "drivers:\n  - name: s\n    type: sim\n    signals:\n"
        "      - {name: n, kind: counter, rate: 1, amplitude: 2}\n",
        5,
        "`amplitude` is a key of kind: sine",
    ),
    "missing_window_kind": (
        GOOD_DRIVER + "rules:\n  - name: r\n    window: {size: 5}\n",
        8,
        "rules[0].window: missing required key 'kind'",
    ),
    "aliased_key_suggested": (
        GOOD_DRIVER + "rules:\n  - name: r\n    alarm: {above: 3, fr: 5s}\n",
        8,
        "did you mean 'for'?",
    ),
    "signal_rate_and_interval": (
        "drivers:\n  - name: a\n    type: sim\n    signals:\n"
        "      - {name: t, kind: sine, rate: 1, interval: 2}\n",
        5,
        "exactly one of",
    ),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str]]:
    """Run every broken config through the real CLI, in parallel."""
    folder = tmp_path_factory.mktemp("broken")
    procs = {}
    for name, (text, _, _) in BROKEN.items():
        path = folder / f"{name}.yaml"
        path.write_text(text)
        procs[name] = (
            path,
            subprocess.Popen(
                [*TIDEGATE, "check", "-c", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    out: dict[str, tuple[Path, int, str]] = {}
    for name, (path, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=60)
        out[name] = (path, proc.returncode, stdout + stderr)
    return out


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_config_is_refused_with_position(
    name: str, results: dict[str, tuple[Path, int, str]]
) -> None:
    path, code, output = results[name]
    _, line, needle = BROKEN[name]
    assert code == 2, output
    assert "Traceback" not in output
    assert re.search(rf"^{re.escape(str(path))}:{line}:\d+: ", output, re.M), output
    assert needle in output, output
    # A line per problem, never a whole (hostile) value.
    assert max(map(len, output.splitlines())) < 300, output[:1000]


def test_a_mistyped_kind_is_located_at_its_value(
    results: dict[str, tuple[Path, int, str]],
) -> None:
    for name, column in (("gpio_mode_typo", 11), ("sim_kind_typo", 25)):
        path, _, output = results[name]
        line = BROKEN[name][1]
        assert f"{path}:{line}:{column}: " in output, (name, output)


@pytest.mark.parametrize("how", [["-c"], [], ["--config"]], ids=["-c", "positional", "--config"])
def test_a_missing_file_is_one_line_that_says_how_to_name_one(
    tmp_path: Path, how: list[str]
) -> None:
    proc = subprocess.run(
        [*TIDEGATE, "check", *how, str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    # Not a parse error at nope.yaml:1:1: the file is not there.
    assert proc.stderr.splitlines() == [
        f"tidegate: error: no such config file: {tmp_path / 'nope.yaml'} "
        "(name one with -c FILE or $TIDEGATE_CONFIG)"
    ]


def test_a_huge_integer_is_described_not_printed(tmp_path: Path) -> None:
    # The YAML layer refuses such numbers; validation must not fall over on one anyway
    # (repr() of an int past 4,300 digits raises ValueError).
    signal = {"name": "t", "kind": "sine", "rate": 10**5000}
    data = {"drivers": [{"name": "g", "type": "sim", "signals": [signal]}]}
    with pytest.raises(ConfigError) as failed:
        validate_data(data, SourceMap("f.yaml", {}, {}), tmp_path)
    (message,) = failed.value.messages
    assert message.endswith("rate: input should be a valid number, got an integer of 16,610 bits")


@pytest.mark.parametrize(
    ("value", "needle"),
    [(10**400, "too large for a duration"), (float("nan"), "nan is not a duration")],
    ids=["huge-int", "nan"],
)
def test_a_duration_is_a_finite_number(value: float, needle: str) -> None:
    with pytest.raises(ValidationError) as failed:
        TypeAdapter(Duration).validate_python(value)
    assert needle in str(failed.value)
