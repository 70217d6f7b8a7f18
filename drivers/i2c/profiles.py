"""A ``devices:`` entry → the chip profile that reads it."""

from __future__ import annotations

from tidegate.drivers.i2c.chips.ads1115 import Ads1115, Channel
from tidegate.drivers.i2c.chips.base import Chip
from tidegate.drivers.i2c.chips.bh1750 import Bh1750
from tidegate.drivers.i2c.chips.bme280 import Bme280
from tidegate.drivers.i2c.chips.generic import GenericChip
from tidegate.drivers.i2c.chips.sht3x import Sht3x
from tidegate.drivers.i2c.devices import (
    Ads1115Device,
    Bh1750Device,
    Bme280Device,
    Device,
    GenericDevice,
    Sht3xDevice,
)


def chip_for(device: Device) -> Chip:
    """The profile for ``device``; builds objects only (no bus I/O)."""
    if isinstance(device, Bme280Device):
        sampling = device.oversampling
        return Bme280(device.address, temperature=sampling.temperature,
                      pressure=sampling.pressure, humidity=sampling.humidity)
    if isinstance(device, Sht3xDevice):
        return Sht3x(device.address)
    if isinstance(device, Bh1750Device):
        return Bh1750(device.address)
    if isinstance(device, Ads1115Device):
        channels = [Channel(c.name, c.input, c.full_scale, c.scale, c.offset, c.unit)
                    for c in device.channels]
        return Ads1115(device.address, channels, device.data_rate)
    if isinstance(device, GenericDevice):
        return GenericChip(device)
    raise TypeError(f"no profile for {type(device).__qualname__}")
