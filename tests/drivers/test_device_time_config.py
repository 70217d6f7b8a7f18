"""Device time (``time_field:``) in the configuration: each mistake is one located
line a user can act on, and a time field the frame can never hold is refused at
load instead of making every frame fall back.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tidegate.config.loader import load_config_text
from tidegate.drivers.parsing.config import TimeFieldSpec
from tidegate.errors import ConfigError

# --- the configuration ----------------------------------------------------------------


def drivers_yaml(parse: str) -> str:
    return f"""
gateway: {{id: t, data_dir: /tmp/unused}}
drivers:
  - name: gps
    type: serial
    port: /dev/ttyUSB0
    parse:
{parse}"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gw.yaml")
    return caught.value.messages


def test_the_old_timestamp_key_says_it_is_now_time_field() -> None:
    (message,) = problems(drivers_yaml(
        "      format: kv\n      fields: {t: {}}\n      timestamp: {field: ts, format: unix}\n"
    ))
    assert message.startswith("gw.yaml:")
    assert "`timestamp:` is now `time_field:`" in message and "\n" not in message


@pytest.mark.parametrize(
    ("time_field", "says"),
    [
        ("{field: ts, date_field: d}", "`date_field` goes with `format: hhmmss` only"),
        ("{field: ts, format: hhmmss, date_format: ddmmyy}", "`date_format` needs a `date_field`"),
        ("{field: ts, format: hhmmss, date_field: ts}", "must be different fields"),
        ("{field: ts, format: unix}", "time_field.format: `unix` is now `epoch_s`"),
        ("{field: ts, format: unix_ms}", "`unix_ms` is now `epoch_ms`"),
        ("{field: ts, format: iso8601}", "`iso8601` is now `rfc3339`"),
        ("{field: ts, format: unix_s}", "'epoch_s', 'epoch_ms', 'rfc3339' or 'hhmmss'"),
        ("{field: ts, max_ahead: soon}", "'soon' is not a duration"),
        ("{field: ts, max_behind: -1d}", "is not a duration"),
        ("{field: ts, on_invalid: drop}", "'clock' or 'reject'"),
    ],
)
def test_time_field_mistakes_are_one_line(time_field: str, says: str) -> None:
    (message,) = problems(drivers_yaml(
        f"      format: kv\n      fields: {{t: {{}}}}\n      time_field: {time_field}\n"
    ))
    assert says in message and "\n" not in message


@pytest.mark.parametrize(
    ("parse", "says"),
    [
        # A time field the record can never hold would make every frame fall back.
        ("format: csv\n      columns: [a, b]\n      fields: {a: {}}\n"
         "      time_field: {field: ts}", "time_field 'ts' is not in `columns` ['a', 'b']"),
        ("format: csv\n      columns: [utc, a]\n      fields: {a: {}}\n"
         "      time_field: {field: utc, format: hhmmss, date_field: day}",
         "date_field 'day' is not in `columns` ['utc', 'a']"),
        ("format: regex\n      pattern: 'T=(?P<t>[0-9.]+)'\n      fields: {t: {}}\n"
         "      time_field: {field: ts}", "time_field 'ts' is not in the pattern's groups ['t']"),
        ("format: regex\n      pattern: '(?P<t>[0-9.]+) (?P<utc>[0-9.]+)'\n"
         "      fields: {t: {}}\n      time_field: {field: utc, format: hhmmss, date_field: d}",
         "date_field 'd' is not in the pattern's groups ['t', 'utc']"),
        ("format: struct\n      fields: {t: {offset: 0, type: u8}}\n"
         "      time_field: {offset: 1, format: unix_ms}", "`unix_ms` is now `epoch_ms`"),
        ("format: struct\n      fields: {t: {offset: 0, type: u8}}\n"
         "      time_field: {offset: 1, format: epoch_ms}", "use `type: u64`"),
    ],
)
def test_a_time_field_the_frame_cannot_hold_is_a_config_error(parse: str, says: str) -> None:
    (message,) = problems(drivers_yaml(f"      {parse}\n"))
    assert says in message and "\n" not in message, message


def test_time_fields_in_columns_and_groups_load() -> None:
    load_config_text(drivers_yaml(
        "      format: csv\n      columns: [utc, day, a]\n      fields: {a: {}}\n"
        "      time_field: {field: utc, format: hhmmss, date_field: day}\n"
    ), "gw.yaml")
    load_config_text(drivers_yaml(
        "      format: regex\n      pattern: '(?P<t>[0-9.]+) (?P<ts>[0-9]+)'\n"
        "      fields: {t: {}}\n      time_field: {field: ts}\n"
    ), "gw.yaml")


def test_durations_read_like_the_other_config_durations() -> None:
    spec = TimeFieldSpec.model_validate({"field": "ts", "max_ahead": "2m", "max_behind": "12h"})
    assert (spec.max_ahead, spec.max_behind) == (120.0, 43200.0)
    with pytest.raises(ValidationError):
        TimeFieldSpec.model_validate({"field": "ts", "date_format": "mmddyy"})
