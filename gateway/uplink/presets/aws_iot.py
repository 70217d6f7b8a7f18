"""``preset: aws_iot`` at run time: every event's topic within AWS IoT Core's limits.

AWS IoT refuses a PUBLISH whose topic is longer than 256 bytes or has more than 7
slashes (and closes the connection, losing what else was in flight). Templates are
checked at load as far as they can be (``tidegate.uplink.presets.config``); what
the values put into them make of a topic is known only here, so each event's topic
is checked as it is packed, and an event whose topic breaks the rule is
dead-lettered alone, with the reason. The rest (TLS with the device certificate,
the thing's name as client id, 128 KiB messages) is the config's, checked at load.
"""

from __future__ import annotations

from tidegate.uplink.formats import Format, FormatError
from tidegate.uplink.presets.base import Preset, with_topic_rule
from tidegate.uplink.presets.config import aws_topic_problem

_KNOWN = 4096
"""Topics remembered as fine, at most (they repeat: one per source and name)."""


class AwsIot(Preset):
    _fine: set[str]

    def wrap(self, fmt: Format) -> Format:
        self._fine = set()
        return with_topic_rule(fmt, self._checked, "AWS IoT")

    def _checked(self, topic: str, stored: bytes) -> str:
        if topic in self._fine:
            return topic
        problem = aws_topic_problem(topic, f"its topic '{topic}'")
        if problem is not None:
            raise FormatError(problem)
        if len(self._fine) >= _KNOWN:
            self._fine.clear()
        self._fine.add(topic)
        return topic

    def unbuffered_topic(self, topic: str) -> str | None:
        return None if aws_topic_problem(topic) else topic
