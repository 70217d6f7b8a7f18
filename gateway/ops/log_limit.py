"""Rate-limiting repeated log lines, so a week-long outage does not fill the SD card.

A line is "repeated" when it comes from the same place in the code with the
same level and the same text arguments; numbers in the arguments (an attempt
counter, a retry delay) do not make it new. Each such line may be written
``burst`` times per ``per`` seconds; the last one allowed says that more will
be suppressed. When the window is over, the count of what was suppressed is
written on a line of its own: before the next line of that kind, or as soon as
any line is logged (windows are checked at most once a minute).

A sensor that fails to reopen every 30 s for a week writes, with the defaults
(5 per hour), 6 lines an hour instead of 120, and a new kind of error is never
hidden behind it: it has its own key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tidegate.ops.config import RateLimitSection
from tidegate.wording import count, noun

Key = tuple[str, int, str, int, tuple[str, ...]]

SUMMARY_MARK = "_tidegate_repeat_summary"
"""Attribute set on the summary records this module writes, so they pass its own filter."""
MAX_KEYS = 1024
"""Windows remembered at most; beyond that the oldest are forgotten (their counts written)."""


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a kind of line comes from, for its summary (not the record: that
    would keep a traceback's frames alive)."""

    name: str
    levelno: int
    pathname: str
    lineno: int
    template: str

    @classmethod
    def of(cls, record: logging.LogRecord) -> _Origin:
        template = str(record.msg)
        if len(template) > 80:
            template = template[:77] + "..."
        return cls(record.name, record.levelno, record.pathname, record.lineno, template)


@dataclass(slots=True)
class _Window:
    start: float
    origin: _Origin
    passed: int = 1
    suppressed: int = 0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _annotate(record: logging.LogRecord, note: str) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is logging's to report, not ours
        return
    record.msg = f"{message} [{note}]"
    record.args = None


class RepeatLimiter(logging.Filter):
    """A handler filter: at most ``burst`` lines of one kind per ``per`` seconds."""

    def __init__(
        self,
        burst: int = 5,
        per: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.per = per
        self.clock = clock
        self.max_keys = max_keys
        self.handler: logging.Handler | None = None
        """Where summaries of windows that ended quietly are written (set by ``install``)."""
        self.suppressed_total = 0
        self._windows: dict[Key, _Window] = {}
        self._lock = threading.Lock()
        self._next_sweep = clock() + min(per, 60.0)

    @staticmethod
    def key(record: logging.LogRecord) -> Key:
        args = record.args if isinstance(record.args, tuple) else ()
        # Only text arguments tell kinds apart: "/dev/ttyUSB0: no such device" vs another
        # port. Numbers (attempt 17, retrying in 3.2 s) would make every line new.
        texts = tuple(
            a if isinstance(a, str) else str(a) for a in args if not isinstance(a, int | float)
        )
        return (record.name, record.levelno, record.pathname, record.lineno, texts)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY_MARK, False):
            return True
        ended: list[_Window] = []
        with self._lock:  # the outbox thread logs too
            verdict = self._decide(record, ended)
        for window in ended:  # outside the lock: writing them runs this filter again
            self._summarise(window)
        return verdict

    def _decide(self, record: logging.LogRecord, ended: list[_Window]) -> bool:
        now = self.clock()
        if now >= self._next_sweep:
            self._next_sweep = now + min(self.per, 60.0)
            for key in [k for k, w in self._windows.items() if now - w.start >= self.per]:
                ended.append(self._windows.pop(key))
        key = self.key(record)
        window = self._windows.get(key)
        if window is None or now - window.start >= self.per:
            if window is not None:
                ended.append(window)  # its count (if any) is written before this line
            self._windows.pop(key, None)  # re-insert: the dict stays ordered oldest first
            self._windows[key] = _Window(now, _Origin.of(record))
            if self.burst == 1:
                _annotate(record, self._limit_note(self._windows[key], now))
            if len(self._windows) > self.max_keys:
                ended.append(self._windows.pop(next(iter(self._windows))))
            return True
        if window.passed < self.burst:
            window.passed += 1
            if window.passed == self.burst:
                _annotate(record, self._limit_note(window, now))
            return True
        window.suppressed += 1
        self.suppressed_total += 1
        return False

    def _limit_note(self, window: _Window, now: float) -> str:
        return (
            f"limit of {self.burst} like this per {_duration(self.per)} reached; more are "
            f"suppressed for {_duration(window.start + self.per - now)}"
        )

    def _summarise(self, window: _Window) -> None:
        """Write the count of a window that ended with no line of its kind since."""
        if not window.suppressed or self.handler is None:
            return
        origin = window.origin
        summary = logging.LogRecord(
            origin.name,
            origin.levelno,
            origin.pathname,
            origin.lineno,
            "%s like “%s” %s suppressed in %s",
            (
                count(window.suppressed, "more line"),
                origin.template,
                noun(window.suppressed, "was", "were"),
                _duration(self.clock() - window.start),
            ),
            None,
        )
        setattr(summary, SUMMARY_MARK, True)
        self.handler.handle(summary)


def install_rate_limit(
    section: RateLimitSection | None, logger: logging.Logger | None = None
) -> RepeatLimiter | None:
    """Put a limiter on ``logger``'s (default: root's) first handler, replacing an
    earlier one; ``None`` removes it. Safe to call again on reload."""
    target = logger if logger is not None else logging.getLogger()
    if not target.handlers:
        return None
    handler = target.handlers[0]
    for old in [f for f in handler.filters if isinstance(f, RepeatLimiter)]:
        handler.removeFilter(old)
    if section is None:
        return None
    limiter = RepeatLimiter(section.burst, section.per)
    limiter.handler = handler
    handler.addFilter(limiter)
    return limiter
