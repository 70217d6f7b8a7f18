"""The receive rows' sessions, outside the measured child: create, fill, check, drop.

A persistent session (clean session off) subscribes to its own topic and leaves;
``fill`` then publishes the messages the child will drain, and returns once the
broker acknowledged every one (a QoS 1 PUBACK comes after Mosquitto queued the message
for the session). After the child, ``unacknowledged`` resumes the session once more
and counts what the broker sends again: messages the child received but never
acknowledged (Mosquitto resends those on reconnect). A QoS 1 message the check sends
itself is the fence: once it is back, nothing older is still on its way.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._client_common import PAYLOAD, REFILL, WINDOW, Stalled, recv_topic

HOST = "127.0.0.1"
LIMIT = 600.0
FENCE = b"fence"


def _loop_until(client: paho.Client, done: Callable[[], bool], what: str,
                limit: float = LIMIT) -> None:
    deadline = time.monotonic() + limit
    while not done():
        rc = client.loop(timeout=1.0)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise Stalled(f"{what}: {paho.error_string(rc)}")
        if time.monotonic() > deadline:
            raise Stalled(f"{what}: no progress before the deadline")


def _connect(port: int, client_id: str, *, clean: bool) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv311, clean_session=clean)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    connected = [False]
    client.on_connect = lambda *_: connected.__setitem__(0, True)
    client.connect(HOST, port)
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _loop_until(client, lambda: connected[0], "connect")
    return client


def _disconnect(client: paho.Client) -> None:
    client.disconnect()
    client.loop(timeout=0.1)


def create_session(port: int, session: str) -> None:
    client = _connect(port, session, clean=False)
    subscribed = [False]
    client.on_subscribe = lambda *_: subscribed.__setitem__(0, True)
    client.subscribe(recv_topic(session), qos=1)
    _loop_until(client, lambda: subscribed[0], "subscribe")
    _disconnect(client)


def fill(port: int, session: str, messages: int) -> None:
    client = _connect(port, f"{session}-feeder", clean=True)
    acked = sent = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    topic = recv_topic(session)
    deadline = time.monotonic() + LIMIT
    while acked < messages:
        room = min(WINDOW - (sent - acked), messages - sent)
        if room > 0 and (room >= REFILL or sent == acked):
            for _ in range(room):
                client.publish(topic, PAYLOAD, qos=1)
            sent += room
        if client.loop(timeout=1.0) != paho.MQTT_ERR_SUCCESS or time.monotonic() > deadline:
            raise Stalled(f"filling {session}: {acked} of {messages} acknowledged")
    _disconnect(client)


def unacknowledged(port: int, session: str) -> int:
    """Resume the session, count what comes again before the fence, then drop it."""
    client = _connect(port, session, clean=False)
    again = 0
    fenced = [False]

    def on_message(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        nonlocal again
        if message.payload == FENCE:
            fenced[0] = True
        else:
            again += 1

    client.on_message = on_message
    # A client may have unsubscribed on its way out (zmqtt does): subscribe again, or
    # the fence would never come back. Resent messages do not depend on it.
    subscribed = [False]
    client.on_subscribe = lambda *_: subscribed.__setitem__(0, True)
    client.subscribe(recv_topic(session), qos=1)
    _loop_until(client, lambda: subscribed[0], "subscribe", 30)
    client.publish(recv_topic(session), FENCE, qos=1)
    _loop_until(client, lambda: fenced[0], "fence", 30)
    _disconnect(client)
    _disconnect(_connect(port, session, clean=True))  # a clean session drops the old one
    return again
