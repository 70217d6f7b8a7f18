"""What every chip profile is: a setup and a measurement, as I²C transactions.

A profile is synchronous code over an ``smbus2.SMBus``-like bus (``Bus``). Its
``measure`` is a generator: it starts a conversion, *yields* how long the chip
needs, and returns the readings once resumed. The driver runs each step in a
thread (bus I/O blocks) and waits the yielded time with ``asyncio.sleep``, so
neither the transfers nor the chip's conversion time block the event loop, and
other chips on the bus are read meanwhile.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

from smbus2 import i2c_msg


class Bus(Protocol):
    """The part of ``smbus2.SMBus`` the profiles use (``SimulatedBus`` has it too)."""

    def read_byte(self, i2c_addr: int, force: bool | None = ...) -> int: ...
    def write_byte(self, i2c_addr: int, value: int, force: bool | None = ...) -> None: ...
    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = ...) -> int: ...
    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = ...
    ) -> None: ...
    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = ...
    ) -> list[int]: ...
    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = ...
    ) -> None: ...
    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Reading:
    """One value a chip measured."""

    quantity: str
    value: float | int
    unit: str | None


class WrongChip(Exception):
    """The chip at the address is not the one the config names (its id register says)."""


class BadReading(Exception):
    """The chip answered, but with bytes that cannot be a reading (a failed CRC, a
    skipped measurement): rejected with the raw bytes, never published."""

    def __init__(self, raw: bytes, reason: str, counter: str) -> None:
        super().__init__(reason)
        self.raw = raw
        self.reason = reason
        self.counter = counter
        """The driver counter it is tallied under (``crc_error``, ``bad_reading``)."""


Measurement = Generator[float, None, list[Reading]]
"""Yields seconds to wait (the chip converting); returns the readings."""


class Chip(ABC):
    """A chip profile: talks to one chip at ``address``."""

    def __init__(self, address: int) -> None:
        self.address = address

    def setup(self, bus: Bus) -> None:  # noqa: B027 - most chips need no setup
        """Identify the chip and read what it needs (calibration); run again after the
        chip stopped answering (it may have been power-cycled). Raises ``WrongChip``."""

    @abstractmethod
    def measure(self, bus: Bus) -> Measurement:
        """One measurement: transactions, yielded waits, then the readings."""

    def read(self, bus: Bus, length: int) -> bytes:
        """A plain read transaction of ``length`` bytes (no register pointer written)."""
        message = i2c_msg.read(self.address, length)
        bus.i2c_rdwr(message)
        return bytes(message)
