"""The ``mqtt`` driver: devices that publish to a broker on the gateway itself.

ESP32 and Tasmota boards, Zigbee2MQTT and the like already publish to a local
broker. This driver subscribes to topic filters there and turns each message's
payload into events with the same parsers as the ``serial`` driver (``json``,
``kv``, ``csv``, ``regex``, ``struct``, ``raw``), taking the event source and name
from topic levels where configured. It is also the input through which tidegate is
compared with other gateways' MQTT inputs (Node-RED's mqtt-in, ThingsBoard's MQTT
connector): see ``bench/mqtt_bridge.py``.

```yaml
drivers:
  - name: site
    type: mqtt
    host: 127.0.0.1                  # the broker on the gateway (not the cloud broker)
    port: 1883
    username: tidegate
    password_file: /etc/tidegate/local-broker.password
    subscriptions:
      - topic: tele/+/SENSOR         # Tasmota: {"Time":"...","AM2301":{"Temperature":21.5,...}}
        qos: 1
        source: "{topic[1]}"         # the device's topic name: tele/kitchen/SENSOR -> kitchen
        parse:
          format: json
          fields:
            AM2301.Temperature: {name: temperature, unit: "°C"}
            AM2301.Humidity: {name: humidity, unit: "%"}
      - topic: zigbee2mqtt/+         # Zigbee2MQTT: one JSON object per device
        source: "z2m-{topic[1]}"
        parse: {format: json, unlisted: include}
      - topic: home/+/+              # one plain number per topic: home/cellar/humidity "61.2"
        source: "{topic[1]}"
        name: "{topic[2]}"
        parse: {format: csv, columns: [value], fields: {value: {}}}
      - topic: meters/+/raw          # binary: a little-endian u32 pulse count
        source: "{topic[1]}"
        parse: {format: struct, byte_order: little, fields: {pulses: {offset: 0, type: u32}}}
    reconnect: {initial_delay: 500ms, max_delay: 30s}
```

Source and name (see ``tidegate.drivers.mqtt.topics``): ``source`` defaults to the driver's name;
``{topic[N]}`` takes topic level N (from 0), ``{topic}`` the whole topic. ``name``
defaults to the parser's field names; ``{field}`` is that name, so
``"{topic[2]}.{field}"`` prefixes it. Rendered values are cleaned into valid names.

Delivery: with ``persistent_session: true`` (the default) the driver connects with a
fixed client id and ``clean_session: false`` (MQTT 5: ``clean_start: false`` and a
``session_expiry``), so the broker keeps its subscriptions and queues QoS 1 and 2
messages while the gateway is stopped or restarting; they arrive when it is back. QoS 1 and 2
messages are acknowledged to the broker only after their events were handed to the
pipeline, so a crash before that makes the broker deliver them again (duplicates are
possible, with new event ids; loss before the hand-over is not). Because
acknowledgements wait for the pipeline, a full pipeline slows the broker's deliveries
instead of filling memory. QoS 0 messages have no such brake: at most
``max_pending`` wait, and the newest ones beyond that are dropped and counted.

The subscriptions are made again on every connect, so they survive a broker restart
whether or not the broker persists sessions. Reconnects wait as ``reconnect:`` says,
like the publisher's (``tidegate.backoff``); a connection that drops again within
``max_delay`` keeps the waits growing. The broker keys (``host``, ``port``, ``tls``,
credentials, ``keepalive``, ...) are the uplink's (``tidegate.mqtt.connection``), with
defaults for a broker on the gateway: 127.0.0.1, MQTT 3.1.1.
Retained messages that a broker replays on each subscribe are skipped unless a
subscription says ``retained: true`` (each reconnect would replay them as new
events). A payload that does not parse, or a topic that no filter matches, is counted
and handed to ``context.reject`` with the reason.

Do not subscribe to the topics the gateway itself publishes to on the same broker:
its own events would come back in a loop.

Actions publish through this driver too (``MqttDriver.publish``): switching a
Tasmota plug is ``cmnd/<device>/POWER`` with ``ON``, a Zigbee2MQTT lamp
``zigbee2mqtt/<device>/set`` with ``{"state": "ON"}``. They go out on the driver's
own connection, with its client id and credentials (so the broker's ACL must let it
publish there), at QoS 0 or 1 (an action at QoS 1 is done when the broker's PUBACK
came), optionally retained; one to a topic with a wildcard is refused, and one while
the broker is out of reach fails at once rather than waiting for the reconnect.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tidegate.config.types import Duration, Section
from tidegate.driver import DriverConfig
from tidegate.drivers.mqtt.topics import TopicError, TopicTemplate, check_filter
from tidegate.drivers.parsing.config import ParseConfig
from tidegate.mqtt.connection import MqttConnection


class Subscription(Section):
    """One topic filter and how its messages become events."""

    topic: str = Field(
        description="MQTT topic filter, with `+` (one level) and `#` (the rest) wildcards."
    )
    qos: Literal[0, 1, 2] = Field(
        1,
        description="Subscription QoS: 1 or 2 lets the broker queue messages while the "
        "gateway is away (with `persistent_session`).",
    )
    parse: ParseConfig = Field(description="How each message payload becomes events.")
    source: str | None = Field(
        None,
        description="Event source: a template such as `{topic[1]}` (topic level 1, from 0), "
        "`{topic}` or `{driver}`, with literal text around. Default: the driver's name.",
    )
    name: str | None = Field(
        None,
        description="Event name: a template like `source`, where `{field}` is the name the "
        "parser gave. Default: the parser's names.",
    )
    retained: bool = Field(
        False,
        description="Turn retained messages, which the broker replays at every (re)subscribe, "
        "into events as well.",
    )

    @field_validator("topic")
    @classmethod
    def _valid_filter(cls, value: str) -> str:
        try:
            check_filter(value)
        except TopicError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _valid_templates(self) -> Subscription:
        levels = check_filter(self.topic)
        try:
            if self.source is not None:
                TopicTemplate(self.source, driver="x", filter_levels=levels, allow_field=False)
            if self.name is not None:
                TopicTemplate(self.name, driver="x", filter_levels=levels, allow_field=True)
        except TopicError as exc:
            raise ValueError(str(exc)) from None
        return self


class MqttInputConfig(
    MqttConnection, DriverConfig, runtime="tidegate.drivers.mqtt.driver:MqttDriver"
):
    """Messages from a broker on the gateway, as events."""

    type: Literal["mqtt"] = Field("mqtt", description="Driver kind.")
    host: str = MqttConnection.default_for("host", "127.0.0.1")
    protocol: Literal["3.1.1", "5"] = MqttConnection.default_for("protocol", "3.1.1")
    client_id: str | None = MqttConnection.default_for(
        "client_id",
        None,
        description="MQTT client id; default `tidegate-<gateway id>-<driver name>`. A "
        "persistent session belongs to this id: keep it fixed.",
    )
    persistent_session: bool = Field(
        True,
        description="Ask the broker to keep the subscriptions and queue QoS 1/2 messages "
        "while the gateway is away (clean_session false / clean_start false).",
    )
    session_expiry: Duration = Field(
        86400.0,
        gt=0,
        le=4294967295,
        description="MQTT 5 only: how long the broker keeps a persistent session after a "
        "disconnect (MQTT 3.1.1 brokers keep it until a clean connect).",
    )
    max_pending: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="QoS 0 messages held while the pipeline is busy; newer ones are dropped "
        "(and counted) beyond this.",
    )
    subscriptions: list[Subscription] = Field(
        min_length=1, description="Topic filters to subscribe to, each with its parser."
    )

    @model_validator(mode="after")
    def _consistent(self) -> MqttInputConfig:
        filters = [s.topic for s in self.subscriptions]
        repeated = sorted({f for f in filters if filters.count(f) > 1})
        if repeated:
            raise ValueError(f"topic filters listed twice: {repeated}")
        return self
