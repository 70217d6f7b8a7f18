"""Matching MQTT topics against subscription filters (``+`` and ``#``), as a broker does."""

from __future__ import annotations

from collections.abc import Sequence


def filter_matches(filter_levels: Sequence[str], topic_levels: Sequence[str]) -> bool:
    """Whether a topic (split at '/') matches a filter (split at '/')."""
    # Wildcards at the first level never match the broker's own $SYS-style topics.
    if topic_levels and topic_levels[0].startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True  # also matches the parent level itself: "a/#" matches "a"
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
