"""The config file a command is given, when it cannot be used: real processes.

A user outside the service's group runs `tidegate status` on a device where
/etc/tidegate is 0750 root:tidegate: one line saying what is closed and the
way in, exit 2, not a traceback. A named file that is not even YAML is
refused at its position: the defaults would be another gateway's socket (the
service's), and `reload -c FILE` would reload that one instead.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.test_control_cli import small_config, wait_for_socket
from tests.support import TIDEGATE, GatewayProcess, tidegate

SERVICE_COMMANDS = (
    ["check"],
    ["status"],
    ["status", "--json"],
    ["tail"],
    ["reload"],
    ["buffer", "stats"],
)


def without_privileges() -> list[str]:
    """A prefix that runs a command as this user without root's power to read anything.

    The tests run as root, whom file modes do not stop; without its capabilities,
    root is an ordinary owner, and a folder of mode 0 is closed to it.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file modes do not stop root")
    prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop capabilities here: {probe.stderr.decode(errors='replace')}")
    return prefix


def unprivileged(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*without_privileges(), *TIDEGATE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def closed_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder holding a valid config, closed to everyone but root's capabilities."""
    folder = tmp_path / "etc"
    small_config(folder, "service", str(tmp_path / "state"))
    folder.chmod(0o000)
    try:
        yield folder
    finally:
        folder.chmod(0o755)  # so that pytest can remove it


def test_a_config_in_a_closed_folder_is_one_line_with_the_way_in(closed_folder: Path) -> None:
    config = closed_folder / "tidegate.yaml"
    for command in SERVICE_COMMANDS:
        for how in (["-c", str(config)], []):
            env = {} if how else {"TIDEGATE_CONFIG": str(config)}
            done = unprivileged(*command, *how, env=env)
            assert done.returncode == 2, (command, how, done.stderr)
            assert done.stderr.splitlines() == [
                f"tidegate: error: cannot read {config}: permission denied "
                f"(the folder {closed_folder} is open to root only: use sudo)"
            ], (command, how)
    done = unprivileged("check", str(config))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


def test_a_folder_of_a_group_names_the_group(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user and group takes root")
    folder = tmp_path / "etc"
    config = small_config(folder, "service", str(tmp_path / "state"))
    nobody = 65534
    group = grp.getgrgid(nobody).gr_name
    os.chown(folder, nobody, nobody)  # as on a device: 0750, someone else's, its group's
    folder.chmod(0o750)
    done = unprivileged("status", "-c", str(config))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"tidegate: error: cannot read {config}: permission denied (the folder {folder} "
        f"is closed to you: use sudo, or be in its group '{group}' "
        f"(sudo usermod -aG {group} $USER, then log in again))"
    ]


def test_a_file_closed_to_the_user_is_one_line(tmp_path: Path) -> None:
    config = small_config(tmp_path, "service", str(tmp_path / "state"))
    config.chmod(0o000)
    for command in (["check"], ["status"]):
        done = unprivileged(*command, "-c", str(config))
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.splitlines() == [
            f"tidegate: error: cannot read {config}: permission denied "
            f"(the file {config} is open to root only: use sudo)"
        ], command


def test_a_named_file_that_is_not_yaml_never_reaches_another_gateway(tmp_path: Path) -> None:
    # The service: under systemd, its socket is in the runtime directory, which is also
    # where a client looks for a gateway whose file names no data_dir and no socket.
    runtime = tmp_path / "run"
    runtime.mkdir()
    service_env = {"RUNTIME_DIRECTORY": str(runtime)}
    service = small_config(tmp_path / "service", "service", str(tmp_path / "state"))
    gateway = GatewayProcess(service, tmp_path / "gw.log", service_env).start()
    mine = tmp_path / "mine" / "tidegate.yaml"
    try:
        wait_for_socket(gateway, runtime / "control.sock")
        broken = {
            "control: {socket: run/gw.sock}\ndrivers: [oops\n": ":3:1: YAML syntax error: ",
            "": ":1:1: the file is empty",
            "- a list\n": ":1:1: the file is not a mapping of sections",
        }
        mine.parent.mkdir()
        for text, message in broken.items():
            mine.write_text(text)
            for how, env in (
                (["-c", str(mine)], service_env),
                ([], {**service_env, "TIDEGATE_CONFIG": str(mine)}),
            ):
                for command in (["reload"], ["status"], ["tail"]):
                    done = tidegate(*command, *how, env=env)
                    assert done.returncode == 2, (command, text, done.stdout, done.stderr)
                    first, summary = done.stderr.splitlines()
                    assert first.startswith(f"{mine}{message}"), (command, text, first)
                    assert summary == "tidegate: configuration invalid (1 problem)"
        # A folder named as the file: the same, not the service either.
        done = tidegate("reload", "-c", str(mine.parent), env=service_env)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines()[0] == f"{mine.parent}:1:1: cannot read: Is a directory"
        # The service was there all along, for whoever names its file.
        done = tidegate("reload", "-c", str(service), env=service_env)
        assert done.returncode == 0, done.stderr
    finally:
        assert gateway.stop() == 0, gateway.output()
