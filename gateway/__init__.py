"""tidegate: an IoT edge event gateway (sensors in, YAML rules, a durable outbox, MQTT out)."""

__version__ = "0.1.0"
