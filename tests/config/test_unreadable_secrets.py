"""A password the config points at but that is not there: `tidegate run` exits 2 at
start with one line (no secret in it), like a missing ``ca_file``, so that systemd
(``RestartPreventExitStatus=2``) stops instead of restarting it every 5 seconds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import TIDEGATE

DRIVER = "drivers: [{name: s, type: sim, signals: [{name: n, kind: counter, rate: 1}]}]\n"


def run_gateway(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TIDEGATE, "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("password_file: {missing}", "cannot read the MQTT password from file {missing}: "),
        ("password_env: TG_NO_SUCH_PASSWORD", "the MQTT password variable $TG_NO_SUCH_PASSWORD"),
        ("password_credential: mqtt-password", "password_credential 'mqtt-password' needs"),
    ],
)
def test_a_password_that_is_not_there_stops_the_start_with_exit_2(
    tmp_path: Path, source: str, message: str
) -> None:
    missing = tmp_path / "no-such-password"
    config = tmp_path / "tidegate.yaml"
    config.write_text(
        f"gateway: {{data_dir: {tmp_path / 'data'}}}\n"
        f"mqtt: {{host: 127.0.0.1, port: 1, username: u, {source.format(missing=missing)}}}\n"
        + DRIVER
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TG_NO_SUCH_PASSWORD", "CREDENTIALS_DIRECTORY")
    }
    done = run_gateway(config, env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tidegate: error: " + message.format(missing=missing)), lines


def test_the_message_never_shows_the_password(tmp_path: Path) -> None:
    # A password file that cannot be read as text: the error names the file, not what it holds.
    secret = "s3cret-\udcff"
    password = tmp_path / "pw"
    password.write_bytes(secret.encode("utf-8", "surrogateescape"))
    config = tmp_path / "tidegate.yaml"
    config.write_text(
        f"gateway: {{data_dir: {tmp_path / 'data'}}}\n"
        f"mqtt: {{host: 127.0.0.1, port: 1, username: u, password_file: {password}}}\n" + DRIVER
    )
    done = run_gateway(config, dict(os.environ))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert f"cannot read the MQTT password from file {password}" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout
