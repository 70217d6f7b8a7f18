"""A real terminal for tests: a private tmux server, a pane of a given size,
its screen read with ``capture-pane`` and keys sent with ``send-keys``.

The command runs under ``sh``, which prints ``[exit N]`` when it ends and then
waits, so the test reads the exit status from the screen instead of racing
the pane's disappearance.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import pytest


class Terminal:
    def __init__(
        self, command: Sequence[str], folder: Path, width: int = 80, height: int = 24
    ) -> None:
        tmux = shutil.which("tmux")
        if tmux is None:
            pytest.fail("tmux is not installed; ./dev test installs it")
        self.tmux = tmux
        # A server of the test's own, its socket in the test's folder: nothing shared
        # with other tests or the user's tmux, and nothing left behind in /tmp/tmux-UID.
        self.server = str(folder / "tmux.sock")
        self.width, self.height = width, height
        wrapped = ["sh", "-c", '"$0" "$@"; echo "[exit $?]"; exec sleep 600', *command]
        self._tmux("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height), *wrapped)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            [self.tmux, "-S", self.server, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def screen(self) -> list[str]:
        # -J: a line the shell wrapped (a long error) comes back whole; curses never wraps.
        captured = self._tmux("capture-pane", "-p", "-J", "-t", "top")
        return [line.rstrip() for line in captured.split("\n")[: self.height]]

    def text(self) -> str:
        return "\n".join(self.screen())

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", "top", *(["-l"] if literal else []), *keys)

    def wait_for(
        self, condition: Callable[[str], bool] | str, what: str = "", timeout: float = 20
    ) -> str:
        """Until the screen shows ``condition`` (a text, or a test of the screen);
        the screen then. Fails with the screen as it was at the deadline."""
        test = (lambda s: condition in s) if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if test(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what or condition!r}; screen:\n{text}"
                )
            time.sleep(0.05)

    def exit_status(self, timeout: float = 20) -> int:
        text = self.wait_for(lambda s: re.search(r"\[exit \d+\]", s) is not None, "the exit")
        found = re.search(r"\[exit (\d+)\]", text)
        assert found is not None
        return int(found.group(1))

    def close(self) -> None:
        subprocess.run(
            [self.tmux, "-S", self.server, "kill-server"], capture_output=True, check=False
        )

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
