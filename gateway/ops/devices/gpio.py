"""GPIO chips for ``chip:`` and ``line:``: the ``/dev/gpiochip*`` character devices.

Their lines (offset, name, consumer) are read through libgpiod v2's Python
bindings when ``gpiod`` is installed (``tidegate[gpio]``). Without it, or without
chips, the result says so and why.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tidegate.ops.devices.paths import SYSTEM, DevicePaths

GPIO_INSTALL_HINT = "pip install 'tidegate[gpio]' (libgpiod v2 bindings)"


@dataclass(frozen=True, slots=True)
class GpioLine:
    offset: int
    name: str
    consumer: str
    used: bool


@dataclass(frozen=True, slots=True)
class GpioChip:
    path: str
    name: str = ""
    label: str = ""
    lines: tuple[GpioLine, ...] = ()
    problem: str | None = None
    """Why the lines are not listed (permission, missing bindings)."""


def _import_gpiod() -> ModuleType | None:
    try:
        return importlib.import_module("gpiod")
    except ImportError:
        return None


def _chip_lines(gpiod: Any, path: str) -> GpioChip:
    try:
        with gpiod.Chip(path) as chip:
            info = chip.get_info()
            lines = tuple(
                GpioLine(
                    offset=int(line.offset),
                    name=str(line.name or ""),
                    consumer=str(line.consumer or ""),
                    used=bool(line.used),
                )
                for line in (chip.get_line_info(offset) for offset in range(info.num_lines))
            )
            return GpioChip(path, str(info.name), str(info.label), lines)
    except PermissionError:
        return GpioChip(
            path,
            problem="permission denied: run as root, or add the user to the `gpio` group "
            "(hardware/udev/99-tidegate.rules)",
        )
    except OSError as exc:
        return GpioChip(path, problem=f"cannot open: {exc.strerror or exc}")


def find_gpio_chips(
    paths: DevicePaths = SYSTEM,
    import_gpiod: Callable[[], ModuleType | None] = _import_gpiod,
) -> tuple[list[GpioChip], list[str]]:
    """GPIO chips with their lines where libgpiod's bindings can read them; and notes."""
    nodes = sorted(
        (p for p in paths.dev.glob("gpiochip*") if p.name[8:].isdigit()),
        key=lambda p: int(p.name[8:]),
    )
    if not nodes:
        return [], [f"no GPIO chips: nothing matches {paths.dev}/gpiochip* on this machine"]
    gpiod = import_gpiod()
    if gpiod is None:
        return [GpioChip(str(p), problem="lines not listed") for p in nodes], [
            f"the gpiod module is not installed, so lines are not listed: {GPIO_INSTALL_HINT}"
        ]
    return [_chip_lines(gpiod, str(p)) for p in nodes], []
