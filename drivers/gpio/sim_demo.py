"""The demo's simulated GPIO chips: real time, lines named like a Raspberry Pi's."""

from __future__ import annotations

from tidegate.drivers.gpio.config import ButtonSim, LevelsSim, PulsesSim
from tidegate.drivers.gpio.sim import SimChip
from tidegate.drivers.gpio.sim_backend import SimBackend
from tidegate.drivers.gpio.timelines import generator_stream


def _pi_names(line: int | str) -> dict[int, str]:
    """``GPIO0``…``GPIO31``, plus ``line`` on offset 0 if it is another name."""
    names = {n: f"GPIO{n}" for n in range(32)}
    if isinstance(line, str) and line not in names.values() and not line.isdigit():
        names[0] = line
    return names


def sim_backend(
    generator: ButtonSim | PulsesSim | LevelsSim, *, chip: str, line: int | str, active_low: bool
) -> SimBackend:
    """The demo's simulated chip for one driver: real time, lines named like a
    Raspberry Pi's (``GPIO0``…``GPIO31``, plus ``line`` if it is another name),
    idle at the level the wiring implies, playing the generator's timeline."""
    names = _pi_names(line)
    idle_level = 1 if active_low else 0
    sim_chip = SimChip(
        label=chip,
        line_names=names,
        levels=dict.fromkeys(range(32), idle_level),
        kernel_debounce=True,
        realtime=True,
    )
    return SimBackend(sim_chip, autoplay=generator_stream(generator, idle_level=idle_level))


def sim_output_backend(*, chip: str, line: int | str) -> SimBackend:
    """The demo's simulated chip for one output line: real time, Pi line names; the
    line is driven by the driver and nothing else."""
    return SimBackend(SimChip(label=chip, line_names=_pi_names(line), realtime=True))
