"""A simulated I²C bus: smbus2's ``SMBus`` methods, served by simulated chips.

``SimulatedBus`` has the method names and signatures of ``smbus2.SMBus`` that the
``i2c`` driver (and ``tidegate devices``' probe) use, and turns each call into
the I²C transactions a real adapter would put on the wire: ``read_byte_data(a, r)``
is a write of ``[r]`` then a read of one byte (a repeated start), ``i2c_rdwr``
takes ``smbus2.i2c_msg`` messages as they are. A chip (``SimChip``) sees only
those transactions (``write(data)``, ``read(length)``), so it answers like the
part does: a register pointer that auto-increments, a command that starts a
conversion, a result that is not there yet.

An address with no chip, or a chip told to stop answering, raises what Linux
raises for a NACK: ``OSError(EREMOTEIO)`` (the Pi's i2c-bcm2835; some adapters
give ``ENXIO``, set ``nack_errno``)::

    bus = SimulatedBus(chips={0x76: Bme280Sim(temperature=21.5), 0x44: Sht3xSim()})
    bus.read_byte(0x76)        # answers
    bus.read_byte(0x50)        # OSError: [Errno 121] Remote I/O error
    bus.chips[0x44].unplug()   # NACKs from now on; .plug() brings it back

The chip simulations are in ``tidegate.drivers.i2c.sim_chips``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
import threading
from collections.abc import Mapping, Sequence

from smbus2 import i2c_msg
from smbus2.smbus2 import I2C_M_RD


def nack(address: int, code: int = errno.EREMOTEIO) -> OSError:
    """The error a Linux I²C adapter reports when nobody acknowledges ``address``."""
    return OSError(code, f"{os.strerror(code)} (no ACK from 0x{address:02x})")


class ChipNack(Exception):
    """Raised by a chip that does not acknowledge this transaction (an SHT3x read
    before its measurement is done); the bus turns it into the adapter's OSError."""


class SimChip:
    """A chip on the simulated bus. Subclasses answer ``write`` and ``read``
    transactions; this base adds the faults every chip can show."""

    def __init__(self, *, nack_rate: float = 0.0, seed: int | None = None) -> None:
        self.answering = True
        """False: the chip NACKs every transaction (unplugged, no power)."""
        self.nack_next = 0
        """NACK this many transactions from now, then answer again."""
        self.nack_rate = nack_rate
        """Chance that a transaction is NACKed (a noisy bus, a brown-out)."""
        self.transactions = 0
        """Transactions the chip acknowledged."""
        self.rng = random.Random(seed)

    def unplug(self) -> None:
        self.answering = False

    def plug(self) -> None:
        self.answering = True

    def acknowledges(self) -> bool:
        """Whether the chip ACKs its address for the next transaction."""
        if not self.answering:
            return False
        if self.nack_next > 0:
            self.nack_next -= 1
            return False
        return not (self.nack_rate and self.rng.random() < self.nack_rate)

    def write(self, data: bytes) -> None:
        """A write transaction: the bytes after the address."""

    def read(self, length: int) -> bytes:
        """A read transaction of ``length`` bytes (a chip with nothing to say gives 0xFF,
        the idle bus level)."""
        return b"\xff" * length

    def probe(self) -> None:
        """An address-only transaction (SMBus quick command)."""


class SimulatedBus:
    """An ``smbus2.SMBus`` stand-in serving ``chips`` by 7-bit address."""

    def __init__(
        self,
        chips: Mapping[int, SimChip] | None = None,
        *,
        nack_errno: int = errno.EREMOTEIO,
    ) -> None:
        self.chips: dict[int, SimChip] = dict(chips or {})
        self.nack_errno = nack_errno
        self.closed = False
        self.transactions = 0
        """Transactions started on the bus, acknowledged or not."""
        # One transaction at a time, as on the wire (callers are threads).
        self._lock = threading.Lock()

    # --- the wire -----------------------------------------------------------------------

    def _chip(self, address: int) -> SimChip:
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if not 0 <= address <= 0x7F:
            raise ValueError(f"0x{address:x} is not a 7-bit address")
        self.transactions += 1
        chip = self.chips.get(address)
        if chip is None or not chip.acknowledges():
            raise nack(address, self.nack_errno)
        chip.transactions += 1
        return chip

    def _write(self, address: int, data: Sequence[int] | bytes) -> None:
        with self._lock:
            try:
                self._chip(address).write(bytes(data))
            except ChipNack:
                raise nack(address, self.nack_errno) from None

    def _read(self, address: int, length: int) -> bytes:
        with self._lock:
            return self._answer(self._chip(address), address, length)

    def _answer(self, chip: SimChip, address: int, length: int) -> bytes:
        try:
            return chip.read(length)[:length].ljust(length, b"\xff")
        except ChipNack:
            raise nack(address, self.nack_errno) from None

    def _write_read(self, address: int, data: Sequence[int], length: int) -> bytes:
        # A combined transaction: a NACK anywhere fails the whole call.
        with self._lock:
            chip = self._chip(address)
            try:
                chip.write(bytes(data))
            except ChipNack:
                raise nack(address, self.nack_errno) from None
            return self._answer(chip, address, length)

    # --- smbus2.SMBus's methods ---------------------------------------------------------

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        with self._lock:
            self._chip(i2c_addr).probe()

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return self._read(i2c_addr, 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        self._write(i2c_addr, [value])

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._write_read(i2c_addr, [register], 1)[0]

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        self._write(i2c_addr, [register, value])

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return int.from_bytes(self._write_read(i2c_addr, [register], 2), "little")

    def write_word_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        self._write(i2c_addr, [register, value & 0xFF, value >> 8])

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        if not 0 < length <= 32:
            raise ValueError("Desired block length over 32 bytes")  # smbus2's own check
        return list(self._write_read(i2c_addr, [register], length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        if len(data) > 32:
            raise ValueError("Data length cannot exceed 32 bytes")
        self._write(i2c_addr, [register, *data])

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        with self._lock:
            for message in i2c_msgs:
                chip = self._chip(message.addr)
                if message.flags & I2C_M_RD:
                    answer = self._answer(chip, message.addr, message.len)
                    ctypes.memmove(message.buf, answer, message.len)
                else:
                    try:
                        chip.write(ctypes.string_at(message.buf, message.len))
                    except ChipNack:
                        raise nack(message.addr, self.nack_errno) from None

    def open(self, bus: int | str = "sim") -> None:
        """Open again after ``close`` (``SMBus.open``'s name; the bus argument is ignored)."""
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> SimulatedBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
