"""One MQTT client per connection, set up for the publisher (``tidegate.mqtt.wire``)."""

from __future__ import annotations

import ssl

from tidegate.config.schema import MqttSection
from tidegate.mqtt.connection import MqttConnection
from tidegate.mqtt.credentials import Secret
from tidegate.mqtt.wire import ConnectFailed, WireClient
from tidegate.mqtt.wire.client import OnDisconnect, OnPublish
from tidegate.uplink.formats.base import Announcement


def new_client(
    mqtt: MqttSection,
    *,
    client_id: str,
    will_topic: str,
    password: Secret | None,
    on_publish: OnPublish,
    on_disconnect: OnDisconnect,
    will: Announcement | None = None,
) -> WireClient:
    """A client with a clean session and ``offline`` (retained) on ``will_topic`` as its
    Last Will, or the format's ``will`` (Sparkplug B's NDEATH) in its place.

    The outbox, not the client's memory, is the source of truth for what still
    needs sending: the client keeps no queue of its own.
    """
    return WireClient(
        client_id=client_id,
        v5=mqtt.protocol == "5",
        keepalive=mqtt.keepalive,
        username=mqtt.username,
        password=password if mqtt.username is not None else None,
        will_topic=will_topic if will is None else will.topic,
        will_payload=b"offline" if will is None else will.payload,
        will_retain=True if will is None else will.retain,
        on_publish=on_publish,
        on_disconnect=on_disconnect,
        topic_aliases=mqtt.topic_aliases,
    )


async def open_connection(
    client: WireClient,
    mqtt: MqttConnection,
    tls: ssl.SSLContext | None,
    address: tuple[str, int] | None = None,
) -> None:
    """Connect ``client`` to ``address`` (default: ``mqtt``'s host and port); raises
    ConnectFailed, with the broker's refusal if it refused."""
    host, port = address if address is not None else (mqtt.host, mqtt.effective_port)
    ack = await client.connect(host, port, tls, give_up_after=mqtt.connect_timeout)
    if ack.reason.is_failure:
        raise ConnectFailed(f"broker refused the connection: {ack.reason}")


async def accepts(
    mqtt: MqttSection,
    address: tuple[str, int],
    tls: ssl.SSLContext | None,
    *,
    client_id: str,
    password: Secret | None,
    will_topic: str,
) -> bool:
    """Whether the broker at ``address`` accepts an MQTT connection now: one is made
    and closed cleanly (its Last Will is not published), with nothing sent on it. It
    connects as ``<client_id>-probe``: the uplink's own connection, elsewhere, may be
    to the same cluster under another name, which must not take its session over."""
    probe = new_client(
        mqtt,
        client_id=f"{client_id}-probe"[:128],
        will_topic=will_topic,
        password=password,
        on_publish=lambda mid, reason: None,
        on_disconnect=lambda reason, from_broker, detail: None,
    )
    try:
        await open_connection(probe, mqtt, tls, address)
    except (ConnectFailed, OSError, TimeoutError):
        probe.abort()
        return False
    probe.disconnect()
    return True
