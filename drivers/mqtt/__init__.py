"""The ``mqtt`` driver: devices that publish to a broker on the gateway itself."""
