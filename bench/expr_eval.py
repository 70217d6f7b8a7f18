"""Cost of evaluating rule expressions: microseconds per ``Expression.evaluate`` call.

Run: ``./dev bench expr_eval`` (or ``.venv/bin/python -m bench expr_eval``).
Each figure is the best of several rounds, so it shows the interpreter's cost
rather than the machine's noise. Compilation is measured too, though it runs
once per rule at load.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from functools import partial

from tidegate.event import Event, new_event
from tidegate.rules.expr import compile_expression

_NUMBER = new_event("gh1", "temperature", 31.5, unit="degC", tags={"room": "a"})
_MAPPING = new_event("gh1", "climate", {"humidity": 45, "temperature": 21.5})

CASES: list[tuple[str, Event]] = [
    ("value > 30", _NUMBER),
    ("value > 30 and tags.room in ['a', 'b']", _NUMBER),
    ("value * 1.8 + 32", _NUMBER),
    ("value.humidity >= 40 if source == 'gh1' else true", _MAPPING),
    ("clamp(round(value, 1), 0, 50)", _NUMBER),
    ("coalesce(tags.zone, lower(source)) + '/' + name", _NUMBER),
]


def _best_microseconds(call: Callable[[], object], number: int, rounds: int = 5) -> float:
    seconds = min(timeit.repeat(call, number=number, repeat=rounds))
    return seconds / number * 1e6


def main(argv: list[str]) -> None:
    del argv  # no options: every case, every time
    print(f"{'expression':<52} {'evaluate µs':>11} {'compile µs':>11}")
    for text, event in CASES:
        expression = compile_expression(text)
        expression.evaluate(event)  # fails loudly here, not inside the timing loop
        evaluate = _best_microseconds(partial(expression.evaluate, event), 200_000)
        compile_ = _best_microseconds(partial(compile_expression, text), 2_000)
        print(f"{text:<52} {evaluate:>11.3f} {compile_:>11.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
