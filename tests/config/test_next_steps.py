"""The README's "Next steps", pasted in order into a shell while the demo runs, work."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TIDEGATE, wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVICE_CONFIG = Path("/etc/tidegate/tidegate.yaml")


def _next_steps() -> list[str]:
    section = (ROOT / "README.md").read_text().split("\n## Next steps", 1)[1].split("\n## ")[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.strip()]
    return [line.split(" #")[0].strip() for line in lines]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder that looks like the checkout (so `cp … my.yaml` writes here, not there)."""
    work = tmp_path / "work"
    work.mkdir()
    for name in (".venv", "config", "tests"):
        (work / name).symlink_to(ROOT / name)
    return work


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """A user whose home is empty: the demo keeps its outbox under it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDEGATE_", "XDG_"))}
    env["HOME"] = str(tmp_path / "home")
    return env


@pytest.fixture
def demo(checkout: Path, environ: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [*TIDEGATE, "simulate", "--no-broker"],
        cwd=checkout,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def _shell(command: str) -> list[str]:
    """The command as typed after `source .venv/bin/activate` (the first step)."""
    return ["bash", "-c", f"source .venv/bin/activate && exec {command}"]


@pytest.mark.skipif(SERVICE_CONFIG.exists(), reason="clients without -c talk to the service here")
def test_next_steps_work_as_written(
    demo: subprocess.Popen[bytes], checkout: Path, environ: dict[str, str]
) -> None:
    steps = _next_steps()
    assert steps[0] == "source .venv/bin/activate"

    def answers() -> bool:
        status = subprocess.run(
            _shell("tidegate status"),
            cwd=checkout,
            env=environ,
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    wait_until(answers, 60, "the demo's control socket to answer `tidegate status`")
    for step in steps[1:]:
        if step.startswith("tidegate tail"):
            _first_line_of(step, checkout, environ)
            continue
        done = subprocess.run(
            _shell(step),
            cwd=checkout,
            env=environ,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, f"{step}\n{done.stdout}{done.stderr}"
    assert (checkout / "my.yaml").exists()
    assert (checkout / "out.jsonl").read_text().count("\n") > 0


def _first_line_of(step: str, checkout: Path, environ: dict[str, str]) -> None:
    """A command that runs until Ctrl-C: it prints an event, then Ctrl-C stops it."""
    tail = subprocess.Popen(
        _shell(step),
        cwd=checkout,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None
        ready, _, _ = select.select([tail.stdout], [], [], 60)
        assert ready, f"{step} printed nothing within 60 s"
        line = tail.stdout.readline()
        assert "greenhouse/" in line, line + (tail.stderr.read() if tail.stderr else "")
    finally:
        tail.send_signal(signal.SIGINT)
        tail.wait(timeout=30)
