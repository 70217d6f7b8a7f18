"""``bus: sim``: the simulated chips a config's ``devices:`` describe.

Each device gets a simulated chip of its kind at its address, with values that
wander slowly around plausible ones (about 21 °C, 1013 hPa, 45 %RH, 300 lx,
fractions of a volt), and the faults the ``sim:`` section asks for.
"""

from __future__ import annotations

import random
import struct

from tidegate.drivers.i2c.config import I2cConfig
from tidegate.drivers.i2c.devices import (
    REGISTER_SIZES,
    Ads1115Device,
    Bh1750Device,
    Bme280Device,
    Device,
    GenericDevice,
    Sht3xDevice,
)
from tidegate.drivers.i2c.sim_bus import SimChip, SimulatedBus
from tidegate.drivers.i2c.sim_chips import Ads1115Sim, Bh1750Sim, Bme280Sim, RegisterSim, Sht3xSim


class Wander:
    """A value on a slow bounded random walk: one step per reading."""

    def __init__(self, rng: random.Random, start: float, step: float, low: float,
                 high: float) -> None:
        self.rng, self.value, self.step, self.low, self.high = rng, start, step, low, high

    def __call__(self) -> float:
        self.value = min(self.high, max(self.low, self.value + self.rng.uniform(-1, 1) * self.step))
        return self.value


def simulated_bus(config: I2cConfig) -> SimulatedBus:
    """A bus with one simulated chip per device of ``config``."""
    rng = random.Random(config.sim.seed)
    return SimulatedBus({d.address: _chip(d, config, rng) for d in config.devices})


def _chip(device: Device, config: I2cConfig, rng: random.Random) -> SimChip:
    nack_rate, seed = config.sim.nack_rate, rng.randrange(2**32)
    if isinstance(device, Bme280Device):
        return Bme280Sim(Wander(rng, 21.0, 0.05, 5, 35), Wander(rng, 1013.25, 0.1, 980, 1040),
                         Wander(rng, 45.0, 0.2, 20, 90), nack_rate=nack_rate, seed=seed)
    if isinstance(device, Sht3xDevice):
        return Sht3xSim(Wander(rng, 21.0, 0.05, 5, 35), Wander(rng, 45.0, 0.2, 20, 90),
                        crc_error_rate=config.sim.crc_error_rate, nack_rate=nack_rate, seed=seed)
    if isinstance(device, Bh1750Device):
        return Bh1750Sim(Wander(rng, 300.0, 10.0, 0, 2000), nack_rate=nack_rate, seed=seed)
    if isinstance(device, Ads1115Device):
        inputs = (Wander(rng, 1.2, 0.01, 0, 3.3), Wander(rng, 0.8, 0.01, 0, 3.3),
                  Wander(rng, 0.10, 0.001, 0, 3.3), Wander(rng, 0.05, 0.001, 0, 3.3))
        return Ads1115Sim(inputs, nack_rate=nack_rate, seed=seed)
    assert isinstance(device, GenericDevice)
    registers = {}
    for i, spec in enumerate(device.registers):
        size = REGISTER_SIZES[spec.type]
        if spec.type == "f32":
            raw = struct.pack(">f" if spec.byte_order == "big" else "<f", 21.5 + i)
        else:
            number = ((100 * (i + 1)) << spec.shift) & ((1 << 8 * size) - 1)
            raw = number.to_bytes(size, spec.byte_order)
        registers[spec.reg] = raw
    return RegisterSim(registers, nack_rate=nack_rate, seed=seed)
