"""`tidegate rules test`'s work: a rule set over recorded events, in order.

The events' own timestamps are the clock (``tidegate.rules.replay``), so the
same input always gives the same output; routed events go to stdout as JSON
lines, a summary per rule to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import orjson
import typer
from pydantic import BaseModel, ConfigDict, ValidationError

from tidegate.config.loader import translate_validation_error
from tidegate.config.schema import GatewaySection, MqttSection, UplinkSection
from tidegate.config.yaml_source import load_yaml_file
from tidegate.payload import event_document
from tidegate.rules.compiler import DEFAULT_ROUTE, RouteDefaults, RuleStats
from tidegate.rules.loader import load_rule_path
from tidegate.rules.recording import UnreadableLine, read_events, routed_line
from tidegate.rules.replay import replay
from tidegate.rules.stage import RuleSetError, RuleStage
from tidegate.wording import count

DEFAULT_GATEWAY_ID = "gateway"
MAX_REPORTED_LINES = 20


class _RoutePart(BaseModel):
    """The sections of a config file that decide the default route."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    gateway: GatewaySection | None = None
    mqtt: MqttSection | None = None
    uplinks: list[UplinkSection] = []


def route_defaults(rules_path: Path, gateway_id: str | None, topic: str | None) -> RouteDefaults:
    """The default route: the options, else the config file's, else tidegate's defaults."""
    gateway = GatewaySection(id=gateway_id or DEFAULT_GATEWAY_ID)
    mqtt: MqttSection | None = None
    if rules_path.is_file():
        data, smap = load_yaml_file(rules_path)
        if isinstance(data, dict):
            try:
                part = _RoutePart.model_validate(data)
            except ValidationError as exc:
                raise translate_validation_error(exc, _RoutePart, data, smap) from None
            mqtt = part.mqtt or (part.uplinks[0] if part.uplinks else None)
            explicit_id = part.gateway is not None and "id" in part.gateway.model_fields_set
            if explicit_id and gateway_id is None:
                assert part.gateway is not None
                gateway = part.gateway
    prefix_template = mqtt.topic_prefix if mqtt else "tidegate/{gateway}"
    return RouteDefaults(
        gateway=gateway.id,
        prefix=prefix_template.replace("{gateway}", gateway.id),
        topic=topic or (mqtt.topic if mqtt else "{prefix}/{source}/{name}"),
        qos=mqtt.qos if mqtt else 1,
    )


@contextmanager
def _input(path: Path) -> Iterator[IO[str]]:
    if str(path) == "-":
        yield sys.stdin
        return
    try:
        stream = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        typer.echo(f"tidegate: cannot read {path}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    with stream:
        yield stream


def summary_table(stats: dict[str, RuleStats]) -> list[str]:
    """Per rule: in, out, filtered, dropped, dead letters, errors; then the default route."""
    width = max([len(name) for name in stats] + [4])
    heads = ("in", "out", "filtered", "dropped", "dead", "errors")
    lines = [f"{'rule':<{width}}  " + "  ".join(f"{h:>8}" for h in heads)]
    for name, s in stats.items():
        if name == DEFAULT_ROUTE:
            cells = ["-", str(s.published), "-", "-", "-", "-"]
        else:
            numbers = (s.matched, s.out, s.filtered, s.dropped, s.dead_lettered, s.errors)
            cells = [str(n) for n in numbers]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{c:>8}" for c in cells))
    return lines


def run_rules(
    rules: Path,
    events: Path,
    *,
    gateway_id: str | None,
    topic: str | None,
    flush: bool,
    ids: bool,
    dead_letters: Path | None,
) -> None:
    """Run ``rules`` over ``events``; exit 1 if some lines could not be read."""
    rule_set = load_rule_path(rules)
    try:
        stage = RuleStage(rule_set, route_defaults(rules, gateway_id, topic), trace=True)
    except RuleSetError as exc:  # the loader checks this first; kept for safety
        typer.echo(f"tidegate: {exc}", err=True)
        raise typer.Exit(2) from None
    unreadable: list[UnreadableLine] = []
    out = sys.stdout.buffer
    letters = dead_letters.open("wb") if dead_letters is not None else None
    published = dead = 0
    try:
        with _input(events) as stream:
            for step in replay(stage, read_events(stream, unreadable), flush=flush):
                for outgoing, route in step.routed:
                    out.write(routed_line(outgoing, route, with_id=ids) + b"\n")
                published += len(step.routed)
                dead += len(step.dead_letters)
                if letters is not None:
                    for letter in step.dead_letters:
                        doc: dict[str, object] = {"rule": letter.rule, "reason": letter.reason}
                        doc |= event_document(letter.event, with_id=ids)
                        letters.write(orjson.dumps(doc) + b"\n")
        out.flush()
    finally:
        if letters is not None:
            letters.close()
    for line in summary_table(stage.stats):
        typer.echo(line, err=True)
    for problem in unreadable[:MAX_REPORTED_LINES]:
        typer.echo(f"{events}:{problem.number}: skipped: {problem.reason}", err=True)
    if len(unreadable) > MAX_REPORTED_LINES:
        more = count(len(unreadable) - MAX_REPORTED_LINES, "more line")
        typer.echo(f"… and {more} skipped", err=True)
    typer.echo(
        f"{count(published, 'event')} out, {count(dead, 'dead letter')}, "
        f"{count(len(unreadable), 'line')} unreadable",
        err=True,
    )
    if unreadable:
        raise typer.Exit(1)
