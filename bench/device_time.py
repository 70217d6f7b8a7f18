"""Cost of a device time: microseconds per parsed frame, with and without ``time_field:``.

Run: ``./dev bench device_time`` (or ``.venv/bin/python -m bench device_time``).
The same two-value kv record is parsed bare and with a time in each format; the
difference is what reading, checking and counting the device time costs. The
last case is a device whose clock is an hour fast: every frame falls back, and
its log line is offered to the rate limiter (which lets one through an hour).
Each figure is the best of several rounds (the interpreter's cost, not the
machine's noise).
"""

from __future__ import annotations

import logging
import sys
import time
import timeit
from functools import partial
from typing import Any

from pydantic import TypeAdapter

from tidegate.drivers.parsing.device_time import log
from tidegate.drivers.parsing.parse import FrameParser, ParseConfig, TimeReport

PARSE: TypeAdapter[ParseConfig] = TypeAdapter(ParseConfig)
NOW = time.time()
WIDE = {"max_behind": "3650d", "max_ahead": "3650d"}  # every frame's time is used

CASES: list[tuple[str, dict[str, Any] | None, bytes]] = [
    ("no time_field", None, b"t=21.5,h=40"),
    ("epoch_ms", {"field": "ts", "format": "epoch_ms"}, b"t=21.5,h=40,ts=%d" % (NOW * 1000)),
    ("rfc3339", {"field": "ts", "format": "rfc3339"},
     b"t=21.5,h=40,ts=2026-12-02T07:00:00.125+01:00"),
    ("hhmmss (nearest day)", {"field": "ts", "format": "hhmmss"}, b"t=21.5,h=40,ts=065959.25"),
    ("hhmmss + ddmmyy", {"field": "ts", "format": "hhmmss", "date_field": "d"},
     b"t=21.5,h=40,ts=065959.25,d=021226"),
]
FALLBACK = ("epoch_ms, 1 h ahead", {"field": "ts", "format": "epoch_ms"},
            b"t=21.5,h=40,ts=%d" % ((NOW + 3600) * 1000))


def main(argv: list[str]) -> None:
    del argv  # no options: every case, every time
    counters: dict[str, int] = {}

    def tally(counter: str) -> None:
        counters[counter] = counters.get(counter, 0) + 1

    # The one line the fallback case lets through goes nowhere (the cost is the same).
    log.addHandler(logging.NullHandler())
    log.propagate = False
    print(f"{'kv frame':<24} {'parse µs':>9}")
    for label, time_field, frame in [*CASES, FALLBACK]:
        config: dict[str, Any] = {"format": "kv", "fields": {"t": {}, "h": {}}}
        if time_field is not None:
            config["time_field"] = {**time_field, **({} if label == FALLBACK[0] else WIDE)}
        parser = FrameParser(PARSE.validate_python(config), "bench", TimeReport("bench", tally))
        parser.parse(frame, NOW)  # fails loudly here, not inside the timing loop
        call = partial(parser.parse, frame, NOW)
        seconds = min(timeit.repeat(call, number=50_000, repeat=7))
        print(f"{label:<24} {seconds / 50_000 * 1e6:>9.2f}")
    # Only the last case fell back.
    assert set(counters) == {"device_time", "clock_fallback", "device_time_ahead"}, counters


if __name__ == "__main__":
    main(sys.argv[1:])
