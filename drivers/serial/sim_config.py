"""What a simulated serial device is: its schema, and typical signals for its fields.

A simulated device speaks any framing x parse combination the ``serial`` driver
understands: it builds frames from the same ``framing:`` and ``parse:`` sections
(a ``template`` fills in a text format such as ``regex`` that cannot be
inverted), with values from per-field signals (sine plus noise), at a rate, with
injected faults. With ``port: sim`` the driver builds it from its own ``sim:``
block (``SimDeviceOptions``) plus its ``framing`` and ``parse``; the device itself
is ``tidegate.drivers.serial.sim``. For example (a standalone device, as the
tests and ``bench/serial_lines.py`` make one):

```yaml
link: /tmp/tidegate/serial/by-id/usb-sim-weather   # optional stable path
rate: 2                                             # frames per second
framing: {type: line}
parse:
  format: kv
  fields:
    T: {name: temperature, unit: "°C"}
    H: {name: humidity, unit: "%"}
signals:
  T: {base: 21, amplitude: 3, period: 10m, noise: 0.05}
  H: {base: 45, amplitude: 10, period: 1h}
faults: {garbage: 0.01, partial: 0.01, corrupt: 0.01, disconnect_every: 5m, disconnect_for: 3s}
```
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from pydantic import Field, model_validator

from tidegate.config.types import Duration, Section
from tidegate.drivers.framing.lines import FramingConfig, LineFraming
from tidegate.drivers.parsing.config import (
    CsvParse,
    FieldSpec,
    ParseConfig,
    RawParse,
    RegexParse,
    StructField,
    StructParse,
    time_keys,
)
from tidegate.drivers.serial.commands import Command


class SignalSpec(Section):
    """A value that drifts like a real measurement: base + sine + noise."""

    base: float = Field(20.0, description="Centre value.")
    amplitude: float = Field(5.0, ge=0, description="Height of the sine swing.")
    period: Duration = Field(60.0, gt=0, description="Length of one sine cycle.")
    noise: float = Field(0.1, ge=0, description="Standard deviation of Gaussian noise.")


class SimFaults(Section):
    """Faults the device injects while ``run()`` writes frames."""

    garbage: float = Field(0.0, ge=0, le=1, description="Chance of garbage bytes before a frame.")
    partial: float = Field(0.0, ge=0, le=1, description="Chance a frame is cut short.")
    corrupt: float = Field(0.0, ge=0, le=1, description="Chance one byte of a frame is damaged.")
    disconnect_every: Duration | None = Field(
        None, gt=0, description="Unplug the device this often (the pty and link vanish)."
    )
    disconnect_for: Duration = Field(2.0, gt=0, description="How long it stays unplugged.")


class SimDeviceOptions(Section):
    """How a simulated serial device behaves; what it speaks is ``framing`` and ``parse``.

    This is the ``sim:`` block of a ``serial`` driver with ``port: sim``, which takes
    the framing and parse from the driver itself.
    """

    link: str | None = Field(
        None, description="Symlink to create to the pty (a stand-in for /dev/serial/by-id/...)."
    )
    rate: float = Field(1.0, gt=0, le=100_000, description="Frames per second `run()` writes.")
    template: str | None = Field(
        None,
        description="Text payload with {key} placeholders (Python format specs allowed), "
        "e.g. '$WIMDA,{pressure:.4f},B'; required for `regex`, optional for text formats.",
    )
    signals: dict[str, SignalSpec] = Field(
        default_factory=dict,
        description="Signal per field key; others get a typical one for their name or unit "
        "(temperature, humidity, pressure, particulates, CO2, voltage) or a default.",
    )
    frame_length: int | None = Field(
        None, ge=1, le=65536, description="Length of struct frames (default: just fits the fields)."
    )
    respond_to: Command | None = Field(
        None, description="Answer each occurrence of this request with one frame, instead of "
        "writing at `rate` (with `port: sim`, default: the driver's `poll.request`)."
    )
    faults: SimFaults = Field(default_factory=SimFaults, description="Injected faults.")
    seed: int | None = Field(None, description="Random seed, for a repeatable run.")


def check_encodable(parse: ParseConfig, template: str | None, *, where: str = "template") -> None:
    """Raise ValueError when a device cannot produce frames for ``parse``."""
    if isinstance(parse, RegexParse) and template is None:
        raise ValueError(f"a regex parser cannot be inverted: give `{where}`")
    if isinstance(parse, StructParse) and template is not None:
        raise ValueError(f"`{where}` is for text formats, not `struct`")
    select = None if isinstance(parse, StructParse | RawParse) else parse.select
    if select is not None and template is not None and not template.startswith(tuple(select)):
        # Else every simulated frame would be skipped: a demo that shows nothing.
        raise ValueError(
            f"with `select:` the simulated frames must begin with a selected prefix: "
            f"start `{where}` with {select[0]!r}"
        )


class SerialSimConfig(SimDeviceOptions):
    """A simulated serial sensor for ``tidegate simulate``, ``port: sim`` and the tests."""

    framing: FramingConfig = Field(
        default_factory=LineFraming, description="Same schema as the serial driver's."
    )
    parse: ParseConfig = Field(description="Same schema as the serial driver's: what to encode.")

    @model_validator(mode="after")
    def _encodable(self) -> SerialSimConfig:
        check_encodable(self.parse, self.template)
        return self


_TYPICAL: tuple[tuple[re.Pattern[str], frozenset[str], SignalSpec], ...] = (
    # (a field key or name that says what it is, units that do, a plausible indoor reading)
    (re.compile(r"temp"), frozenset({"°c", "degc", "c"}),
     SignalSpec(base=21.0, amplitude=3.0, period=600.0, noise=0.05)),
    (re.compile(r"hum|^rh$"), frozenset({"%rh"}),
     SignalSpec(base=45.0, amplitude=10.0, period=3600.0, noise=0.2)),
    (re.compile(r"press|baro"), frozenset({"hpa", "mbar"}),
     SignalSpec(base=1013.0, amplitude=4.0, period=3600.0, noise=0.1)),
    (re.compile(r"^pm\d"), frozenset({"µg/m³", "ug/m3"}),
     SignalSpec(base=12.0, amplitude=6.0, period=900.0, noise=1.0)),
    (re.compile(r"co2"), frozenset({"ppm"}),
     SignalSpec(base=600.0, amplitude=150.0, period=1800.0, noise=5.0)),
    (re.compile(r"volt|^v(bat|cc|in)?$"), frozenset({"v"}),
     SignalSpec(base=12.6, amplitude=0.3, period=3600.0, noise=0.02)),
)


def typical_signal(key: str, name: str | None, unit: str | None) -> SignalSpec | None:
    """A realistic signal for a field called ``key``/``name`` in ``unit``, if one fits."""
    words = [key.lower(), (name or "").lower()]
    for pattern, _, signal in _TYPICAL:
        if any(pattern.search(word) for word in words if word):
            return signal
    for _, units, signal in _TYPICAL:
        if unit is not None and unit.lower() in units:
            return signal
    return None


def typical_signals(config: SerialSimConfig) -> dict[str, SignalSpec]:
    """Typical signals for the fields of ``config`` that have one (see ``typical_signal``)."""
    parse = config.parse
    specs: Mapping[str, FieldSpec | StructField] = (
        parse.fields if not isinstance(parse, RawParse) else {}
    )
    found: dict[str, SignalSpec] = {}
    for key in field_keys(config):
        spec = specs.get(key)
        signal = typical_signal(key, spec.name if spec else None, spec.unit if spec else None)
        if signal is not None:
            found[key] = signal
    return found


def field_keys(config: SerialSimConfig) -> list[str]:
    """The keys of the values a frame of ``config`` carries."""
    parse = config.parse
    if config.template is not None:
        return [name for _, name, _, _ in string.Formatter().parse(config.template) if name]
    if isinstance(parse, CsvParse):
        return [column for column in parse.columns if column not in ("", "_")]
    if isinstance(parse, StructParse):
        return list(parse.fields)
    if isinstance(parse, RawParse):
        return ["value"]
    keys = list(parse.fields) or list(config.signals) or ["value"]
    keys += [key for key in sorted(time_keys(parse.time_field)) if key not in keys]
    return keys
