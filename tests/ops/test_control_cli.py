"""`tidegate status|tail|reload` against real gateway processes.

Which gateway a command reaches: the one of the config file it is given, and
no other (two gateways on one machine, each with its own socket), whether the
socket is named in the config (absolute or relative to the file), derived
from the data directory, in systemd's runtime directory behind a link, or at
a path longer than an AF_UNIX address holds.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from tests.support import GatewayProcess, tidegate, wait_until, write_config


def process_config(tmp_path: Path, rules: str = "") -> str:
    return f"""
gateway: {{id: proc, data_dir: {tmp_path / "data"}}}
control: {{socket: {tmp_path / "control.sock"}}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: 50}}]
  - name: beta
    type: sim
    signals: [{{name: t, kind: sine, rate: 20, unit: "°C"}}]
{rules}"""


def wait_for_socket(gateway: GatewayProcess, path: Path) -> None:
    """Until the gateway serves its control socket; fail at once if it exits instead."""
    process = gateway.process
    assert process is not None
    wait_until(lambda: path.exists() or process.poll() is not None, 30, "the control socket")
    assert path.exists(), f"the gateway exited:\n{gateway.output()}"


NEW_RULE = """rules:
  - name: counters
    match: {name: n}
    publish: {topic: "{prefix}/counters/{source}"}
"""


def test_status_tail_and_reload_against_a_running_gateway(tmp_path: Path) -> None:
    config = write_config(tmp_path / "tidegate.yaml", process_config(tmp_path))
    gateway = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        wait_for_socket(gateway, tmp_path / "control.sock")
        done = tidegate("status", "-c", str(config))
        assert done.returncode == 0, done.stderr
        assert "alpha" in done.stdout and "beta" in done.stdout and "outbox" in done.stdout

        doc = json.loads(tidegate("status", "--json", "-c", str(config)).stdout)
        assert {d["name"] for d in doc["drivers"]} == {"alpha", "beta"}
        assert gateway.process is not None and doc["pid"] == gateway.process.pid

        tail = tidegate("tail", "-c", str(config), "--source", "be*", "-n", "5", "--json")
        assert tail.returncode == 0, tail.stderr
        events = [json.loads(line) for line in tail.stdout.splitlines()]
        assert len(events) == 5 and {e["source"] for e in events} == {"beta"}
        readable = tidegate("tail", "-c", str(config), "--name", "n", "-n", "2")
        assert all(" alpha/n = " in line for line in readable.stdout.splitlines())

        # A new rule, applied without a restart.
        config.write_text(process_config(tmp_path, NEW_RULE))
        reloaded = tidegate("reload", "-c", str(config))
        assert reloaded.returncode == 0, reloaded.stderr
        assert "1 added" in reloaded.stdout
        doc = json.loads(tidegate("status", "--json", "-c", str(config)).stdout)
        assert "counters" in [r["name"] for r in doc["rules"]]
        topics = tidegate("tail", "-c", str(config), "--name", "n", "-n", "3", "--json")
        assert {json.loads(x)["topic"] for x in topics.stdout.splitlines()} == {
            "tidegate/proc/counters/alpha"
        }

        # A broken file is refused with its positions; the gateway keeps running.
        config.write_text(process_config(tmp_path, NEW_RULE + "    bogus: 1\n"))
        refused = tidegate("reload", "-c", str(config))
        assert refused.returncode == 1
        assert "tidegate.yaml:" in refused.stderr and "bogus" in refused.stderr
        assert refused.stderr.strip().splitlines()[-1].startswith("tidegate: error: reload refused")
        assert tidegate("status", "-c", str(config)).returncode == 0

        # SIGHUP reloads too (what `systemctl reload` amounts to without ExecReload).
        config.write_text(process_config(tmp_path))
        gateway.signal(signal.SIGHUP)
        wait_until(
            lambda: (
                "counters"
                not in [
                    r["name"]
                    for r in json.loads(tidegate("status", "--json", "-c", str(config)).stdout)[
                        "rules"
                    ]
                ]
            ),
            20,
            "the rule removed by a SIGHUP reload",
            poll=0.2,
        )
    finally:
        assert gateway.stop() == 0, gateway.output()


def test_each_command_says_in_one_line_that_no_gateway_runs(tmp_path: Path) -> None:
    missing = str(tmp_path / "control.sock")
    for command in (["status"], ["status", "--json"], ["tail"], ["reload"]):
        done = tidegate(*command, "--socket", missing)
        assert done.returncode == 1, (command, done)
        assert done.stdout == ""
        assert done.stderr.strip().splitlines() == [
            f"tidegate: error: no gateway is running (nothing listens on {missing})"
        ], command


# -- which gateway: the config's, and no other --------------------------------------------------

SMALL = """
gateway: {{id: {name}, data_dir: {data_dir}}}
{control}
drivers:
  - name: {name}-sensor
    type: sim
    signals: [{{name: n, kind: counter, rate: 20}}]
