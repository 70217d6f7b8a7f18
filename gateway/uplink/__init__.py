"""Uplinks: outbox to broker, QoS 1, acknowledged before deletion."""
