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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from tidegate.config.located_errors import ProblemList
from tidegate.config.types import ByteSize, Duration, Name, Section
from tidegate.driver import DriverConfig
from tidegate.mqtt.connection import MqttConnection, TlsSection
from tidegate.ops.config import ControlSection, LoggingSection, MetricsSection
from tidegate.uplink.presets.config import (
    AzureIotHubSection,
    PresetName,
    aws_template_problem,
    preset_defaults,
    preset_problems,
)

if TYPE_CHECKING:  # the loader types `rules` with it, for files that have rules
    from tidegate.rules.config import RuleConfig


def _default_gateway_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).strip("-.") or "gateway"
    return host[:64]


__all__ = [  # TlsSection too: it lived here before the shared connection section
    "BufferSection",
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


def _check_topic(value: str) -> str:
    # Imported when an `mqtt:` section is validated: a file without one does without it.
    from tidegate.rules.topic import TopicTemplateError, check_template  # noqa: PLC0415

    try:
        check_template(value)
    except TopicTemplateError as exc:
        raise ValueError(str(exc)) from None
    return value


FormatName = Literal[
    "json",
    "json_batch",
    "cloudevents",
    "cloudevents_binary",
    "influx",
    "homeassistant",
    "thingsboard",
    "sparkplug_b",
]
"""What ``mqtt.format`` takes; one module each in ``tidegate.uplink.formats``."""


class BrokerAddress(Section):
    """Another broker for the same uplink: same TLS, credentials and client id."""

    host: str = Field(description="Broker host name or address.", min_length=1)
    port: int | None = Field(
        None, ge=1, le=65535, description="Broker port; default 1883, or 8883 with `tls`."
    )


class MqttSection(MqttConnection):
    """The uplink: the broker events are published to, and how."""

    preset: PresetName | None = Field(
        None,
        description="A cloud broker's rules: `aws_iot` (AWS IoT Core: TLS with the device "
        "certificate, `client_id` the thing's name, topics of at most 256 bytes and 7 "
        "slashes, messages of 128 KiB, 100 in flight) or `azure_iot_hub` (Azure IoT Hub: "
        "MQTT 3.1.1 over TLS, the device id and user name from `azure`, every message on "
        "`devices/<id>/messages/events/`, 256 KiB; a SAS token made from the device key on "
        "every connect and renewed before it expires, or X.509). See the README's presets.",
    )
    azure: AzureIotHubSection | None = Field(
        None, description="With `preset: azure_iot_hub`: the device, and how it logs in."
    )
    qos: Literal[0, 1] = Field(1, description="QoS of published events (1: at least once).")
    topic_prefix: str = Field(
        "tidegate/{gateway}",
        description="`{prefix}` in templates; status goes to `<prefix>/status`.",
    )
    topic: str = Field(
        "{prefix}/{source}/{name}",
        description="Default route: the topic template of events no rule routes.",
    )
    events_per_message: int = Field(
        1,
        ge=1,
        le=10000,
        description="1: one JSON object per message; N > 1: JSON arrays of up to N events "
        "that share a topic.",
    )
    format: FormatName = Field(
        "json",
        description="How messages are written: `json` (tidegate's event objects; arrays "
        "when `events_per_message` > 1), `json_batch` (always a JSON array, even of one "
        "event), `cloudevents` (CloudEvents 1.0 structured mode; JSON batches of them), "
        "`influx` (InfluxDB line protocol, one line per event, for Telegraf), "
        "`homeassistant` (the events as `json`, one per message, and Home Assistant's MQTT "
        "discovery: a retained config message per signal), `thingsboard` (ThingsBoard's "
        "gateway API: each source a device, telemetry on `v1/gateway/telemetry`), "
        "`sparkplug_b` (Sparkplug B 3.0: the gateway an edge node, each source a device; "
        "protobuf NBIRTH/DBIRTH/DDATA/DDEATH/NDEATH on `spBv1.0/<sparkplug_group>/...`, "
        "the data at `qos`). The outbox stores one copy of each event either way.",
    )
    discovery_prefix: str = Field(
        "homeassistant",
        min_length=1,
        description="With `format: homeassistant`: the topic prefix Home Assistant's MQTT "
        "integration watches for discovery (its default: `homeassistant`).",
    )
    sparkplug_group: str = Field(
        "tidegate",
        min_length=1,
        description="With `format: sparkplug_b`: the Sparkplug group id, the second level of "
        "every topic (`spBv1.0/<sparkplug_group>/DDATA/<gateway id>/<source>`); no `+`, `#` "
        "or `/`.",
    )
    fallbacks: list[BrokerAddress] = Field(
        default_factory=list,
        description="Brokers to fail over to, in order, after `failover_after` failed "
        "connection attempts in a row (from the last, back to the first).",
    )
    failover_after: int = Field(
        3, ge=1, le=1000, description="Failed connection attempts in a row before the next broker."
    )
    return_after: Duration = Field(
        300.0,
        gt=0,
        description="While on a fallback, how often to look whether the first broker (`host`) "
        "is back (a TCP connect); when it is, the uplink moves back to it.",
    )
    topic_aliases: bool = Field(
        True,
        description="MQTT 5: name each of the first topics by a number after its first "
        "message, as many as the broker takes (it says how many when it accepts the "
        "connection; Mosquitto: 10 by default): fewer bytes on the wire per message.",
    )
    max_message_bytes: ByteSize = Field(
        256 * 1024,
        ge=1024,
        description="Largest payload sent in one message (the broker's limit: Mosquitto's "
        "`message_size_limit`; 128 KiB with `preset: aws_iot`); batches are split below it, "
        "and a single event larger than it is dead-lettered. MQTT 5 brokers that announce a "
        "maximum packet size lower it automatically.",
    )
    max_inflight: int = Field(
        200,
        ge=1,
        le=20000,
        description="Messages published but not yet acknowledged, at most (100 with "
        "`preset: aws_iot`).",
    )

    _check_prefix = field_validator("topic_prefix")(_check_topic)
    _check_default_topic = field_validator("topic")(_check_topic)

    def broker_addresses(self) -> list[tuple[str, int]]:
        """``host`` and the fallbacks, in order, each with its port."""
        default = 8883 if self.tls is not None else 1883
        return [(self.host, self.effective_port)] + [
            (b.host, b.port if b.port is not None else default) for b in self.fallbacks
        ]

    @model_validator(mode="before")
    @classmethod
    def _preset_decides(cls, data: Any) -> Any:
        return preset_defaults(data)

    @model_validator(mode="after")
    def _preset_fits(self) -> MqttSection:
        preset_problems(self)
        return self

    @model_validator(mode="after")
    def _format_fits(self) -> MqttSection:
        if self.format == "homeassistant" and self.events_per_message != 1:
            raise ValueError(
                "format homeassistant sends one event per message (Home Assistant reads one "
                "state per message): leave events_per_message at 1"
            )
        if self.format == "homeassistant" and self.topic_prefix == self.discovery_prefix:
            raise ValueError(
                "topic_prefix and discovery_prefix are the same: the gateway's status topic "
                "would be Home Assistant's own birth topic; give topic_prefix another value"
            )
        if self.format == "sparkplug_b" and self.preset is not None:
            raise ValueError(
                f"format sparkplug_b does not work with preset {self.preset} yet: leave one out"
            )
        if self.format == "cloudevents_binary" and (
            self.protocol != "5" or self.events_per_message != 1
        ):
            raise ValueError(
                "format cloudevents_binary needs protocol 5 and one event per message "
                "(its attributes are the message's user properties): use cloudevents otherwise"
            )
        return self

    @field_validator("discovery_prefix")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError("discovery_prefix is a topic, not a filter: no + or #")
        return value

    @field_validator("sparkplug_group")
    @classmethod
    def _one_level(cls, value: str) -> str:
        if re.search(r"[+#/]", value):
            raise ValueError("sparkplug_group is one topic level: no +, # or /")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_static(cls, value: str) -> str:
        if re.search(r"\{(?!gateway\})[^}]*\}", value):
            raise ValueError("topic_prefix may only use the {gateway} placeholder")
        return value


class UplinkSection(MqttSection):
    """One of several uplinks (`uplinks:`): a broker, and how events go to it, by name."""

    name: Name = Field(
        description="The uplink's name: what `publish: {uplink: ...}` routes to, and what "
        "status, metrics and `tidegate buffer stats` show."
    )


SHORTHAND_UPLINK = "default"
"""The name of the one uplink an `mqtt:` section declares."""


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

    @property
    def outbox_path(self) -> Path:
        return self.buffer.path or self.gateway.data_dir / "outbox.db"

    @property
    def topic_prefix(self) -> str:
        primary = self.primary_uplink
        template = primary.topic_prefix if primary else "tidegate/{gateway}"
        return template.replace("{gateway}", self.gateway.id)

    @property
    def client_id(self) -> str:
        primary = self.primary_uplink
        if primary and primary.client_id:
            return primary.client_id
        return f"tidegate-{self.gateway.id}"
