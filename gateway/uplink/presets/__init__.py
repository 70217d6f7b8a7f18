"""Presets (``mqtt.preset``): the rules of a cloud broker that is not a general MQTT
broker, so that an uplink to it is right at load and stays within them at run time.

- ``aws_iot`` (``aws_iot.py``): AWS IoT Core. TLS with the device's X.509 certificate,
  the thing's name as client id, topics of at most 256 bytes and 7 slashes (a topic
  that breaks them dead-letters its event, not its batch), messages of 128 KiB.
- ``azure_iot_hub`` (``azure_iot_hub.py``, ``sas.py``): Azure IoT Hub. MQTT 3.1.1 over TLS, the
  device id as client id, the user name the hub asks for, every message on
  ``devices/<id>/messages/events/`` with a property bag, 256 KiB; the device logs in
  with its X.509 certificate or a SAS token made from its key on every connect
  and renewed, by a clean reconnect, before it expires.

``config`` holds what is checked at load (imported by the schema, so kept light);
``base`` is what the publisher asks of a preset at run time.
"""
