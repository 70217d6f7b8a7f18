"""What can go wrong talking Modbus, by name: exception replies and refused writes.

A slave that cannot serve a request answers with an exception code (the function
code with its top bit set, then one byte). The names below are the Modbus
Application Protocol's (section 7), in the form ``tidegate status`` counts them.
"""

from __future__ import annotations

from tidegate.errors import DriverError

EXCEPTION_NAMES: dict[int, str] = {
    0x01: "illegal_function",
    0x02: "illegal_data_address",
    0x03: "illegal_data_value",
    0x04: "device_failure",
    0x05: "acknowledge",
    0x06: "device_busy",
    0x08: "memory_parity_error",
    0x0A: "gateway_path_unavailable",
    0x0B: "gateway_target_failed",
}
"""Exception code -> the counter it is tallied under."""


def exception_name(code: int) -> str:
    """The name of an exception code; an unassigned one is ``exception_<code>``."""
    return EXCEPTION_NAMES.get(code, f"exception_{code}")


class ModbusError(DriverError):
    """A Modbus request that did not get the answer it asked for."""


class ExceptionReply(ModbusError):
    """The slave answered with an exception code."""

    def __init__(self, device: str, function: int, code: int) -> None:
        self.device, self.function, self.code = device, function, code
        self.name = exception_name(code)
        super().__init__(
            f"device {device!r} answered function {function} with exception {code} ({self.name})"
        )


class NoAnswer(ModbusError):
    """The slave did not answer, after the retries."""


class MismatchedReply(ModbusError):
    """Every answer taken for a request, after the retries, was no answer to it: another
    function, or another number of registers or bits (``raw``: the last one's PDU)."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw


class WriteRefused(ModbusError):
    """A write the driver will not send: the reason is in the message."""


class UnknownRegister(WriteRefused):
    """No device or register of that name in the driver's config."""


class ReadOnlyRegister(WriteRefused):
    """An input register or discrete input: Modbus has no function to write those."""


class ValueOutOfRange(WriteRefused, ValueError):
    """A value the register's type cannot hold (after scale and offset)."""
