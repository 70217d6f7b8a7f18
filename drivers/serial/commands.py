"""Commands written to a serial device: text like ``"READ\\r\\n"`` or hex bytes with an
optional checksum (Modbus RTU requests).

Shared by the ``serial`` driver (``poll:``) and the simulated device, which answers
them (``respond_to:``); a module of its own so that neither imports the other's
internals and the driver can start the simulated device for ``port: sim``.
"""

from __future__ import annotations

from typing import TypeAlias

from pydantic import Field

from tidegate.config.types import Section
from tidegate.drivers.framing.checksums import CHECKSUMS, ByteOrder, ChecksumKind
from tidegate.drivers.framing.lines import HexBytes, TextBytes


class HexCommand(Section):
    """A binary command, optionally with a checksum appended (Modbus RTU requests)."""

    hex: HexBytes = Field(min_length=1, description='The bytes in hex, e.g. "01 03 00 00 00 02".')
    checksum: ChecksumKind | None = Field(None, description="Append this checksum of the bytes.")
    checksum_byte_order: ByteOrder | None = Field(
        None, description="Byte order of the appended checksum; default: the algorithm's custom."
    )

    def encode(self) -> bytes:
        if self.checksum is None:
            return self.hex
        algorithm = CHECKSUMS[self.checksum]
        return self.hex + algorithm.encode(algorithm.compute(self.hex), self.checksum_byte_order)


Command: TypeAlias = TextBytes | HexCommand
"""A string (``"READ\\r\\n"``; YAML escapes work in double quotes) or ``{hex: ...}``."""


def command_bytes(command: Command) -> bytes:
    return command.encode() if isinstance(command, HexCommand) else command
