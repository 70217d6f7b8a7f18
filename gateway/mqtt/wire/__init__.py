"""The uplink's own MQTT client: the publishing side of MQTT 3.1.1 and 5 on asyncio.

Measured beside paho-mqtt (``bench/mqtt_clients.py``), paho's per-message work
was most of the gateway's CPU at one event per message; this client does only
what the publisher needs: CONNECT (clean session, Last Will, credentials, TLS),
PUBLISH at QoS 0 and 1, PUBACK with its reason code, keep-alive with a deadline
for the broker's answers, and DISCONNECT either way. paho stays in use for what
this does not cover: the ``mqtt`` driver's subscriptions.

- ``reasons``: reason codes and their names.
- ``packets``: encoding packets, framing and decoding what the broker sends.
- ``client``: the connection (an ``asyncio.Protocol``) and what the publisher calls.
"""

from tidegate.mqtt.wire.client import ConnectFailed, WireClient
from tidegate.mqtt.wire.reasons import Reason

__all__ = ["ConnectFailed", "Reason", "WireClient"]
