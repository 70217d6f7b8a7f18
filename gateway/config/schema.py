"""The configuration file's schema: one section per component.

This module is the reference for every key (``tidegate check --schema``
prints it as JSON Schema). Driver sections come from the driver modules
themselves; the ``drivers`` list is a union over the driver kinds a file uses,
and ``rules`` is typed with the rule schema only for a file that has rules
(``tidegate.config.loader.config_model``): checking a file imports and builds
what it uses.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from tidegate.config.located_errors import LocatedError, ProblemList
from tidegate.config.remote_rules import RemoteRulesSection, remote_file_problem
from tidegate.config.types import ByteSize, Duration, Name, Section
from tidegate.config.uplink import (
    SHORTHAND_UPLINK,
    BrokerAddress,
    FormatName,
    MqttSection,
    UplinkSection,
)
from tidegate.driver import DriverConfig
from tidegate.history.config import HistorySection
from tidegate.mqtt.connection import TlsSection
from tidegate.ops.config import ControlSection, LoggingSection, MetricsSection
from tidegate.uplink.presets.config import aws_template_problem

if TYPE_CHECKING:  # the loader types these, for files that have them
    from tidegate.actions.config import ActionConfig
    from tidegate.commands.config import CommandsSection
    from tidegate.rules.config import RuleConfig


def _default_gateway_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).strip("-.") or "gateway"
    return host[:64]


__all__ = [  # TlsSection and the uplink's sections too: they lived here before
    "SHORTHAND_UPLINK",
    "BrokerAddress",
    "BufferSection",
    "FormatName",
    "GatewayConfig",
    "GatewaySection",
    "MqttSection",
    "TlsSection",
    "UplinkSection",
]


class GatewaySection(Section):
    id: Name = Field(
        default_factory=_default_gateway_id,
        description="This gateway's id: in topics (`{gateway}`) and payloads. Default: hostname.",
    )
    data_dir: Path = Field(
        Path("/var/lib/tidegate"),
        description="Where the outbox lives. Relative paths are relative to the config file.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe log level written."
    )


class BufferSection(Section):
    path: Path | None = Field(
        None, description="The outbox database; default `<data_dir>/outbox.db`."
    )
    commit_interval: Duration = Field(
        0.05, gt=0, le=10, description="Commit accepted events at least this often (group commit)."
    )
    commit_max_events: int = Field(
        1000, ge=1, le=100000, description="Commit as soon as this many events wait."
    )
    durability: Literal["batch", "fsync"] = Field(
        "batch",
        description="`batch`: WAL, synchronous=NORMAL (a power cut can lose the last commits); "
        "`fsync`: synchronous=FULL (nothing committed is lost).",
    )
    max_bytes: ByteSize = Field(
        256 * 1024 * 1024,
        ge=1_000_000,
        description="Bound on the outbox's contents (payloads + ~48 B per event), e.g. `256MB`, "
        "`2GiB`; lowered at start to what the disk has room for.",
    )
    max_age: Duration | None = Field(
        None,
        gt=0,
        description="Drop undelivered events older than this (e.g. `7d`); never on an untrusted "
        "clock, and ages follow clock-step corrections.",
    )
    when_full: Literal["drop_oldest", "drop_newest", "block"] = Field(
        "drop_oldest",
        description="`drop_oldest`: the oldest events of the lowest priority class go; "
        "`drop_newest`: new events are refused; `block`: drivers wait (backpressure).",
    )
    memory_max_events: int = Field(
        100_000,
        ge=1000,
        description="Events held in memory while the outbox cannot commit (a full disk); "
        "beyond that the oldest are dropped and counted.",
    )
    dead_letter_max_bytes: ByteSize = Field(
        16 * 1024 * 1024, ge=65536, description="Bound on the dead-letter table; oldest go first."
    )
    clock_step: Duration = Field(
        2.0,
        gt=0,
        description="A wall-clock jump larger than this (against the monotonic clock) is a step: "
        "timestamps of this boot's undelivered events are corrected by it.",
    )


class GatewayConfig(Section):
    """The whole file. ``drivers`` and ``rules`` are typed at load, with the schemas of
    the driver kinds and rules the file has (``tidegate.config.loader.config_model``)."""

    gateway: GatewaySection = Field(
        default_factory=GatewaySection, description="This gateway's id and where its data lives."
    )
    mqtt: MqttSection | None = Field(
        None, description="The broker to publish to; without it events are only buffered."
    )
    uplinks: list[UplinkSection] = Field(
        default_factory=list,
        description="Several uplinks at once, each with a `name` and everything `mqtt:` takes "
        "(`mqtt:` is the shorthand for one, named `default`). Every event is stored once; each "
        "uplink has its own delivery position, and an event leaves the outbox when every uplink "
        "it is routed to (all, unless its rule's `publish: {uplink: ...}` names some) has it "
        "acknowledged. The first uplink's `topic` is the default route and its `topic_prefix` "
        "the one in stored topics; each uplink sends them under its own prefix.",
    )
    buffer: BufferSection = Field(
        default_factory=BufferSection, description="The outbox: commits, durability and bounds."
    )
    drivers: list[DriverConfig] = Field(min_length=1, description="Event sources.")
    rules: list[RuleConfig] = Field(
        default_factory=list, description="Rules, in order (see the rules section)."
    )
    rules_dir: Path | None = Field(
        None,
        description="Folder of rule files (*.yaml, each a list of rules), run after `rules:` "
        "in file name order. Relative to this file.",
    )
    actions: list[ActionConfig] = Field(
        default_factory=list,
        description="What the gateway can do to devices (switch an output, write a "
        "register, send a frame, publish locally), for rules' `action:` and cloud commands.",
    )
    commands: CommandsSection | None = Field(
        None,
        description="Commands the cloud may send through the uplinks; none without this section.",
    )
    remote_rules: RemoteRulesSection | None = Field(
        None,
        description="Rules updates from outside (`tidegate config push`, the cloud's "
        "`rules_update`): validated, applied, confirmed by health or rolled back; absent: "
        "every update is refused.",
    )

    control: ControlSection = Field(
        default_factory=ControlSection,
        description="The control API that `tidegate status|tail|reload` talk to.",
    )
    metrics: MetricsSection = Field(
        default_factory=MetricsSection,
        description="Metrics on `<prefix>/metrics` and an optional Prometheus endpoint.",
    )
    logging: LoggingSection = Field(
        default_factory=LoggingSection,
        description="Log level, and the rate limit of repeated lines.",
    )
    history: HistorySection | None = Field(
        None,
        description="A local history of the signals for `tidegate plot` (its own SQLite file, "
        "downsampled, bounded); absent: off.",
    )

    @model_validator(mode="after")
    def _uplinks_apart(self) -> GatewayConfig:
        if self.mqtt is not None and self.uplinks:
            raise ValueError(
                "give `mqtt:` (one uplink) or `uplinks:` (several, each with a name), not both"
            )
        # Two uplinks of one name: the loader says where (``_check_unique``).
        by_broker: dict[tuple[str, int, str], str] = {}
        for uplink in self.uplinks:
            key = (uplink.host, uplink.effective_port, self.uplink_client_id(uplink))
            if key in by_broker:
                raise ValueError(
                    f"uplinks {by_broker[key]!r} and {uplink.name!r} would connect to "
                    f"{key[0]}:{key[1]} with the same client id {key[2]!r} (the broker keeps "
                    "one of them): give one a `client_id`"
                )
            by_broker[key] = uplink.name
        return self

    def all_uplinks(self) -> list[UplinkSection]:
        """The uplinks, in order: ``uplinks``, or the one ``mqtt`` declares (``default``)."""
        if self.uplinks:
            return self.uplinks
        if self.mqtt is None:
            return []
        fields = {key: getattr(self.mqtt, key) for key in type(self.mqtt).model_fields}
        return [UplinkSection.model_construct(name=SHORTHAND_UPLINK, **fields)]

    @property
    def primary_uplink(self) -> MqttSection | None:
        """The first uplink: its default route and prefix are the stored events'."""
        return self.mqtt or (self.uplinks[0] if self.uplinks else None)

    def uplink_prefix(self, uplink: MqttSection) -> str:
        """``uplink``'s topic prefix with the gateway's id in it."""
        return uplink.topic_prefix.replace("{gateway}", self.gateway.id)

    def uplink_client_id(self, uplink: UplinkSection) -> str:
        """Its ``client_id``; else the gateway's default for the first uplink, and that
        with the uplink's name for the others."""
        if uplink.client_id:
            return uplink.client_id
        first = not self.uplinks or uplink is self.uplinks[0]
        return self.client_id if first else f"{self.client_id}-{uplink.name}"

    @model_validator(mode="after")
    def _rule_topics_fit_the_preset(self) -> GatewayConfig:
        """AWS IoT's topic rules, for the templates of this file's rules (rules_dir's are
        checked as each event is published)."""
        problems = ProblemList()
        for uplink in self.all_uplinks():
            if uplink.preset != "aws_iot":
                continue
            prefix = self.uplink_prefix(uplink)
            for at, rule in enumerate(self.rules):
                topic = getattr(getattr(rule, "publish", None), "topic", None)
                if isinstance(topic, str):
                    problem = aws_template_problem(topic, prefix)
                    if problem is not None:
                        problems.add(problem, "rules", at, "publish", "topic")
        problems.raise_if_any()
        return self

    @model_validator(mode="after")
    def _remote_file_is_read(self) -> GatewayConfig:
        if self.remote_rules is not None:
            problem = remote_file_problem(self.remote_rules, self.rules_dir)
            if problem is not None:
                raise LocatedError(problem, "remote_rules", "file")
        return self

    @property
    def outbox_path(self) -> Path:
        return self.buffer.path or self.gateway.data_dir / "outbox.db"

    @property
    def topic_prefix(self) -> str:
        primary = self.primary_uplink
        if primary is None:
            return f"tidegate/{self.gateway.id}"
        return self.uplink_prefix(primary)

    @property
    def client_id(self) -> str:
        primary = self.primary_uplink
        if primary and primary.client_id:
            return primary.client_id
        return f"tidegate-{self.gateway.id}"
