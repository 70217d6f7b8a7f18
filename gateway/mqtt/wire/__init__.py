"""tidegate's own MQTT client: MQTT 3.1.1 and 5 on asyncio, for the uplink and the ``mqtt`` driver.

Measured beside paho-mqtt (``bench/mqtt_clients.py``), paho's per-message work
was most of the gateway's CPU at one event per message; this client does only
what tidegate needs. Publishing: CONNECT (clean session, Last Will, credentials,
TLS), PUBLISH at QoS 0 and 1, PUBACK with its reason code. Receiving: CONNECT with
a persistent session, SUBSCRIBE and SUBACK, PUBLISH at QoS 0 and 1 acknowledged
when the caller says, flow control, and PUBLISH at QoS 0 and 1 on the same
connection (the driver's actions). Both: keep-alive with a deadline for the
broker's answers, and DISCONNECT either way. paho stays in use for what this does
not cover: an ``mqtt`` driver with a subscription at QoS 2.

- ``reasons``: reason codes and their names.
- ``packets``: encoding packets, framing and decoding what the broker sends.
- ``connection``: what every connection does (connecting, keep-alive, its end).
- ``client``: the publisher's connection and what the publisher calls.
- ``subscriber``: the ``mqtt`` driver's connection.
"""

from tidegate.mqtt.wire.client import ConnectFailed, WireClient
from tidegate.mqtt.wire.reasons import Reason

__all__ = ["ConnectFailed", "Reason", "WireClient"]
