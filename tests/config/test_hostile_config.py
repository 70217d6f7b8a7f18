"""Config and rule files as hostile input: alias bombs, deep nesting, control characters, size.

Each is refused with one ``FILE:LINE:COL: message`` line, exit 2 and no
traceback by ``check``, ``run`` and ``rules test``; a running gateway asked to
reload one keeps its rules and its memory. Child processes run with their
address space capped, so a regression fails with a MemoryError instead of
taking the machine's memory (the alias bomb reached 2.3 GB).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import (
    TIDEGATE,
    GatewayProcess,
    Subscriber,
    cap_address_space,
    memory_kib,
    wait_until,
    write_config,
)
from tidegate.config.yaml_limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
from tidegate.config.yaml_source import load_yaml_text
from tidegate.demo.local_broker import LocalBroker
from tidegate.errors import ConfigError

CLI_ADDRESS_SPACE = 1024**3
GATEWAY_ADDRESS_SPACE = 3 * 1024**3 // 2
PEAK_RSS_BOUND_KIB = 300 * 1024
"""Generous: a gateway runs in ~70 MB; the bomb took it to 2.3 GB."""

GOOD = """\
drivers:
  - name: s
    type: sim
    signals: [{name: n, kind: counter, rate: 1}]
"""


def alias_bomb(item: str) -> str:
    """Nine levels of ten aliases: ~10^9 values once expanded, in about 500 bytes.

    ``item`` is ``"- "`` for a rule file (a list), ``"xN: "`` keys for a config.
    """
    lines = []
    for level in range(9):
        values = ["lol"] * 10 if level == 0 else [f"*a{level - 1}"] * 10
        lines.append(f"{item.format(level)}&a{level} [{', '.join(values)}]\n")
    return "".join(lines)


def deep(item: str) -> str:
    return f"{item}{'[' * 5000}{']' * 5000}\n"


def control_char(prefix: str) -> str:
    return f"{prefix}# a note \x07 with a bell in it\n"


def oversized(prefix: str) -> str:
    return prefix + "# padding\n" * (2 * MAX_FILE_BYTES // 10)


# name: (the file's text, line of the message, text the message must contain)
CONFIG_CASES: dict[str, tuple[str, int, str]] = {
    "alias_bomb": (alias_bomb("x{}: ") + GOOD, 5, "alias *a3 repeats 11,111 values"),
    "deep_nesting": ("x: " + deep("") + GOOD, 1, f"nested more than {MAX_DEPTH} levels deep"),
    "control_char_in_comment": (control_char(GOOD), 5, "U+0007 is not allowed"),
    "too_large": (oversized(GOOD), 1, "a config or rules file may be at most 1 MiB"),
    "self_containing_alias": ("x: &r [1, *r]\n" + GOOD, 1, "alias *r is inside the node"),
    # Not hostile, a typo: but PyYAML reads it as a date and raised a ValueError.
    "impossible_date": ("x: 2024-13-01\n" + GOOD, 1, "'2024-13-01' is not a valid timestamp"),
    # YAML 1.1 read this as one integer in base 60, in quadratic time (40 s), then a
    # traceback: text in YAML 1.2, so the rate is not a number.
    "sexagesimal": (
        GOOD.replace("rate: 1", "rate: 1" + ":1" * 300_000),
        4,
        "rate: input should be a valid number",
    ),
    "huge_hex_number": (
        GOOD.replace("rate: 1", "rate: 0x" + "f" * 5000),
        4,
        "has 5,002 characters; at most 100 are read as a number",
    ),
    "int_beyond_64_bits": (
        "buffer: {max_bytes: 0x" + "f" * 20 + "}\n" + GOOD,
        1,
        "is beyond the 64-bit integer range",
    ),
    # float() of it raised OverflowError in the duration's validator: a traceback.
    "huge_duration": (
        GOOD + "rules:\n  - name: d\n    dedup: {within: " + "1" * 400 + "}\n",
        7,
        "has 400 characters; at most 100",
    ),
}
RULE_FILE_CASES: dict[str, tuple[str, int, str]] = {
    "alias_bomb": (alias_bomb("- "), 5, "alias *a3 repeats 11,111 values"),
    "deep_nesting": (deep("- "), 1, f"nested more than {MAX_DEPTH} levels deep"),
    "control_char_in_comment": (
        control_char("- name: route\n  publish: {topic: 'x/{source}'}\n"),
        3,
        "U+0007 is not allowed",
    ),
    "too_large": (oversized(""), 1, "a config or rules file may be at most 1 MiB"),
}


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*TIDEGATE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    # Capped at once: it spends its first half second importing, long before reading YAML.
    cap_address_space(proc.pid, CLI_ADDRESS_SPACE)
    return proc


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = start_cli(*args, env=env)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def assert_one_located_line(output: str, path: Path, line: int, needle: str) -> None:
    assert "Traceback" not in output, output
    located = [x for x in output.splitlines() if x.startswith(f"{path}:")]
    assert len(located) == 1, output
    assert re.match(rf"{re.escape(str(path))}:{line}:\d+: ", located[0]), located[0]
    assert needle in located[0], located[0]


# -- check, run and rules test refuse them, located, exit 2 --------------------------------


@pytest.fixture(scope="module")
def refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str], tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every hostile file through the real CLI, the processes in parallel."""
    folder = tmp_path_factory.mktemp("hostile")
    procs: dict[tuple[str, str], tuple[Path, subprocess.Popen[str]]] = {}
    for name, (text, _, _) in CONFIG_CASES.items():
        path = folder / f"{name}.yaml"
        path.write_text(text)
        for command in ("check", "run"):
            procs[("config", f"{command}:{name}")] = (path, start_cli(command, "-c", str(path)))
    events = folder / "events.jsonl"
    events.write_text("")
    for name, (text, _, _) in RULE_FILE_CASES.items():
        base = folder / f"rules-{name}"
        path = base / "rules.d" / "10-hostile.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(text)
        config = write_config(base / "tidegate.yaml", GOOD + "rules_dir: rules.d\n")
        procs[("rules", f"check:{name}")] = (path, start_cli("check", "-c", str(config)))
        procs[("rules", f"rules-test:{name}")] = (
            path,
            start_cli("rules", "test", str(path), str(events)),
        )
    out = {}
    deadline = time.monotonic() + 90  # within pytest's timeout: each case then fails alone
    for key, (path, proc) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            stderr += "\n(killed: still running after 90 s)"
        out[key] = (path, subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return out


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_a_hostile_config_is_refused_in_one_located_line(
    refused: dict[tuple[str, str], tuple[Path, subprocess.CompletedProcess[str]]],
    command: str,
    name: str,
) -> None:
    path, done = refused[("config", f"{command}:{name}")]
    _, line, needle = CONFIG_CASES[name]
    # 2, not 1: systemd restarts on 1 (every 5 s, for ever); the unit says
    # RestartPreventExitStatus=2.
    assert done.returncode == 2, done.stderr
    assert_one_located_line(done.stderr, path, line, needle)


@pytest.mark.parametrize("command", ["check", "rules-test"])
@pytest.mark.parametrize("name", sorted(RULE_FILE_CASES))
def test_a_hostile_rule_file_is_refused_in_one_located_line(
    refused: dict[tuple[str, str], tuple[Path, subprocess.CompletedProcess[str]]],
    command: str,
    name: str,
) -> None:
    path, done = refused[("rules", f"{command}:{name}")]
    _, line, needle = RULE_FILE_CASES[name]
    assert done.returncode == 2, done.stderr
    assert_one_located_line(done.stderr, path, line, needle)


def test_a_huge_file_is_refused_by_its_size_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(GOOD)
    os.truncate(path, 50 * 1024 * 1024)  # sparse: costs no disk
    done = cli("check", "-c", str(path))
    assert done.returncode == 2, done.stderr
    assert_one_located_line(done.stderr, path, 1, "the file is 52,428,800 bytes")


# -- the limits themselves ------------------------------------------------------------------


def messages(text: str) -> list[str]:
    with pytest.raises(ConfigError) as failed:
        load_yaml_text(text, "f.yaml")
    return failed.value.messages


def test_nesting_up_to_the_limit_loads_one_more_level_is_refused() -> None:
    # The top-level list is the first level.
    data, _ = load_yaml_text("[" * MAX_DEPTH + "]" * MAX_DEPTH, "f.yaml")
    for _ in range(MAX_DEPTH - 1):
        (data,) = data
    assert data == []
    assert messages("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)) == [
        f"f.yaml:1:{MAX_DEPTH + 1}: nested more than {MAX_DEPTH} levels deep"
    ]


def test_aliases_count_every_value_they_repeat_up_to_the_limit() -> None:
    # A list of 1 + 99 values, re-used: 1 (the top list) + 100 per use, then single values.
    uses, singles = divmod(MAX_NODES - 1, 100)
    lines = ["- &a [" + ", ".join(["x"] * 99) + "]"] + ["- *a"] * (uses - 1) + ["- y"] * singles
    _, smap = load_yaml_text("\n".join(lines), "f.yaml")
    assert len(smap.values) == MAX_NODES  # the walk that the count bounds
    assert messages("\n".join([*lines, "- z"])) == [
        f"f.yaml:{len(lines) + 1}:3: the file has more than {MAX_NODES:,} values (the limit)"
    ]


def test_merge_keys_and_anchors_as_people_use_them_still_load() -> None:
    text = (
        "defaults: &defaults {type: sim, signals: [{name: n, kind: counter, rate: 1}]}\n"
        "drivers:\n" + "".join(f"  - {{<<: *defaults, name: s{i}}}\n" for i in range(200))
    )
    data, smap = load_yaml_text(text, "f.yaml")
    assert [d["name"] for d in data["drivers"]] == [f"s{i}" for i in range(200)]
    assert data["drivers"][7]["type"] == "sim"
    assert str(smap.locate(("drivers", 7, "name"))) == "f.yaml:10:27"


def test_explicit_keys_override_merged_ones() -> None:
    # YAML's merge key: the mapping's own keys win over merged ones; of several
    # merged mappings, the first that has a key wins.
    text = (
        "d: &d {name: t, kind: sine, rate: 1}\n"
        "e: &e {rate: 3, unit: C}\n"
        "one: {<<: *d, rate: 2}\n"
        "both: {<<: [*e, *d]}\n"
        "own: &own {<<: *d, rate: 4}\n"
        "again: *own\n"
    )
    data, smap = load_yaml_text(text, "f.yaml")
    assert data["one"] == {"name": "t", "kind": "sine", "rate": 2}
    assert data["both"] == {"name": "t", "kind": "sine", "rate": 3, "unit": "C"}
    # Walked twice (once through the alias): still the same, no "duplicate".
    assert data["own"] == data["again"] == {"name": "t", "kind": "sine", "rate": 4}
    assert str(smap.locate(("one", "rate"), key=True)) == "f.yaml:3:15"
    assert str(smap.locate(("one", "name"), key=True)) == "f.yaml:1:8"


def test_a_key_repeated_in_the_same_mapping_is_a_duplicate_even_with_a_merge() -> None:
    text = "d: &d {rate: 1}\nx: {<<: *d, rate: 2, rate: 3}\n"
    assert messages(text) == ["f.yaml:2:22: duplicate key 'rate'"]
    assert messages("x: {a: 1, a: 2}\n") == ["f.yaml:1:11: duplicate key 'a'"]


def test_a_chain_of_merges_is_bounded_too() -> None:
    # Each level merges the previous one: sizes add up quadratically.
    lines = ["a0: &a0 {k0: 1}"]
    lines += [f"a{i}: &a{i} {{<<: *a{i - 1}, k{i}: 1}}" for i in range(1, 3000)]
    (message,) = messages("\n".join(lines))
    assert re.match(r"f\.yaml:\d+:\d+: alias \*a\d+ repeats [\d,]+ values", message), message


# -- a running gateway asked to reload them -------------------------------------------------------

ROUTE = "- name: route\n  publish: {{topic: '{topic}/{{source}}'}}\n"


def test_a_running_gateway_refuses_hostile_files_keeps_its_rules_and_its_memory(
    tmp_path: Path, broker: LocalBroker
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    # No control.socket in the file: client and gateway meet at the default place,
    # so the client must read the (hostile) config to look for one, too.
    env = {"RUNTIME_DIRECTORY": str(runtime)}
    rule_file = tmp_path / "rules.d" / "10-route.yaml"
    rule_file.parent.mkdir()
    rule_file.write_text(ROUTE.format(topic="old"))
    good_config = f"""
gateway: {{id: hostile, data_dir: {tmp_path / "data"}}}
mqtt: {{host: {broker.host}, port: {broker.port}}}
rules_dir: rules.d
drivers:
  - name: s
    type: sim
    signals: [{{name: n, kind: counter, rate: 100}}]
"""
    config = write_config(tmp_path / "tidegate.yaml", good_config)
    sub = Subscriber(broker.host, broker.port, "#").start()
    gateway = GatewayProcess(config, tmp_path / "gw.log", env).start()
    assert gateway.process is not None
    pid = gateway.process.pid
    cap_address_space(pid, GATEWAY_ADDRESS_SPACE)

    def count(prefix: str) -> int:
        return sum(1 for m in sub.snapshot() if m.topic.startswith(prefix))

    def still_routing_to(prefix: str) -> None:
        before = count(prefix)
        wait_until(lambda: count(prefix) >= before + 20, 20, f"more events on {prefix}")

    try:
        wait_until((runtime / "control.sock").exists, 30, "the control socket")
        still_routing_to("old/")
        for name, (text, line, needle) in RULE_FILE_CASES.items():
            rule_file.write_text(text)
            done = cli("reload", "-c", str(config), env=env)
            assert done.returncode == 1, (name, done.stderr)
            assert_one_located_line(done.stderr, rule_file, line, needle)
            assert "reload refused" in done.stderr
            assert memory_kib(pid) < PEAK_RSS_BOUND_KIB, name
            still_routing_to("old/")

        # The config file itself turned hostile: the client reads it to find the
        # socket and refuses it, located (the defaults could be another gateway's);
        # neither it nor the gateway may fall over.
        config.write_text(good_config + "x: " + deep(""))
        done = cli("reload", "-c", str(config), env=env)
        assert done.returncode == 2, done.stderr
        assert_one_located_line(done.stderr, config, 9, "nested more than")
        still_routing_to("old/")

        config.write_text(good_config)
        rule_file.write_text(ROUTE.format(topic="new"))
        done = cli("reload", "-c", str(config), env=env)
        assert done.returncode == 0, done.stderr
        still_routing_to("new/")
        output = gateway.output()
        assert "Traceback" not in output and "old rules keep running" in output
        assert memory_kib(pid) < PEAK_RSS_BOUND_KIB
    finally:
        code = gateway.stop()
        sub.stop()
    assert code == 0, gateway.output()
