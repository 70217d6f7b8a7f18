"""Shared helpers of the expression language tests: sample events and how to run text."""

from __future__ import annotations

import pytest

from tidegate.event import Event, Value
from tidegate.rules.expr import ExpressionError, ExpressionRuntimeError, compile_expression


def event(
    value: Value = 21.5,
    *,
    source: str = "gh1",
    tags: dict[str, str] | None = None,
    unit: str | None = "degC",
) -> Event:
    return Event(
        source=source,
        name="temperature",
        value=value,
        time=1_700_000_000.25,
        id="0189f0c0-0000-7000-8000-000000000001",
        seq=7,
        unit=unit,
        tags={"room": "a", "floor": "2"} if tags is None else tags,
    )


EVENT = event()
CLIMATE = event({"humidity": 45, "temperature": 21.5, "ok": True, "label": "x"})


def run(text: str, on: Event = EVENT) -> object:
    return compile_expression(text).evaluate(on)


def load_error(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert "internal error" not in info.value.message
    return info.value


def runtime_error(text: str, on: Event) -> ExpressionRuntimeError:
    compiled = compile_expression(text)
    with pytest.raises(ExpressionRuntimeError) as info:
        compiled.evaluate(on)
    assert "internal error" not in str(info.value)
    with pytest.raises(ExpressionRuntimeError):
        compiled.test(on)
    return info.value
