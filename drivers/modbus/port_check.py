"""Why a serial port did not open: pymodbus only says that it did not."""

from __future__ import annotations

import os


def why_not_open(port: str) -> str:
    """Why a serial port did not open (pymodbus does not say): ": <reason>", or ""."""
    if not os.path.exists(port):
        return ": no such device (unplugged?)"
    if not os.access(port, os.R_OK | os.W_OK):
        return ": permission denied (add the service user to the group that owns it, " \
            "usually dialout)"
    import serial  # noqa: PLC0415  # pyserial, pymodbus's dependency: only on this failure

    try:
        serial.Serial(port, exclusive=True).close()
    except (OSError, ValueError, serial.SerialException) as exc:
        text = str(exc)
        if "exclusive" in text or "Resource temporarily unavailable" in text:
            return ": busy (another program has it open)"
        if "Inappropriate ioctl" in text:
            return ": not a serial port"
        return f": {text}"
    return ""
