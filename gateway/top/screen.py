"""The curses shell of `tidegate top`: poll, read keys, write the lines that changed.

Everything the screen says comes from ``tidegate.top.render``; this module
only asks the gateway for its status twice a second, follows its event
stream on a thread (for the signals' values), passes keys to ``UiState`` and
writes the rows that differ from the last frame. curses' own
``noutrefresh``/``doupdate`` then send the terminal only the characters
that changed, which is what keeps it usable over a slow SSH link.
"""

from __future__ import annotations

import contextlib
import curses
import locale
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidegate.errors import TidegateError
from tidegate.top.model import HISTORY, Tracker
from tidegate.top.render import render
from tidegate.top.state import UiState

if TYPE_CHECKING:
    from tidegate.ops.control_client import ControlClient

POLL_INTERVAL = 0.5
"""Seconds between status requests: the "about twice a second" of the screen."""
KEY_WAIT_MS = 100
"""Longest a key waits to be read; also the loop's tick, so a key answers within it."""
STREAM_RETRY = 1.0


class NoTerminal(TidegateError):
    """`tidegate top` was not given a terminal to draw on (a usage error)."""

    exit_code = 2


class EventStream:
    """The gateway's event stream (as `tidegate tail` reads it), on a daemon
    thread, into the tracker: each signal's last value. It reconnects when the
    gateway restarts; the process ending is what ends it."""

    def __init__(self, client: ControlClient, tracker: Tracker, lock: threading.Lock) -> None:
        self.client = client
        self.tracker = tracker
        self.lock = lock
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="top-events", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        from tidegate.ops.control_client import ControlError  # noqa: PLC0415

        while not self.stopped.is_set():
            try:
                for line in self.client.tail():
                    with self.lock:
                        if "event" in line:
                            self.tracker.event(line["event"])
                        elif "dropped" in line:
                            self.tracker.stream_skipped += int(line["dropped"])
                            self.tracker.stream_note = (
                                f"{self.tracker.stream_skipped} events skipped (read too slowly)"
                            )
                        elif "end" in line:
                            self.tracker.stream_note = f"the event stream ended: {line['end']}"
            except (ControlError, OSError) as exc:
                with self.lock:
                    self.tracker.stream_note = f"no event stream: {exc}"
            self.stopped.wait(STREAM_RETRY)


def run_top(client: ControlClient) -> None:
    """Run the dashboard until ``q``. Without a terminal, or without a gateway to
    talk to, one line (NoTerminal, exit 2; GatewayNotRunning, exit 1)."""
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise NoTerminal(
            "tidegate top needs a terminal (stdin and stdout); `tidegate status` prints once"
        )
    first = client.status()  # not running: its one line, before the screen opens
    tracker = Tracker(recall=_history_of(first))
    tracker.observe(first)
    lock = threading.Lock()
    EventStream(client, tracker, lock).start()
    # Before initscr: curses writes UTF-8 (the sparklines) only under the user's locale.
    locale.setlocale(locale.LC_ALL, "")
    ascii_only = locale.getpreferredencoding(False).lower().replace("-", "") != "utf8"
    try:
        curses.wrapper(_run_shell, client, tracker, lock, ascii_only)
    except curses.error as exc:
        raise NoTerminal(f"tidegate top cannot drive this terminal: {exc}") from None


def _history_of(doc: dict[str, Any]) -> Callable[[str, str], list[float]]:
    """A signal's recent values from the gateway's history file, when it keeps one."""
    history = doc.get("history")
    if not isinstance(history, dict) or not history.get("path"):
        return lambda source, name: []
    from tidegate.history.recent import recent_values  # noqa: PLC0415 - with history only

    path = Path(str(history["path"]))
    return lambda source, name: recent_values(path, source, name, HISTORY)


class Shell:
    """One run of the screen: the loop, and the last frame written (to skip rows
    that did not change)."""

    def __init__(
        self, screen: curses.window, client: ControlClient, tracker: Tracker, lock: threading.Lock
    ) -> None:
        self.screen = screen
        self.client = client
        self.tracker = tracker
        self.lock = lock
        self.ui = UiState()
        self.ascii_only = False
        self.shown: list[str] = []

    def loop(self) -> None:
        from tidegate.ops.control_client import ControlError  # noqa: PLC0415

        with contextlib.suppress(curses.error):  # a terminal without an invisible cursor
            curses.curs_set(0)
        curses.set_escdelay(25)  # Esc leaves the filter prompt at once, not after a second
        self.screen.timeout(KEY_WAIT_MS)
        next_poll = time.monotonic() + POLL_INTERVAL
        dirty = True
        while not self.ui.quit:
            if dirty:
                self.draw()
                dirty = False
            code = self.screen.getch()
            if code == curses.KEY_RESIZE:
                self.screen.clear()
                self.shown, dirty = [], True
            elif code != -1:
                dirty = self.ui.key(code)
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + POLL_INTERVAL
                if not self.ui.paused:
                    try:
                        doc = self.client.status()
                    except ControlError as exc:
                        with self.lock:
                            self.tracker.failed(str(exc))
                    else:
                        with self.lock:
                            self.tracker.observe(doc)
                    dirty = True

    def draw(self) -> None:
        """Write the rows that differ from the last frame."""
        height, width = self.screen.getmaxyx()
        with self.lock:
            lines = render(self.tracker, self.ui, width, height, ascii_only=self.ascii_only)
        for y, line in enumerate(lines):
            if y < len(self.shown) and self.shown[y] == line:
                continue
            try:
                self.screen.move(y, 0)
                self.screen.clrtoeol()
                self.screen.addstr(y, 0, line)
            except curses.error:
                # Writing the bottom-right cell moves the cursor off the screen, which
                # curses reports as an error after having written it: nothing is lost.
                pass
        self.screen.noutrefresh()
        curses.doupdate()
        self.shown = lines


def _run_shell(
    screen: curses.window,
    client: ControlClient,
    tracker: Tracker,
    lock: threading.Lock,
    ascii_only: bool,
) -> None:
    shell = Shell(screen, client, tracker, lock)
    shell.ascii_only = ascii_only
    shell.loop()
