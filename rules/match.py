"""Which events a rule applies to: globs on source, name and tags.

```yaml
match:
  source: "greenhouse-*"      # a glob or a list of globs; default "*"
  name: [temperature, humidity]
  tags: {room: "north*"}      # every listed tag must be present and match
```
Globs are shell-style (``*``, ``?``, ``[abc]``), case-sensitive.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

from pydantic import Field

from tidegate.config.types import Section
from tidegate.event import Event

Globs = str | list[str]


class MatchSpec(Section):
    source: Globs = Field("*", description="Glob(s) on the event's source (driver name).")
    name: Globs = Field("*", description="Glob(s) on the event's name.")
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tag name → glob; every listed tag must match."
    )


def _compile_globs(globs: Globs) -> Callable[[str], bool] | None:
    """None means 'matches everything' so callers can skip the test."""
    patterns = [globs] if isinstance(globs, str) else globs
    if "*" in patterns:
        return None
    if all(not any(c in p for c in "*?[") for p in patterns):
        exact = frozenset(patterns)
        return exact.__contains__
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda s: regex.match(s) is not None


EventTest = Callable[[Event], bool]
StreamTest = Callable[[str, str], bool]


def compile_stream_test(spec: MatchSpec) -> StreamTest | None:
    """The source and name globs as a test on (source, name); None when they match everything.

    Split from the tag conditions so the rule stage can decide once per
    (source, name) which rules can take an event, and test only tags per event.
    """
    source_ok = _compile_globs(spec.source)
    name_ok = _compile_globs(spec.name)
    if source_ok is None:
        return None if name_ok is None else lambda source, name: name_ok(name)
    if name_ok is None:
        return lambda source, name: source_ok(source)
    return lambda source, name: source_ok(source) and name_ok(name)


def compile_tag_test(spec: MatchSpec) -> EventTest | None:
    """The tag conditions as a test on the event; None when there are none."""
    if not spec.tags:
        return None
    tag_tests = [(tag, _compile_globs(glob)) for tag, glob in spec.tags.items()]

    def test(event: Event) -> bool:
        tags = event.tags or {}
        for tag, ok in tag_tests:
            value = tags.get(tag)
            if value is None or (ok is not None and not ok(value)):
                return False
        return True

    return test
