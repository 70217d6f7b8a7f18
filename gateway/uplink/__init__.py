"""Uplinks: outbox to broker, QoS 1, acknowledged before deletion.

``publisher`` (the connection loop) fills the ``window`` (messages in flight,
packed from outbox rows by ``batches``, written in the uplink's format by
``formats``) on a ``client`` (``tidegate.mqtt.wire``) made per
connection; ``deliveries`` records PUBACKs and refusals in the outbox;
``refusals`` decides when the broker refused a message rather than lost the
connection; ``status`` is what ``tidegate status`` shows of it.
"""
