"""The ``serial`` driver: sensors on a serial port, its commands and its simulator."""
