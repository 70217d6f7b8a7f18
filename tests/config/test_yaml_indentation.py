"""Indentation mistakes: a plain line with the columns to fix, not PyYAML's parser terms.

Each config below is a mistake a new user made (the M5 notes), cut down to the
lines that matter; the real PyYAML parser raises the error and the loader
words it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import TIDEGATE
from tidegate.config.yaml_limits import peek_yaml
from tidegate.config.yaml_source import load_yaml_text
from tidegate.errors import ConfigError

MODBUS = """\
gateway:
  id: home-pi
drivers:
  - name: mains
    type: modbus
    port: sim
{baudrate}
    devices:
      - name: sdm120
{slave}
        max_read: 60
"""

RAW = (
    "mapping values are not allowed here",
    "<block end>",
    "cannot start any token",
    "<block mapping start>",
)

# name: (config text, expected "LINE:COL", the whole message after "YAML syntax error: ")
CASES: dict[str, tuple[str, str, str]] = {
    # m1.yaml: a key two columns too deep, after a key that has a value.
    "key_too_deep": (
        MODBUS.format(baudrate="      baudrate: 2400", slave="        slave: 1"),
        "7:15",
        "`baudrate:` is indented deeper (column 7) than `port:` on line 6 (column 5), so YAML "
        "reads it as part of the value of `port:`: the keys of one mapping start in the same "
        "column; move it to column 5",
    ),
    # m1b.yaml: a key one column short of the keys of its list item.
    "key_one_short_in_item": (
        MODBUS.format(baudrate="    baudrate: 2400", slave="       slave: 1"),
        "10:8",
        "`slave:` starts in column 8, but the keys above it start in column 9 (`name:` on "
        "line 9): the keys of one mapping start in the same column; move it to column 9 to "
        "line up with them, or write '- ' in column 7 to start a new list item",
    ),
    # m1c.yaml: the same one column short, at the driver level.
    "driver_key_one_short": (
        "drivers:\n  - name: tank\n   type: onewire\n    path: sim\n",
        "3:4",
        "`type:` starts in column 4, but the keys above it start in column 5 (`name:` on "
        "line 2): the keys of one mapping start in the same column; move it to column 5 to "
        "line up with them, or write '- ' in column 3 to start a new list item",
    ),
    # Between two mappings' columns (no list involved): both columns are offered.
    "key_between_levels": (
        "mqtt:\n  host: h\n port: 1883\n",
        "3:2",
        "`port:` starts in column 2, but the keys above it start in column 3 (`host:` on "
        "line 2): the keys of one mapping start in the same column; move it to column 3 to "
        "line up with them, or to column 1 to line up with `mqtt:` on line 1",
    ),
    # i3.yaml: the item's other keys dedented to the column of its '- '.
    "item_keys_under_dash": (
        "drivers:\n  - name: env\n    type: i2c\n    devices:\n      - name: garden\n"
        "      chip: bme280\n      address: 0x76\n",
        "6:7",
        "`chip:` starts in column 7, under the '- ' on line 5, but is not a list item: indent "
        "it to column 9 to add it to that item (line up with `name:`), or start it with '- ' "
        "to make a new item",
    ),
    # i4.yaml: a list item that lost its '- '.
    "item_without_dash": (
        "drivers:\n  - name: tank\n    type: onewire\n    sensors:\n"
        "      - {id: 28-0316a2795cff, name: top}\n        {id: 28-0316a27a11ff, name: bottom}\n",
        "6:9",
        "this line (column 9) is neither a key nor a list item: to add it to the list of "
        "line 5, start it with '- ' in column 7",
    ),
    # i2.yaml: a tab for indentation; the key above has a value, so line up with it.
    "tab_indent": (
        MODBUS.format(baudrate="\tbaudrate: 2400", slave="        slave: 1"),
        "7:1",
        "this line is indented with a tab: YAML indents with spaces only; use spaces "
        "(column 5 lines up with `port:` on line 6)",
    ),
    # A tab under a key with no value: it was meant to nest.
    "tab_indent_nested": (
        "gateway:\n\tid: x\n",
        "2:1",
        "this line is indented with a tab: YAML indents with spaces only; use spaces (to nest "
        "it under `gateway:` on line 1, indent it deeper than column 1, e.g. to column 3)",
    ),
    "tab_after_colon": (
        "gateway:\n  id:\tx\n",
        "2:6",
        "a tab where YAML expects a space: replace the tab with a space",
    ),
    "tab_at_end": (
        "gateway:\n  id: x\t\n",
        "2:8",
        "a tab at the end of the line: YAML does not allow it here; remove it",
    ),
    # Not indentation: a value holding ': ' gets the quoting advice.
    "value_with_colon": (
        "drivers:\n  - name: a: b\n",
        "2:12",
        "the value of `name:` contains ': ', which YAML reads as another key: put the value "
        "in quotes",
    ),
    # After a quoted value the deeper line cannot be a continuation: still one fix.
    "key_too_deep_after_quoted": (
        "mqtt:\n  host: 'h'\n   port: 1883\n",
        "3:4",
        "`port:` is indented deeper (column 4) than `host:` on line 2 (column 3), which "
        "already has its value: the keys of one mapping start in the same column; move it "
        "to column 3",
    ),
    "list_item_one_short": (
        "rules:\n  - a\n - b\n",
        "3:2",
        "this list item starts in column 2, which lines up with nothing above it: the items "
        "of one list start in the same column; move its '- ' to column 3 to line up with the "
        "'- ' on line 2",
    ),
    "list_item_in_mapping": (
        "mqtt:\n  host: h\n - b\n",
        "3:2",
        "this list item starts in column 2, but no list above it is open there: a list goes "
        "under a key with nothing after its ':' (like `devices:`), indented deeper than that "
        "key, each '- ' in the same column",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_indentation_mistake_is_one_plain_line(name: str) -> None:
    text, where, message = CASES[name]
    with pytest.raises(ConfigError) as caught:
        load_yaml_text(text, "t.yaml")
    assert caught.value.messages == [f"t.yaml:{where}: YAML syntax error: {message}"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_peeking_clients_get_the_same_line(name: str, tmp_path: Path) -> None:
    # `tidegate status` and friends peek at the config (yaml_limits.peek_yaml).
    text, where, message = CASES[name]
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        peek_yaml(path)
    assert caught.value.messages == [f"{path}:{where}: YAML syntax error: {message}"]


def test_other_syntax_errors_keep_pyyaml_words() -> None:
    # Not an indentation mistake: nothing to say in plainer words, so PyYAML's stays.
    with pytest.raises(ConfigError) as caught:
        load_yaml_text("gateway:\n  id: [unclosed\n", "t.yaml")
    [message] = caught.value.messages
    assert message.startswith("t.yaml:3:1: YAML syntax error: ")
    assert "expected ',' or ']'" in message


def test_check_prints_the_plain_line(tmp_path: Path) -> None:
    text, where, message = CASES["item_keys_under_dash"]
    path = tmp_path / "i3.yaml"
    path.write_text(text)
    done = subprocess.run(
        [*TIDEGATE, "check", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert f"{path}:{where}: YAML syntax error: {message}" in done.stderr
    assert not any(raw in done.stderr for raw in RAW)
