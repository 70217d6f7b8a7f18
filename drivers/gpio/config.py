"""GPIO lines: buttons, contacts, pulse outputs such as flow and energy meters, and
output lines that switch relays.

One driver instance watches or drives one line, on real hardware through libgpiod v2
(``backend: gpiod``, the optional extra ``tidegate[gpio]``) or on a simulated
chip (``backend: sim``) that plays generated edges, so a device config runs on
a laptop by changing one line. Three modes watch a line:

- ``edge``: an event per debounced edge (``value`` 1 after a rising edge, 0
  after a falling one; tag ``edge``), stamped with the kernel's timestamp.
- ``counter``: every ``interval``, an event whose value holds ``count``
  (pulses in the interval), ``pulses`` (since the driver started), ``total``
  (``pulses * per_pulse``, in ``unit``) and ``rate`` (``count * per_pulse`` per
  ``rate_per``). The total starts at 0 when the gateway starts: a restart
  resets it (a rule or the cloud side keeps the meter reading), and pulses
  that arrive while the chip is away are lost.
- ``level``: every ``interval``, the line's level; with ``on_change``, also an
  event at each debounced change.

Debounce: with ``debounce_method: auto`` the kernel debounces where the chip
can (``debounce_period``), and the driver does it otherwise, on the event
timestamps, with the same rule: an edge counts once the level has been stable
for ``debounce``, and carries the time of the last bounce.

One mode drives it:

- ``output``: the line is an output that actions (commands, rules) switch on and
  off, toggle, or pulse for a duration, each guarded by ``interlock`` (minimum on
  and off times, a maximum on time after which the driver switches it off
  itself, a maximum number of switches per hour). With ``report`` (the default)
  each change is an event named ``state``, value 1 (on) or 0 (off), tag ``cause``:
  the action or command that switched it, ``initial``, ``max_on`` or ``stop``.
  A refused switch moves nothing and is counted (``refused``); so are switches.

Each mode takes only its own keys (``per_pulse`` in ``edge`` mode and ``debounce``
in ``output`` mode are unknown keys).

What an output line does when the gateway starts, stops, or crashes:

- *Start*: the line is requested as an output already driven to ``initial``
  (libgpiod v2 sets the value in the request itself: no glitch to the other level).
  Until then it is whatever the board left it: after power-up, usually an input
  (the pull resistor decides); after a restart, see *crash*.
- *Clean stop* (SIGTERM, Ctrl-C, `systemctl stop`): the driver drives ``on_stop``
  (``off``, ``on``, or ``keep``: leave it) and then releases the line.
- *Crash, kill -9, power loss of the process only*: the kernel releases the line
  when the process exits; no tidegate code runs. What a released line does is up
  to the chip's kernel driver, not to libgpiod. Raspberry Pi OS kernels
  (``pinctrl-bcm2835`` on Pi 1-4, ``pinctrl-rp1`` on Pi 5) leave a released output
  as an output at its last level, so a relay that was on *stays on* after a crash
  (unless the ``strict_gpiod`` option the Raspberry Pi kernels added in 2024 is
  set, which returns released GPIOs to inputs). Mainline kernels and many other
  boards (e.g. NVIDIA Jetson on JetPack 6) return a released line to an input or
  its default pin state, and then the pull resistor decides. This was checked
  against the kernel and libgpiod maintainers' notes, not measured on each board:
  try yours (``gpioinfo`` after a ``kill -9``). Where a stuck-on load matters, wire
  it so that the safe state is the one a floating input gives: an external pull
  resistor to the off level (with ``active_low`` if the relay board switches on a
  low input), or a watchdog relay that drops when the gateway stops petting it.

The interlock's memory lives in the process: after a restart, ``min_on`` and
``min_off`` count from the start (the line may just have changed), and the
switches of the last hour start from none but the start's.

```yaml
drivers:
  - name: door-button
    type: gpio
    backend: gpiod          # sim: the same config on a laptop
    chip: gpiochip0         # or a path: /dev/gpiochip4
    line: GPIO17            # a line name, or an offset: 17
    mode: edge
    edge: rising
    bias: pull-up
    active_low: true        # pressed pulls the line to ground
    debounce: 20ms
    sim: {kind: button, presses_per_minute: 6, bounces: 20, bounce_window: 5ms}
    reconnect: {initial_delay: 500ms, max_delay: 30s}   # when the chip goes away
  - name: water-meter
    type: gpio
    backend: sim
    line: 27
    mode: counter
    interval: 10s
    per_pulse: 0.001        # one pulse per litre
    unit: m3
    rate_per: 1h            # rate in m3/h
    sim: {kind: pulses, rate_hz: 10, jitter: 0.02}
  - name: vent
    type: gpio
    backend: sim
    line: GPIO22
    mode: output
    active_low: true        # the relay board switches on a low input
    initial: off            # driven at start
    on_stop: off            # driven on a clean stop (keep: leave it)
    interlock: {min_on: 30s, min_off: 3m, max_on: 2h, max_switches_per_hour: 6}
```
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Tag

from tidegate.actions.interlock import InterlockSection
from tidegate.backoff import ReconnectSection
from tidegate.config.types import Duration, Name, Section
from tidegate.driver import DriverConfig
from tidegate.drivers.kinds import pick_by

BiasName = Literal["as-is", "pull-up", "pull-down", "disabled"]
EdgeDetection = Literal["none", "rising", "falling", "both"]
Edge = Literal["rising", "falling", "both"]


# --- what a simulated line does (the `sim:` key) ----------------------------------------


class ButtonSim(Section):
    """Bouncy button presses at random times."""

    kind: Literal["button"] = Field(default="button", description="A push button.")
    presses_per_minute: float = Field(default=6.0, gt=0, description="Average press rate.")
    bounces: int = Field(
        default=20, ge=0, description="Break/re-make pairs on each press and release."
    )
    bounce_window: Duration = Field(
        default=0.005, gt=0, description="Time within which the contact settles."
    )
    hold: Duration = Field(default=0.2, gt=0, description="How long each press lasts.")
    seed: int | None = Field(default=None, description="Random seed; unset: random.")


class PulsesSim(Section):
    """A steady pulse train: flow meter, S0 energy meter, anemometer."""

    kind: Literal["pulses"] = Field(default="pulses", description="A pulse source.")
    rate_hz: float = Field(default=10.0, gt=0, description="Pulses per second.")
    jitter: float = Field(
        default=0.0, ge=0, lt=0.5, description="Each edge lands up to this many periods late."
    )
    seed: int | None = Field(default=None, description="Random seed; unset: random.")


class LevelsSim(Section):
    """A slow on/off signal at random times: door contact, float switch."""

    kind: Literal["levels"] = Field(default="levels", description="A slowly toggling level.")
    changes_per_minute: float = Field(default=2.0, gt=0, description="Average change rate.")
    seed: int | None = Field(default=None, description="Random seed; unset: random.")


SimGenerator = Annotated[ButtonSim | PulsesSim | LevelsSim, Field(discriminator="kind")]

_SIM = (
    "`sim` backend: what the simulated line does (`kind: button`, `pulses` or `levels`); "
    "default: {}. Ignored by `gpiod`."
)


# --- the driver, one model per mode ------------------------------------------------------


class _GpioWire(DriverConfig, runtime="tidegate.drivers.gpio.driver:GpioDriver"):
    """What every mode has, input or output: which line, how it is wired, reconnect."""

    type: Literal["gpio"] = Field(default="gpio", description="Driver kind: `gpio`.")
    backend: Literal["gpiod", "sim"] = Field(
        default="gpiod",
        description="`gpiod`: real hardware through libgpiod v2 (`tidegate[gpio]`); "
        "`sim`: a simulated chip playing the `sim` generator.",
    )
    chip: str = Field(
        default="gpiochip0",
        min_length=1,
        description="GPIO chip, by name (`gpiochip0`, looked up in /dev) or path "
        "(`/dev/gpiochip4`).",
    )
    line: Annotated[int, Field(ge=0)] | str = Field(
        description="The line: an offset on the chip (`17`) or a line name (`GPIO17`)."
    )
    active_low: bool = Field(
        default=False,
        description="The line is active when low (a switch to ground with a pull-up): "
        "levels and edges are inverted.",
    )
    reconnect: ReconnectSection = Field(
        default_factory=ReconnectSection,
        description="Waits between attempts to reopen a chip that is missing or went away.",
    )


class _GpioLine(_GpioWire):
    """What every input mode has besides: bias and debounce."""

    bias: BiasName = Field(
        default="as-is",
        description="Internal bias resistor: `pull-up`, `pull-down`, `disabled`, or `as-is` "
        "(leave the chip's setting).",
    )
    debounce: Duration = Field(
        default=0.0,
        ge=0,
        description="An edge counts once the level has been stable this long (e.g. `20ms`); "
        "0 turns debouncing off.",
    )
    debounce_method: Literal["auto", "kernel", "software"] = Field(
        default="auto",
        description="`auto`: the kernel's debouncer where the chip has one, else software; "
        "`kernel`: require the kernel's; `software`: always debounce in tidegate.",
    )


class GpioEdgeConfig(_GpioLine):
    """An event per (debounced) edge."""

    mode: Literal["edge"] = Field(default="edge", description="An event per edge.")
    edge: Edge = Field(
        default="both",
        description="The edges reported. Rising means inactive to active, so it follows "
        "`active_low`.",
    )
    event: Name = Field(default="edge", description="Event name.")
    sim: SimGenerator = Field(default_factory=ButtonSim, description=_SIM.format("a button"))

    def counted_edges(self) -> EdgeDetection:
        """The edges this mode reacts to."""
        return self.edge


class GpioCounterConfig(_GpioLine):
    """Pulses counted, reported every interval with their total and rate."""

    mode: Literal["counter"] = Field(description="Pulse count, total and rate every `interval`.")
    edge: Edge = Field(
        default="rising",
        description="The edge counted as a pulse. Rising means inactive to active, so it "
        "follows `active_low`.",
    )
    interval: Duration = Field(default=10.0, gt=0, description="How often to report.")
    per_pulse: float = Field(
        default=1.0,
        gt=0,
        description="What one pulse is worth in `unit` "
        "(e.g. 0.001 m3 per pulse, 0.001 kWh for 1000 imp/kWh).",
    )
    unit: str | None = Field(
        default=None, description="Unit of `total`; `rate` is in `unit` per `rate_per`."
    )
    rate_per: Duration = Field(
        default=1.0,
        gt=0,
        description="The time base of `rate` (`1s`: per second, `1h`: per hour, so kWh "
        "pulses give kW).",
    )
    event: Name = Field(default="count", description="Event name.")
    sim: SimGenerator = Field(default_factory=PulsesSim, description=_SIM.format("pulses"))

    def counted_edges(self) -> EdgeDetection:
        """The edges this mode reacts to."""
        return self.edge


class GpioLevelConfig(_GpioLine):
    """The line's level every interval, and optionally at each change."""

    mode: Literal["level"] = Field(description="The level every `interval`.")
    interval: Duration = Field(default=10.0, gt=0, description="How often to report.")
    on_change: bool = Field(
        default=False,
        description="Also report each (debounced) change as it happens (both edges).",
    )
    event: Name = Field(default="level", description="Event name.")
    sim: SimGenerator = Field(default_factory=LevelsSim, description=_SIM.format("levels"))

    def counted_edges(self) -> EdgeDetection:
        """The edges this mode reacts to."""
        return "both" if self.on_change else "none"


