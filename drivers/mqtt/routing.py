"""Which subscription a message's topic belongs to, and the events of the message.

A topic is matched against the subscriptions' filters once and remembered (up to
``ROUTE_CACHE`` topics) with what that match decides: the events' source, their
name, the parser (one per source, since a parser numbers its source's events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tidegate.drivers.mqtt.config import Subscription
from tidegate.drivers.mqtt.topics import (
    MissingLevel,
    TopicTemplate,
    check_filter,
    clean_name,
)
from tidegate.drivers.parsing.parse import FrameParser, TimeReport
from tidegate.event import Event
from tidegate.mqtt.topic_filter import filter_matches

ROUTE_CACHE = 10_000
"""Distinct topics remembered with their subscription; a site has far fewer."""


class CompiledSubscription:
    """A subscription with its templates compiled and a parser per source."""

    def __init__(
        self, config: Subscription, driver: str, time_report: TimeReport | None = None
    ) -> None:
        self.config = config
        self.time_report = time_report
        """Counts the device times of every source's parser: one per driver."""
        self.levels = check_filter(config.topic)
        self.driver = driver
        self.source = (
            TopicTemplate(
                config.source, driver=driver, filter_levels=self.levels, allow_field=False
            )
            if config.source is not None
            else None
        )
        self.name = (
            TopicTemplate(config.name, driver=driver, filter_levels=self.levels, allow_field=True)
            if config.name is not None
            else None
        )
        self._parsers: dict[str, FrameParser] = {}

    def parser(self, source: str) -> FrameParser:
        parser = self._parsers.get(source)
        if parser is None:
            parser = FrameParser(self.config.parse, source, self.time_report)
            if len(self._parsers) < ROUTE_CACHE:
                self._parsers[source] = parser
        return parser


@dataclass(frozen=True, slots=True)
class Route:
    """What to do with messages on one topic; computed once per topic."""

    subscription: CompiledSubscription
    parser: FrameParser
    name: str | None
    """The events' name when the template does not use {field}."""
    field_name: tuple[TopicTemplate, list[str]] | None
    """The name template that uses {field}, and the topic's levels."""

    def events(self, payload: bytes, topic: str, received: float) -> list[Event]:
        """The events of one message; raises ``FrameRejected`` for a bad payload."""
        events = self.parser.parse(payload, received)
        if self.name is not None:
            name = self.name
            return [
                Event(
                    e.source, name, e.value, e.time, e.id, e.seq, e.unit, e.tags, e.time_source
                )
                for e in events
            ]
        if self.field_name is not None:
            template, levels = self.field_name
            return [
                Event(
                    e.source,
                    clean_name(template.render(levels, topic, e.name)) or e.name,
                    e.value,
                    e.time,
                    e.id,
                    e.seq,
                    e.unit,
                    e.tags,
                    e.time_source,
                )
                for e in events
            ]
        return events


@dataclass(frozen=True, slots=True)
class Unroutable:
    """A topic whose messages are rejected, and why."""

    reason: str


class Router:
    """The subscriptions of one driver, and the routes of the topics seen so far."""

    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        driver: str,
        time_report: TimeReport | None = None,
    ) -> None:
        self.subscriptions = [CompiledSubscription(s, driver, time_report) for s in subscriptions]
        self._routes: dict[str, Route | Unroutable] = {}

    def route(self, topic: str) -> Route | Unroutable:
        route = self._routes.get(topic)
        if route is None:
            if len(self._routes) >= ROUTE_CACHE:
                self._routes.clear()
            route = self._routes[topic] = self._match(topic)
        return route

    def _match(self, topic: str) -> Route | Unroutable:
        levels = topic.split("/")
        for sub in self.subscriptions:
            if not filter_matches(sub.levels, levels):
                continue
            try:
                source = sub.driver
                if sub.source is not None:
                    cleaned = clean_name(sub.source.render(levels, topic))
                    if cleaned is None:
                        return Unroutable(f"source '{sub.source.text}' is empty for this topic")
                    source = cleaned
                name: str | None = None
                if sub.name is not None and not sub.name.uses_field:
                    name = clean_name(sub.name.render(levels, topic))
                    if name is None:
                        return Unroutable(f"name '{sub.name.text}' is empty for this topic")
            except MissingLevel as exc:
                return Unroutable(str(exc))
            uses_field = sub.name is not None and sub.name.uses_field
            field_name = (sub.name, levels) if sub.name is not None and uses_field else None
            return Route(sub, sub.parser(source), name, field_name)
        return Unroutable("matches no subscription (left over in a persistent session?)")
