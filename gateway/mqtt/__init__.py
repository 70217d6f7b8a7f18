"""What every MQTT connection shares: the uplink's and the ``mqtt`` driver's.

The connection section (broker, TLS, credentials, keepalive, reconnect), TLS
contexts, reading secrets; tidegate's own MQTT code (``wire``: the uplink's client and
the ``mqtt`` driver's subscriber), and driving a paho client from asyncio
(``paho_bridge``: the ``mqtt`` driver's subscriptions at QoS 2).
"""
