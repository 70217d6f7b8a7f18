"""I²C sensors on smbus2: a bus and an address per device, with built-in chip profiles."""
