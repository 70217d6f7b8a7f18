"""What every MQTT connection shares: the uplink's and the ``mqtt`` driver's.

The connection section (broker, TLS, credentials, keepalive, reconnect), TLS
contexts, reading secrets, and driving a paho client from asyncio.
"""
