"""The uplink's schema: `mqtt:` (one uplink) and each of `uplinks:` — the broker,
its fallbacks, its format, topics, batching and bounds (part of
``tidegate.config.schema``, which re-exports every name here)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tidegate.config.types import ByteSize, Duration, Name, Section
from tidegate.mqtt.connection import MqttConnection
from tidegate.uplink.presets.config import (
    AzureIotHubSection,
    PresetName,
    preset_defaults,
    preset_problems,
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
    discovery_forget_after: Duration | None = Field(
        7 * 86400.0,
        gt=0,
        description="With `format: homeassistant`: a signal not seen for this long has its "
        "entities removed from Home Assistant (an empty retained config), as have entities "
        "of this gateway's it finds retained on the broker and never sees again (a signal "
        "renamed or gone before a restart); `null`: never remove.",
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
    max_event_age: Duration | None = Field(
        None,
        gt=0,
        description="This uplink's bound on age: an event older than this (by its `time`) "
        "when the uplink would send it is given up for this uplink, not sent late, and "
        "counted (`too_old` per uplink in `tidegate status --json`; with one uplink the "
        "event leaves the outbox, counted as `dropped_uplink_max_age`). Judged only on a "
        "trusted clock. With several uplinks, the others still send it.",
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
