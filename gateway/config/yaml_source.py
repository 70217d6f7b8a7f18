"""YAML loading that remembers where every key and value came from.

Validation errors point at ``FILE:LINE:COL``; to do that we compose the YAML
node tree ourselves and record the position of each mapping key, sequence item
and value under its path (a tuple of keys and indexes). What a file can cost
(size, nesting, aliases) is bounded by ``tidegate.config.yaml_limits``; every way a
file can fail to load is a ConfigError with a position, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.reader import ReaderError

from tidegate.config.yaml_errors import explain
from tidegate.config.yaml_limits import (
    LimitedLoader,
    YamlLimitError,
    check_text_size,
    read_yaml_file,
)
from tidegate.config.yaml_numbers import NumberRefused
from tidegate.errors import ConfigError

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(slots=True)
class SourceMap:
    """Positions of values (``values``) and of mapping keys (``keys``) by path."""

    file: str
    values: dict[PathKey, Position]
    keys: dict[PathKey, Position]

    def locate(self, path: PathKey, *, key: bool = False) -> Position:
        """The position for ``path``, or of its nearest ancestor that has one."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if not key and probe in self.keys:
                return self.keys[probe]
            probe = probe[:-1]
        return self.values.get((), Position(self.file, 1, 1))


class _Loader(LimitedLoader):
    """SafeLoader; a separate class so our tweaks never leak into PyYAML's globals."""


def _position(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _scalar(node: yaml.Node, loader: _Loader, file: str) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except NumberRefused as exc:
        raise ConfigError([f"{_position(file, node)}: {exc}"]) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # e.g. `2020-13-01` (a date by its looks), `!!int 12a`: PyYAML lets these escape.
        kind = str(node.tag).rsplit(":", 1)[-1]
        plain = isinstance(node, yaml.ScalarNode) and node.style is None
        hint = "; quote it to keep it as text" if plain else ""
        raise ConfigError(
            [
                f"{_position(file, node)}: YAML error: {str(node.value)[:40]!r} is not a valid "
                f"{kind} ({exc}){hint}"
            ]
        ) from None


_MERGE = "tag:yaml.org,2002:merge"
_Pair = tuple[yaml.Node, yaml.Node]


def _merged_pairs(node: yaml.MappingNode) -> list[_Pair]:
    """The pairs the ``<<`` keys of ``node`` bring in, lowest precedence first.

    YAML's merge key: of several merged mappings, the first that has a key
    wins (a later pair overrides an earlier one here, as in a dict). Unlike
    PyYAML's ``flatten_mapping`` this leaves the nodes as they are: a mapping
    is walked again for each alias to it, and must look the same each time.
    """
    merged: list[_Pair] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE:
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"expected a mapping or list of mappings for merging, but found {source.id}",
                    source.start_mark,
                )
            merged += _merged_pairs(source)
            merged += [(k, v) for k, v in source.value if k.tag != _MERGE]
    return merged


def _key(key_node: yaml.Node, loader: _Loader, file: str) -> str:
    if key_node.tag == "tag:yaml.org,2002:value":  # `=`: a plain word here, as in PyYAML
        key_node.tag = "tag:yaml.org,2002:str"
    key = _scalar(key_node, loader, file)
    if not isinstance(key, str | int | float | bool) or key is None:
        raise ConfigError([f"{_position(file, key_node)}: a mapping key must be a plain word"])
    return key if isinstance(key, str) else str(key)


def _walk(node: yaml.Node, path: PathKey, loader: _Loader, smap: SourceMap) -> Any:
    smap.values[path] = _position(smap.file, node)
    if isinstance(node, yaml.MappingNode):
        # Merged keys first, the mapping's own keys after: own keys override merged
        # ones; only an own key written twice is a duplicate.
        winners: dict[str, _Pair] = {
            _key(k, loader, smap.file): (k, v) for k, v in _merged_pairs(node)
        }
        own: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = _key(key_node, loader, smap.file)
            if key in own:
                raise ConfigError([f"{_position(smap.file, key_node)}: duplicate key '{key}'"])
            own.add(key)
            winners[key] = (key_node, value_node)
        result: dict[Any, Any] = {}
        for key, (key_node, value_node) in winners.items():
            smap.keys[(*path, key)] = _position(smap.file, key_node)
            result[key] = _walk(value_node, (*path, key), loader, smap)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), loader, smap) for i, item in enumerate(node.value)]
    return _scalar(node, loader, smap.file)


def _reader_position(text: str, index: int) -> str:
    """``LINE:COL`` of a character index (the reader's errors give only the index)."""
    line = text.count("\n", 0, index) + 1
    column = index - text.rfind("\n", 0, index)
    return f"{line}:{column}"


def load_yaml_text(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse YAML text; return plain data and its source map."""
    check_text_size(text, file)
    smap = SourceMap(file, {}, {})
    try:
        # Inside the try: the reader checks every character as it is built.
        loader = _Loader(text)
    except ReaderError as exc:
        where = f"{file}:{_reader_position(text, exc.position)}"
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(
            [
                f"{where}: YAML error: the character U+{char:04X} is not allowed in YAML, "
                "not even in a comment"
            ]
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, smap
        return _walk(node, (), loader, smap), smap
    except YamlLimitError as exc:
        mark = exc.problem_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else f"{file}:1:1"
        raise ConfigError([f"{where}: {exc.problem}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else f"{file}:1:1"
        problem = explain(exc, text) or exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{where}: YAML syntax error: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}:1:1: YAML error: {exc}"]) from None
    except RecursionError:
        # The limits keep nesting well below Python's; kept in case merge keys chain deeper.
        raise ConfigError([f"{file}:1:1: the document is nested too deeply"]) from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> tuple[Any, SourceMap]:
    """Read and parse a YAML file; unreadable or too large files are a ConfigError."""
    return load_yaml_text(read_yaml_file(path), str(path))