def _on_off(value: Any) -> Any:
    """YAML 1.1 reads a bare ``on``/``off`` as a boolean: take it back as the word."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


OnOff = Annotated[Literal["off", "on"], BeforeValidator(_on_off)]
OnOffKeep = Annotated[Literal["off", "on", "keep"], BeforeValidator(_on_off)]


class GpioOutputConfig(_GpioWire, runtime="tidegate.drivers.gpio.output:GpioOutputDriver"):
    """An output line the actions switch: a relay, a valve, a vent motor, a lamp."""

    mode: Literal["output"] = Field(
        description="An output driven by actions and commands, guarded by `interlock`."
    )
    active_low: bool = Field(
        default=False,
        description="On drives the line low (a relay board that switches on a low input).",
    )
    initial: OnOff = Field(
        default="off", description="The state the line is driven to when the gateway starts."
    )
    on_stop: OnOffKeep = Field(
        default="off",
        description="The state driven when the gateway stops cleanly; `keep` leaves the "
        "line as it is (what it does once released is up to the board: see above).",
    )
    interlock: InterlockSection = Field(
        default_factory=InterlockSection,
        description="Minimum on and off times, maximum on time, maximum switches per hour.",
    )
    report: bool = Field(
        default=True,
        description="An event at each change: value 1 or 0, tag `cause` (who switched it).",
    )
    event: Name = Field(default="state", description="Event name.")


GpioInputConfig = GpioEdgeConfig | GpioCounterConfig | GpioLevelConfig
"""The modes that watch a line."""

GpioConfig = Annotated[
    Annotated[GpioEdgeConfig, Tag("mode: edge")]
    | Annotated[GpioCounterConfig, Tag("mode: counter")]
    | Annotated[GpioLevelConfig, Tag("mode: level")]
    | Annotated[GpioOutputConfig, Tag("mode: output")],
    pick_by("mode", ["edge", "counter", "level", "output"], default="edge"),
]
"""One GPIO line watched as edges, a pulse counter or a sampled level, or driven as an
output; ``mode`` picks."""
