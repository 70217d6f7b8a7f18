"""What every MQTT connection shares: the uplink's and the ``mqtt`` driver's.

The connection section (broker, TLS, credentials, keepalive, reconnect), TLS
contexts, reading secrets; the uplink's own MQTT client (``wire``), and driving a
paho client from asyncio (``paho_bridge``: the ``mqtt`` driver's subscriptions).
"""
