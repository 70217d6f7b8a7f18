"""Bounds on the work a YAML file can make us do: config files are hostile input too.

A few hundred bytes of YAML aliases ("billion laughs") name a document of
billions of values; a few kilobytes of brackets nest deeper than Python's
stack; a 50 MB file takes the pure-Python parser most of a minute. Each is
refused here, with the position of the offending place, before it costs
memory or time:

- a file larger than ``MAX_FILE_BYTES`` is refused before it is read;
- collections nested deeper than ``MAX_DEPTH`` are refused where the level
  starts;
- a document that, with every alias expanded, has more than ``MAX_NODES``
  values is refused at the alias (or value) that goes past the limit. An alias
  counts every value of the node it re-uses, so the count is what the
  document costs once loaded, whatever the aliases;
- an alias inside the node it refers to (a document that contains itself)
  is refused: expanded, it has no end;
- numbers are read by YAML 1.2's core schema, without YAML 1.1's base 60
  (whose conversion is quadratic), and a number longer than
  ``MAX_NUMBER_CHARS`` or beyond 64 bits is refused: see
  ``tidegate.config.yaml_numbers``.

A realistic 1 MiB file of rules has about 70,000 values, so the limits refuse
nothing a person would write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import Node

from tidegate.config.paths import permission_hint
from tidegate.config.yaml_errors import explain
from tidegate.config.yaml_numbers import (
    FLOAT_TAG,
    INT_TAG,
    construct_float,
    construct_int,
    core_schema_resolvers,
)
from tidegate.errors import ConfigError

MAX_FILE_BYTES = 1024 * 1024
"""Largest config file or rules file read (1 MiB)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists."""
MAX_NODES = 100_000
"""Most values (scalars, mappings, lists) in one file, aliases expanded."""


class YamlLimitError(yaml.MarkedYAMLError):
    """The document is beyond one of the limits; ``problem_mark`` says where."""


def _refuse(problem: str, mark: Any) -> YamlLimitError:
    return YamlLimitError(problem=problem, problem_mark=mark)


class LimitedLoader(yaml.SafeLoader):
    """SafeLoader that counts, while composing, the depth and the expanded size.

    PyYAML composes an alias as the very node it names (a graph, cheap), but
    everything after composing walks it as a tree: that walk is what the
    count bounds. Numbers follow the YAML 1.2 core schema (``tidegate.config.yaml_numbers``).
    """

    yaml_implicit_resolvers = core_schema_resolvers(yaml.SafeLoader.yaml_implicit_resolvers)

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0
        """Values so far, each alias counted as the size of what it names."""
        self._sizes: dict[int, int] = {}
        """Expanded size of each anchored node, by id (the nodes live as long as we do)."""

    def _count(self, values: int, mark: Any, alias: str | None = None) -> None:
        self._expanded += values
        if self._expanded <= MAX_NODES:
            return
        if alias is None:
            raise _refuse(f"the file has more than {MAX_NODES:,} values (the limit)", mark)
        raise _refuse(
            f"alias *{alias} repeats {values:,} values, which takes the file past "
            f"{MAX_NODES:,} values (the limit; every use of an alias counts all it repeats)",
            mark,
        )

    def _peek(self) -> Any:
        return self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self._peek()
            named = self.anchors.get(event.anchor)
            if named is not None:  # an unknown alias is PyYAML's error to report
                size = self._sizes.get(id(named))
                if size is None:
                    raise _refuse(
                        f"alias *{event.anchor} is inside the node it refers to "
                        "(a document that contains itself)",
                        event.start_mark,
                    )
                self._count(size, event.start_mark, event.anchor)
            return super().compose_node(parent, index)
        event = self._peek()
        if self._depth >= MAX_DEPTH:
            raise _refuse(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        before = self._expanded
        self._count(1, event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if event.anchor is not None and node is not None:
            self._sizes[id(node)] = self._expanded - before
        return node


# add_constructor copies the table for this class: SafeLoader itself is unchanged.
LimitedLoader.add_constructor(INT_TAG, construct_int)
LimitedLoader.add_constructor(FLOAT_TAG, construct_float)


def too_large(file: str, size: int) -> ConfigError:
    return ConfigError(
        [
            f"{file}:1:1: the file is {size:,} bytes; a config or rules file may be at most "
            f"{MAX_FILE_BYTES // 1024 // 1024} MiB ({MAX_FILE_BYTES:,} bytes)"
        ]
    )


def check_text_size(text: str, file: str) -> None:
    """Text handed over already read (tests, ``load_config_text``) obeys the same limit."""
    if len(text) > MAX_FILE_BYTES // 4:  # only then can its UTF-8 be too large
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_FILE_BYTES:
            raise too_large(file, size)


def read_yaml_file(path: Path) -> str:
    """A config or rules file's text; too large, unreadable or not UTF-8: a ConfigError.

    The size is checked before reading, and the read stops past the limit (a
    file that grows meanwhile, or a device like /dev/zero, has no useful size).
    """
    try:
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise too_large(str(path), size)
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([f"{path}:1:1: no such file"]) from None
    except PermissionError:
        raise ConfigError(
            [f"{path}:1:1: cannot read: permission denied ({permission_hint(path)})"]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{path}:1:1: cannot read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            [
                f"{path}:1:1: the file is larger than a config or rules file may be "
                f"({MAX_FILE_BYTES // 1024 // 1024} MiB)"
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ConfigError([f"{path}:{line}:{col}: cannot read: {exc}"]) from None


def lenient_load(path: Path) -> Any:
    """The plain data of a YAML file within the limits, or None if it cannot be had.

    For clients that only peek at a file that may be invalid (where is the
    control socket?): duplicate keys and the like are tolerated, unlike in
    ``tidegate.config.yaml_source``, but not the costs the limits bound.
    """
    try:
        return peek_yaml(path)
    except ConfigError:
        return None


def peek_yaml(path: Path) -> Any:
    """Like ``lenient_load``, but what cannot be read or parsed is a ConfigError
    at its ``FILE:LINE:COL``, and so is a document that is not a mapping."""
    text = read_yaml_file(path)
    try:
        loader = LimitedLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses a character
        raise ConfigError([f"{path}:1:1: YAML error: {exc}"]) from None
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else f"{path}:1:1"
        if isinstance(exc, YamlLimitError):
            raise ConfigError([f"{where}: {exc.problem}"]) from None
        problem = explain(exc, text) or exc.problem or exc.context
        raise ConfigError([f"{where}: YAML syntax error: {problem}"]) from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError) as exc:
        # The values PyYAML cannot build (`2020-13-01`) included.
        raise ConfigError([f"{path}:1:1: YAML error: {exc}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        what = "empty" if data is None else "not a mapping of sections"
        raise ConfigError([f"{path}:1:1: the file is {what}"])
    return data
