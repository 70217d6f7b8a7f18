"""Records: pulling the named raw values out of one frame, per format, and refusing
ambiguous records.

A value may be published only if it was present in a well-formed record from the
device. The formats cannot see a checksum, but they can see the marks a damaged
stream leaves when a line end was lost or a record was cut short and glued to the
next one (``a=1,b=2,c=1a=3,b=4,c=0``): a repeated key (``kv``, ``json``), a value
that holds the key/value separator, a key without a value, a wrong number of columns
(``csv``), a pattern that matches twice or a group that matched nothing (``regex``).
Such a record raises ``FrameRejected`` with the reason; the driver puts the frame
in its dead letters. No value of it is published: it is never guessed at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from tidegate.drivers.parsing.config import CsvParse, JsonParse, KvParse, RegexParse, time_keys
from tidegate.errors import TidegateError

Extractor = Callable[[bytes], dict[str, Any]]
"""Frame -> raw values by key; raises ``FrameRejected``."""


class FrameRejected(TidegateError):
    """A frame that cannot become events; ``str(exc)`` is the reason."""


class FrameSkipped(FrameRejected):
    """A frame of a kind the parser is not for (``select:``): not damage. A driver
    counts it as ``skipped`` instead of rejecting it; one that does not know this
    kind of frame rejects it, as it did before ``select:`` existed."""


def decode(frame: bytes, encoding: str) -> str:
    try:
        return frame.decode(encoding)
    except UnicodeDecodeError as exc:
        raise FrameRejected(f"invalid {encoding} at byte {exc.start}") from None


def _short(text: str) -> str:
    return repr(text[:40])


def record_extractor(config: JsonParse | CsvParse | KvParse | RegexParse) -> Extractor:
    """The function that turns a frame into raw values as ``config`` says."""
    if isinstance(config, CsvParse):
        return lambda frame: _csv_record(frame, config)
    if isinstance(config, RegexParse):
        return _regex_extractor(config)
    extract: Extractor
    if isinstance(config, KvParse):
        extract = lambda frame: _kv_record(frame, config)  # noqa: E731 - one line
        known = set(config.fields)
    else:
        extract = lambda frame: _json_record(frame, config)  # noqa: E731 - one line
        known = set(config.fields) | {key.split(".", 1)[0] for key in config.fields}
    if config.unlisted != "reject":
        return extract
    times = time_keys(config.time_field)
    known |= times
    if isinstance(config, JsonParse):
        # A dotted time key (`meta.ts`) lives under the top-level key `meta`, as fields do.
        known |= {key.split(".", 1)[0] for key in times}

    def strict(frame: bytes) -> dict[str, Any]:
        record = extract(frame)
        for key in record:
            if key not in known:
                raise FrameRejected(f"unexpected key {_short(key)} (`unlisted: reject`)")
        return record

    return strict


# --- kv -------------------------------------------------------------------------------


def _kv_record(frame: bytes, config: KvParse) -> dict[str, Any]:
    record: dict[str, Any] = {}
    separator = config.kv_separator
    for pair in decode(frame, config.encoding).split(config.pair_separator):
        key, found, value = pair.partition(separator)
        key, value = key.strip(), value.strip()
        if not found:
            if not key:
                continue  # two pair separators in a row, or one at the end
            raise FrameRejected(f"{_short(key)} is not a key{separator}value pair")
        if not key:
            raise FrameRejected(f"{_short(pair.strip())} has no key")
        if not value:
            raise FrameRejected(f"key {_short(key)} has no value")
        if separator in value:
            raise FrameRejected(
                f"key {_short(key)}: value {_short(value)} holds '{separator}': "
                "two records run together (a lost line end?)"
            )
        if key in record:
            raise FrameRejected(
                f"key {_short(key)} appears twice: two records run together (a lost line end?)"
            )
        record[key] = value
    return record


# --- csv ------------------------------------------------------------------------------


def _csv_record(frame: bytes, config: CsvParse) -> dict[str, Any]:
    cells = decode(frame, config.encoding).split(config.delimiter)
    if len(cells) != len(config.columns):
        raise FrameRejected(f"expected {len(config.columns)} columns, got {len(cells)}")
    return {
        key: cell.strip()
        for key, cell in zip(config.columns, cells, strict=True)
        if key not in ("", "_")
    }


# --- json -----------------------------------------------------------------------------


_HUGE = 2.0**63
"""orjson reads an integer beyond 64 bits as a float, which is then at least this large."""


def _json_record(frame: bytes, config: JsonParse) -> dict[str, Any]:
    try:
        parsed: object = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise FrameRejected(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise FrameRejected(f"expected a JSON object, got {type(parsed).__name__}")
    record: dict[str, Any] = parsed
    if _holds_huge_float(record):
        # orjson rounds an integer beyond 64 bits to a float (a 30-digit integer would
        # be published as 1.2345678901234568e+29); the standard library keeps it exact,
        # and the conversion then rejects what an event cannot carry.
        record = _checked_parse(frame)
    else:
        _refuse_duplicate_keys(frame, record)
    keys = [*config.fields, *time_keys(config.time_field)]
    if any("." in key for key in keys):
        for key in keys:
            if "." not in key:
                continue
            nested = _dig(record, key)
            if nested is None:
                continue
            if key in record:
                raise FrameRejected(f"key {_short(key)} is both a key and a path to a value")
            record[key] = nested
    return record


def _holds_huge_float(record: dict[str, Any]) -> bool:
    """Whether any value in ``record`` (nested too) is a float that may be an integer
    orjson rounded (cheaper than looking for long digit runs in the frame)."""
    stack: list[Any] = [record]
    while stack:
        node = stack.pop()
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is float:
                if not -_HUGE < value < _HUGE:
                    return True
            elif kind is dict or kind is list:
                stack.append(value)
    return False


def _dig(record: Mapping[str, Any], key: str) -> Any:
    """The nested value a dotted key names; None when absent."""
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _refuse_duplicate_keys(frame: bytes, record: dict[str, Any]) -> None:
    """Raise when an object in ``frame`` names a key twice (orjson keeps the last one).

    orjson has no hook for this, and the standard library's ``object_pairs_hook``
    costs several times orjson's parse; so count instead: without escapes every ``"``
    opens or closes a string, and outside strings a ``:`` follows exactly one member
    name. Fewer members in the parsed objects than colons in the text means a key was
    repeated. Frames with escapes, or a count that differs, get the exact (slow) check.
    """
    colons = frame.count(b":")
    if colons == len(record):
        # colons >= members written >= members parsed >= len(record): all equal.
        return
    if b"\\" not in frame:
        members = _members(record)
        # Colons in strings (times, URLs) only add to the count: equal means no repeat.
        if colons == members:
            return
        for inside in frame.split(b'"')[1::2]:
            colons -= inside.count(b":")
        if colons == members:
            return
    _checked_parse(frame)


def _checked_parse(frame: bytes) -> dict[str, Any]:
    """The frame parsed by the standard library, refusing a key repeated in any object
    (exact, slow: several times orjson's parse). The frame is one orjson accepted."""
    try:
        record: object = json.loads(frame.decode("utf-8"), object_pairs_hook=_pairs_once)
    except _Repeated as repeated:
        raise FrameRejected(
            f"key {_short(repeated.key)} appears twice in an object: two records run together?"
        ) from None
    except RecursionError:
        # orjson takes deeper nesting than the standard library: unproven, so refused.
        raise FrameRejected("nested too deeply to check for repeated keys") from None
    except ValueError as exc:
        # orjson accepted it and the standard library did not: whether a key repeats
        # is unknown, so the record is not trusted.
        raise FrameRejected(f"cannot check for repeated keys: {str(exc)[:80]}") from None
    if not isinstance(record, dict):
        raise FrameRejected(f"expected a JSON object, got {type(record).__name__}")
    return record


def _members(record: dict[str, Any]) -> int:
    """Members of ``record`` and of every object nested in it (without recursion:
    orjson accepts deeper nesting than Python's stack)."""
    count = len(record)
    stack: list[Any] = [child for child in record.values() if isinstance(child, (dict, list))]
    while stack:
        node = stack.pop()
        children = node
        if isinstance(node, dict):
            count += len(node)
            children = node.values()
        stack += [child for child in children if isinstance(child, (dict, list))]
    return count


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Repeated(key)
        seen[key] = value
    return seen


# --- regex ----------------------------------------------------------------------------


def _regex_extractor(config: RegexParse) -> Extractor:
    compiled = re.compile(config.pattern)
    full = config.match == "full"
    matcher = compiled.fullmatch if full else compiled.search
    search = compiled.search
    emitted = (
        set(compiled.groupindex) if config.unlisted == "include" else set(config.fields)
    ) | time_keys(config.time_field)

    def extract(frame: bytes) -> dict[str, Any]:
        text = decode(frame, config.encoding)
        found = matcher(text)
        if found is None:
            raise FrameRejected("does not match the pattern")
        if not full:
            # A second match after the first: two records run together.
            again = search(text, max(found.end(), found.start() + 1))
            if again is not None and again.end() > again.start():
                raise FrameRejected(
                    f"the pattern matches twice (at {found.start()} and {again.start()}): "
                    "two records run together?"
                )
        record: dict[str, Any] = {}
        for key, value in found.groupdict().items():
            if value is None:
                continue  # the group took no part: a missing field
            if not value and key in emitted:
                raise FrameRejected(f"field '{key}' is empty")
            record[key] = value
        return record

    return extract