"""


def small_config(folder: Path, name: str, data_dir: str, control: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = SMALL.format(name=name, data_dir=data_dir, control=control)
    return write_config(folder / "tidegate.yaml", text)


def status_doc(config: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = tidegate("status", "--json", "-c", str(config), env=env)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_two_gateways_on_one_machine_each_reached_through_its_own_config(tmp_path: Path) -> None:
    # Relative paths are relative to each config file, not to the working directory the
    # gateways and the commands run in (the repository here).
    first = small_config(tmp_path / "first", "first", "./data")
    second = small_config(tmp_path / "second", "second", "./data", "control: {socket: run/gw.sock}")
    gateways = [
        GatewayProcess(first, tmp_path / "first.log").start(),
        GatewayProcess(second, tmp_path / "second.log").start(),
    ]
    try:
        wait_for_socket(gateways[0], tmp_path / "first" / "data" / "control.sock")
        wait_for_socket(gateways[1], tmp_path / "second" / "run" / "gw.sock")
        names = ("first", "second")
        for config, gateway, name in zip((first, second), gateways, names, strict=True):
            doc = status_doc(config)
            assert doc["gateway"] == name
            assert gateway.process is not None and doc["pid"] == gateway.process.pid
            tail = tidegate("tail", "-c", str(config), "-n", "3", "--json")
            assert tail.returncode == 0, tail.stderr
            assert {json.loads(line)["source"] for line in tail.stdout.splitlines()} == {
                f"{name}-sensor"
            }
        second.write_text(second.read_text() + NEW_RULE)
        reloaded = tidegate("reload", "-c", str(second))
        assert reloaded.returncode == 0, reloaded.stderr
        rules_of = {
            name: [r["name"] for r in status_doc(config)["rules"]]
            for config, name in ((first, "first"), (second, "second"))
        }
        assert "counters" in rules_of["second"] and "counters" not in rules_of["first"]
    finally:
        for gateway in gateways:
            assert gateway.stop() == 0, gateway.output()
    assert not (tmp_path / "first" / "data" / "control.sock").exists()


def test_under_systemd_the_socket_is_in_the_runtime_directory_and_the_data_dir_links_it(
    tmp_path: Path,
) -> None:
    runtime = tmp_path / "run" / "tidegate"
    runtime.mkdir(parents=True, mode=0o750)
    config = small_config(tmp_path, "service", str(tmp_path / "state"))
    link = tmp_path / "state" / "control.sock"
    gateway = GatewayProcess(config, tmp_path / "gw.log", {"RUNTIME_DIRECTORY": str(runtime)})
    gateway.start()
    try:
        wait_for_socket(gateway, runtime / "control.sock")
        wait_until(link.is_symlink, 10, "the link in the data directory")
        assert os.readlink(link) == str(runtime / "control.sock")
        # An admin's shell has no $RUNTIME_DIRECTORY: the link leads there.
        assert status_doc(config)["gateway"] == "service"
        # ExecReload runs with the service's environment: the same socket, directly.
        done = tidegate("reload", "-c", str(config), env={"RUNTIME_DIRECTORY": str(runtime)})
        assert done.returncode == 0, done.stderr
    finally:
        assert gateway.stop() == 0, gateway.output()
    assert not link.exists() and not link.is_symlink()
    assert not (runtime / "control.sock").exists()


def test_a_data_directory_deeper_than_an_af_unix_address_holds(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(["a-folder-with-a-long-name"] * 5))
    assert len(str(deep / "control.sock").encode()) > 107
    config = small_config(tmp_path, "deep", str(deep))
    gateway = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        wait_for_socket(gateway, deep / "control.sock")
        assert status_doc(config)["gateway"] == "deep"
    finally:
        assert gateway.stop() == 0, gateway.output()


def test_a_config_that_does_not_exist_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    for command in (["status"], ["status", "--json"], ["tail"], ["reload"]):
        done = tidegate(*command, "-c", str(missing))
        assert done.returncode == 2, (command, done)
        assert done.stderr.splitlines() == [
            f"tidegate: error: no such config file: {missing} (name one with -c FILE or "
            "$TIDEGATE_CONFIG)"
        ], command


def test_a_config_without_the_control_api_says_so(tmp_path: Path) -> None:
    config = small_config(tmp_path, "quiet", "./data", "control: {enabled: false}")
    done = tidegate("status", "-c", str(config))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"tidegate: error: {config} turns the control API off (control.enabled: false)"
    ]
