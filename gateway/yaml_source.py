"""YAML loading that remembers where every key and value came from.

Validation errors point at ``FILE:LINE:COL``; to do that we compose the YAML
node tree ourselves and record the position of each mapping key, sequence item
and value under its path (a tuple of keys and indexes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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


class _Loader(yaml.SafeLoader):
    """SafeLoader; a separate class so our tweaks never leak into PyYAML's globals."""


def _position(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(node: yaml.Node, path: PathKey, loader: _Loader, smap: SourceMap) -> Any:
    smap.values[path] = _position(smap.file, node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise ConfigError(
                    [f"{_position(smap.file, key_node)}: a mapping key must be a plain word"]
                )
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                raise ConfigError([f"{_position(smap.file, key_node)}: duplicate key '{key}'"])
            smap.keys[(*path, key)] = _position(smap.file, key_node)
            result[key] = _walk(value_node, (*path, key), loader, smap)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), loader, smap) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml_text(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse YAML text; return plain data and its source map."""
    smap = SourceMap(file, {}, {})
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, smap
        return _walk(node, (), loader, smap), smap
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else f"{file}:1:1"
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{where}: YAML syntax error: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}:1:1: YAML error: {exc}"]) from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> tuple[Any, SourceMap]:
    """Read and parse a YAML file; unreadable files are a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}:1:1: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}:1:1: cannot read: {reason}"]) from None
    return load_yaml_text(text, str(path))
