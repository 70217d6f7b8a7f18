"""The schema of a rule's ``window:``: one model per kind, chosen by ``kind``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
from pydantic import ValidationError

from tests.rules.window_support import WINDOW_SECTION
from tidegate.errors import ConfigError
from tidegate.rules.loader import load_rule_path
from tidegate.rules.operators.window.config import (
    CountSection,
    HoppingSection,
    SessionSection,
    SlidingSection,
    TumblingSection,
    WindowKindSection,
)


def test_config_reads_durations_and_a_single_aggregate() -> None:
    config = WINDOW_SECTION.validate_python(
        {"kind": "hopping", "size": "2m", "hop": "500ms", "aggregate": "p99.9", "by": ["source"]}
    )
    assert isinstance(config, HoppingSection)
    assert (config.size, config.hop, config.aggregate, config.by) == (
        120.0,
        0.5,
        ["p99.9"],
        ["source"],
    )
    defaults = WINDOW_SECTION.validate_python({"kind": "session", "gap": 30})
    assert isinstance(defaults, SessionSection)
    assert (defaults.time, defaults.late, defaults.aggregate, defaults.allowed_lateness) == (
        "processing",
        "drop",
        ["avg"],
        0.0,
    )


def test_each_kind_is_its_own_model() -> None:
    kinds = {
        "tumbling": ({"size": 60}, TumblingSection),
        "hopping": ({"size": 60, "hop": 10}, HoppingSection),
        "sliding": ({"size": 60}, SlidingSection),
        "session": ({"gap": 60}, SessionSection),
        "count": ({"count": 60}, CountSection),
    }
    for kind, (lengths, model) in kinds.items():
        assert type(WINDOW_SECTION.validate_python({"kind": kind, **lengths})) is model
    assert {m.model_fields["kind"].annotation for m in get_args(WindowKindSection)} == {
        Literal[kind] for kind in kinds
    }


@pytest.mark.parametrize(
    ("config", "loc", "message"),
    [
        # What a kind needs, and keys that belong to other kinds: at the key's place.
        ({"kind": "tumbling"}, ("tumbling", "size"), "Field required"),
        ({"kind": "hopping", "size": 10}, ("hopping", "hop"), "Field required"),
        ({"kind": "session"}, ("session", "gap"), "Field required"),
        ({"kind": "count"}, ("count", "count"), "Field required"),
        ({"kind": "tumbling", "size": 10, "gap": 5}, ("tumbling", "gap"), "Extra inputs"),
        ({"kind": "count", "count": 5, "size": 5}, ("count", "size"), "Extra inputs"),
        ({"kind": "sliding", "size": 10, "emit_empty": True}, ("sliding", "emit_empty"), "Extra"),
        ({"kind": "count", "count": 5, "allowed_lateness": 0}, ("count", "allowed_lateness"), "Ex"),
        ({"kind": "tumbling", "size": 10, "sise": 5}, ("tumbling", "sise"), "Extra inputs"),
        # The kind itself.
        (
            {"kind": "rolling", "size": 10},
            (),
            "'tumbling', 'hopping', 'sliding', 'session', 'count'",
        ),
        ({"size": 10}, (), "Unable to extract tag using discriminator 'kind'"),
        # Values, and what spans keys.
        (
            {"kind": "hopping", "size": 5, "hop": 10},
            ("hopping",),
            "hop .10s. is longer than size .5s.",
        ),
        ({"kind": "tumbling", "size": 0}, ("tumbling", "size"), "greater than 0"),
        ({"kind": "tumbling", "size": "-1s"}, ("tumbling", "size"), "is not a duration"),
        ({"kind": "count", "count": 0}, ("count", "count"), "greater than or equal to 1"),
        (
            {"kind": "tumbling", "size": 10, "allowed_lateness": 5},
            ("tumbling",),
            "allowed_lateness applies to time: event windows only",
        ),
        (
            {"kind": "tumbling", "size": 10, "aggregate": []},
            ("tumbling", "aggregate"),
            "at least 1",
        ),
        (
            {"kind": "tumbling", "size": 10, "aggregate": ["avg", "avg"]},
            ("tumbling", "aggregate"),
            "lists avg more than once",
        ),
        (
            {"kind": "tumbling", "size": 10, "aggregate": ["average"]},
            ("tumbling", "aggregate", 0),
            "'average' is not an aggregate",
        ),
        (
            {"kind": "tumbling", "size": 10, "late": "keep"},
            ("tumbling", "late"),
            "should be 'drop'",
        ),
        ({"kind": "sliding", "size": 10, "time": "wall"}, ("sliding", "time"), "'processing' or"),
        ({"kind": "session", "gap": 1, "by": ["room"]}, ("session", "by"), "'room' is not a key"),
        (
            {"kind": "count", "count": 10, "max_values_per_key": 5},
            ("count",),
            "count .10. is above max_values_per_key",
        ),
    ],
)
def test_config_errors_say_what_is_wrong_where(
    config: dict[str, Any], loc: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        WINDOW_SECTION.validate_python(config)
    ((error_loc, error_message),) = [(e["loc"], e["msg"]) for e in caught.value.errors()]
    assert error_loc == loc
    assert re.search(message, error_message), error_message


def test_a_wrong_window_key_in_a_rule_file_is_reported_at_its_position(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- name: minute\n  window:\n    kind: tumbling\n    size: 1m\n    gap: 5s\n")
    with pytest.raises(ConfigError) as caught:
        load_rule_path(rules)
    (message,) = caught.value.messages
    assert message.startswith(f"{rules}:5:5: rules[0].window.gap: unknown key 'gap'"), message


def test_the_window_operator_alone_builds_every_kind() -> None:
    """Importing the window operator (without the rule schema, which imports every operator)
    brings every kind it can build: no kind depends on who imported what first."""
    code = (
        "from pydantic import TypeAdapter\n"
        "from tidegate.rules.operators.window.config import WindowSection\n"
        "from tidegate.rules.operators.window.operator import WindowOperator\n"
        "adapter = TypeAdapter(WindowSection)\n"
        "for kind in ({'kind': 'tumbling', 'size': 1}, {'kind': 'hopping', 'size': 2, 'hop': 1},\n"
        "             {'kind': 'sliding', 'size': 1}, {'kind': 'session', 'gap': 1},\n"
        "             {'kind': 'count', 'count': 3}):\n"
        "    WindowOperator.build(adapter.validate_python(kind))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
