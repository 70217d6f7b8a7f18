"""`tidegate simulate -c FILE` on a laptop: a device's config, its devices switched to sim,
runs as it is (a real process, a real private Mosquitto, real outboxes)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import TIDEGATE, laptop_version, wait_until

ROOT = Path(__file__).resolve().parents[2]
STARTING_POINTS = sorted(
    path for path in (ROOT / "config").glob("*.yaml") if path.name != "simulate.yaml"
)


def on_a_laptop(example: Path, folder: Path) -> Path:
    """A copy of ``example`` with the lines its comments mark "laptop: sim" switched."""
    text = laptop_version(example.read_text())
    copy = folder / "my.yaml"
    copy.write_text(text)
    return copy


def laptop_env(state: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    env.pop("TIDEGATE_CONFIG", None)
    env.pop("CREDENTIALS_DIRECTORY", None)  # a laptop shell has no systemd credentials
    return env


def simulate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TIDEGATE, "simulate", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )


def received_events(stdout: str) -> int:
    return int(stdout.split("the local broker received ")[1].split(maxsplit=1)[0])


@pytest.mark.parametrize("example", STARTING_POINTS, ids=lambda p: p.name)
def test_a_starting_point_runs_on_a_laptop_as_the_readme_says(
    example: Path, tmp_path: Path
) -> None:
    """The README's `tidegate simulate -c my.yaml`: the file's cloud broker (a systemd
    credential, TLS) is replaced by the private one and its /var/lib/tidegate by a
    folder of its own under the demo's."""
    config = on_a_laptop(example, tmp_path)
    proc = simulate("-c", str(config), "--duration", "4", env=laptop_env(tmp_path / "state"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "started a private Mosquitto" in proc.stderr
    if "\nmqtt:" in example.read_text():
        assert "in place of the config's broker" in proc.stderr
    if set(re.findall(r"(?m)^\s+type: (\w+)", example.read_text())) == {"mqtt"}:
        # A bridge's devices publish to a broker on the device; on a laptop none does,
        # so no event comes in: the gateway's own status message proves the way out.
        assert "received 0 events in 0 messages, and " in proc.stdout
        assert "status message" in proc.stdout
    else:
        assert received_events(proc.stdout) > 0
    demo = tmp_path / "state" / "tidegate" / "simulate"
    assert not (demo / "outbox.db").exists()  # not the demo's outbox
    (own,) = [path.parent for path in demo.glob("*/outbox.db")]
    assert f"outbox {own / 'outbox.db'}" in proc.stderr


def test_beside_the_demo_each_has_its_own_outbox_and_plain_status_reaches_the_demo(
    tmp_path: Path,
) -> None:
    if Path("/etc/tidegate/tidegate.yaml").exists():
        pytest.skip("/etc/tidegate/tidegate.yaml exists here: plain `status` means the service")
    env = laptop_env(tmp_path / "state")
    demo_dir = tmp_path / "state" / "tidegate" / "simulate"
    config = on_a_laptop(ROOT / "config" / "pi-serial-gpio-tls.yaml", tmp_path)
    demo = subprocess.Popen(
        [*TIDEGATE, "simulate", "--no-broker", "--duration", "90"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        socket = demo_dir / "control.sock"
        wait_until(lambda: socket.exists() or demo.poll() is not None, 30, "the demo's socket")
        assert socket.exists(), demo.stderr.read() if demo.stderr else demo.returncode

        # Told to share the demo's folder: refused before a broker starts or the
        # banner tells the user how to reach it, with the option that avoids it.
        clash = simulate("-c", str(config), "--data-dir", str(demo_dir), env=env)
        assert clash.returncode == 1
        assert "another tidegate is using the outbox" in clash.stderr
        assert "--data-dir" in clash.stderr
        assert "started a private Mosquitto" not in clash.stderr
        assert "from another terminal" not in clash.stderr

        beside = simulate("-c", str(config), "--duration", "3", env=env)
        assert beside.returncode == 0, beside.stderr
        assert received_events(beside.stdout) > 0
        assert (demo_dir / "greenhouse-pi" / "outbox.db").exists()

        status = subprocess.run(
            [*TIDEGATE, "status"], capture_output=True, text=True, env=env, timeout=30, check=False
        )
        assert status.returncode == 0, status.stderr
        assert "gateway demo" in status.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        _, errors = demo.communicate(timeout=30)
    assert demo.returncode == 0, errors
