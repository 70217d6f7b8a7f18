"""Generic register mode: values read from a chip's registers, no profile.

For a chip without a built-in profile: optional ``setup`` writes (each time the
chip is found), an optional ``trigger`` write and ``wait`` before each reading,
then each value is one block read from its register (pointer write, repeated
start, ``size`` bytes), decoded as its type and byte order, shifted, scaled.
"""

from __future__ import annotations

import struct

from tidegate.drivers.i2c.chips.base import BadReading, Bus, Chip, Measurement, Reading
from tidegate.drivers.i2c.devices import REGISTER_SIZES, GenericDevice, RegisterValue
from tidegate.drivers.parsing.conversions import Converter, number_converter
from tidegate.drivers.parsing.records import FrameRejected


def decode(spec: RegisterValue, raw: bytes) -> int | float:
    """The raw number in ``raw`` (exactly the type's size), shifted as configured."""
    if spec.type == "f32":
        value: float = struct.unpack(">f" if spec.byte_order == "big" else "<f", raw)[0]
        return value
    number = int.from_bytes(raw, spec.byte_order, signed=spec.type.startswith("i"))
    return number >> spec.shift


class GenericChip(Chip):
    """Reads the registers a ``GenericDevice`` lists."""

    def __init__(self, device: GenericDevice) -> None:
        super().__init__(device.address)
        self.device = device
        self.converters: list[Converter] = [
            number_converter(r.scale, r.offset, r.decimals, r.name) for r in device.registers
        ]

    def setup(self, bus: Bus) -> None:
        for write in self.device.setup:
            bus.write_byte_data(self.address, write.reg, write.value)

    def measure(self, bus: Bus) -> Measurement:
        device = self.device
        if device.trigger is not None:
            bus.write_byte_data(self.address, device.trigger.reg, device.trigger.value)
        if device.wait:
            yield device.wait
        readings = []
        for spec, convert in zip(device.registers, self.converters, strict=True):
            raw = bytes(bus.read_i2c_block_data(self.address, spec.reg, REGISTER_SIZES[spec.type]))
            try:
                value = convert(decode(spec, raw))
            except FrameRejected as exc:  # a NaN float, an overflow: never published
                raise BadReading(raw, f"{spec.name}: {exc}", "bad_reading") from None
            if not isinstance(value, int | float):
                raise BadReading(raw, f"{spec.name}: not a number", "bad_reading")
            readings.append(Reading(spec.name, value, spec.unit))
        return readings
