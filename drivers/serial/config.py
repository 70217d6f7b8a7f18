r"""The ``serial`` driver: sensors on a serial port (UART, USB-serial adapter, RS-485).

It opens the port by path (prefer the stable ``/dev/serial/by-id/...`` names; see
``hardware/`` for udev rules), cuts the byte stream into frames (``framing:``),
parses each frame into events (``parse:``), optionally writes commands to
request/response sensors (``poll:``), and reopens the port with exponential backoff
when the device goes away (USB unplug, EIO, path gone). Bad bytes never stop it:
each rejected frame is counted in ``health.errors`` and handed to ``context.reject``
with its reason, and the framer picks up at the next frame.

```yaml
drivers:
  - name: weather                    # a station that answers "READ" with "T=21.5,H=40.2,P=1013.2"
    type: serial
    port: /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0
    baudrate: 9600                   # 8N1 unless bytesize/parity/stopbits say otherwise
    framing: {type: line, max_length: 256}
    parse:
      format: kv
      fields:
        T: {name: temperature, unit: "°C"}
        H: {name: humidity, unit: "%"}
        P: {name: pressure, unit: hPa}
      tags: {site: roof}
    poll:
      on_open: ["MODE KV\r\n"]
      request: "READ\r\n"
      every: 10s
      response_timeout: 1s
    reconnect: {initial_delay: 500ms, max_delay: 30s}

  - name: air                        # Plantower PMS5003 particulate sensor, active mode
    type: serial
    port: /dev/ttyAMA0
    baudrate: 9600
    framing:
      type: binary
      start: "42 4d"
      length: {offset: 2, size: 2, byte_order: big, adjust: 4}
      checksum: {type: sum16}        # big-endian sum of bytes 0..29, in bytes 30..31
      max_length: 64
    parse:
      format: struct
      byte_order: big
      fields:
        pm1_0: {offset: 10, type: u16, unit: "µg/m³"}
        pm2_5: {offset: 12, type: u16, unit: "µg/m³"}
        pm10: {offset: 14, type: u16, unit: "µg/m³"}

  - name: dust                       # Nova SDS011: AA C0, data, sum8, AB at 1 frame/s
    type: serial
    port: /dev/serial/by-id/usb-1a86_USB2.0-Serial-if00-port0
    framing: {type: binary, start: "aa c0", length: 10, checksum: {type: sum8, start: 2}, end: "ab"}
    parse:
      format: struct
      byte_order: little
      fields:                        # 0.1 µg/m³ steps: 123 -> 12.3, not 12.300000000000001
        pm2_5: {offset: 2, type: u16, scale: 0.1, unit: "µg/m³"}
        pm10: {offset: 4, type: u16, scale: 0.1, unit: "µg/m³"}
```

On a laptop, ``port: sim`` replaces the device with a simulated one on a
pseudo-terminal, and the driver reads the pty's slave path through exactly the same
pyserial code as a real port: the one ``port:`` line is the switch. The simulated
device (``tidegate.drivers.serial.sim``) speaks the driver's own ``framing`` and ``parse``, answers
``poll.request``, gives fields it knows by name or unit realistic values
(temperature about 21 °C, humidity about 45 %, pressure about 1013 hPa, PM about
12 µg/m³), and takes the rest from an optional ``sim:`` block, e.g.
``sim: {rate: 5, faults: {garbage: 0.01, disconnect_every: 5m}}`` (``rate``,
``signals``, ``template``, ``faults``, ``seed``, ``link``). With a real port the
``sim:`` block is ignored, so it can stay in the file.

Actions write to the port too (a relay board's ``RELAY 2 ON``, a controller's
setpoint, a Modbus RTU write): a frame template (``tidegate.drivers.serial.templates``:
``"SET {value:.1f}\r\n"`` or ``{hex: "01 06 00 01 {value:04X}", checksum: crc16-modbus}``)
filled in with the action's arguments and written by ``SerialDriver.transact``,
optionally waiting for a reply: the next frame this port's ``framing`` cuts after
the write, which goes to the action and is not parsed into events. Action writes and
``poll`` requests take turns: neither writes inside the other's response window.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tidegate.backoff import ReconnectSection
from tidegate.config.types import Duration, Section
from tidegate.driver import DriverConfig
from tidegate.drivers.framing.lines import FramingConfig, LineFraming
from tidegate.drivers.parsing.config import ParseConfig
from tidegate.drivers.serial.commands import Command
from tidegate.drivers.serial.sim_config import (
    SerialSimConfig,
    SimDeviceOptions,
    check_encodable,
    typical_signals,
)

SIM_PORT = "sim"
"""``port: sim``: read a simulated device on a pseudo-terminal instead of a real port."""


class PollConfig(Section):
    """Commands for sensors that talk only when asked."""

    on_open: list[Command] = Field(
        default_factory=list, description="Written, in order, each time the port is opened."
    )
    request: Command | None = Field(None, description="Written every `every` seconds.")
    every: Duration | None = Field(None, gt=0, description="How often to write `request`.")
    response_timeout: Duration = Field(
        1.0,
        gt=0,
        description="A request not followed by a frame within this time counts as a missed "
        "response (a health error).",
    )

    @model_validator(mode="after")
    def _request_and_period(self) -> PollConfig:
        if (self.request is None) != (self.every is None):
            raise ValueError("`request` and `every` go together")
        if self.every is not None and self.response_timeout > self.every:
            raise ValueError("`response_timeout` must not be longer than `every`")
        return self


class SerialConfig(DriverConfig, runtime="tidegate.drivers.serial.driver:SerialDriver"):
    """A sensor on a serial port."""

    type: Literal["serial"] = Field("serial", description="Driver kind.")
    port: str = Field(
        min_length=1,
        description="Device path: /dev/ttyUSB0, /dev/ttyAMA0, or better a stable "
        "/dev/serial/by-id/... name; `sim` plays the device described by `sim:` on a "
        "pseudo-terminal and reads that like a real port.",
    )
    baudrate: int = Field(9600, gt=0, le=16_000_000, description="Bits per second.")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="Data bits per character.")
    parity: Literal["none", "even", "odd", "mark", "space"] = Field("none", description="Parity.")
    stopbits: float = Field(1, description="Stop bits: 1, 1.5 or 2.")
    flow_control: Literal["none", "rtscts", "xonxoff", "dsrdtr"] = Field(
        "none", description="Hardware (RTS/CTS, DSR/DTR) or software (XON/XOFF) flow control."
    )
    rts: bool | None = Field(
        None, description="Set RTS to this level on open (some sensors draw power from it)."
    )
    dtr: bool | None = Field(
        None, description="Set DTR to this level on open (some boards reset on DTR)."
    )
    exclusive: bool = Field(
        True, description="Lock the port so that no other program reads from it meanwhile."
    )
    framing: FramingConfig = Field(
        default_factory=LineFraming, description="How the byte stream is cut into frames."
    )
    parse: ParseConfig = Field(description="How each frame becomes events.")
    poll: PollConfig | None = Field(None, description="Commands written to the device.")
    reconnect: ReconnectSection = Field(
        default_factory=ReconnectSection, description="Backoff when the device is missing."
    )
    sim: SimDeviceOptions = Field(
        default_factory=SimDeviceOptions,
        description="The simulated device for `port: sim` (rate, signals, faults); it speaks "
        "this port's `framing` and `parse`. Ignored with a real port, so that switching "
        "between laptop and device is the one `port:` line.",
    )

    @model_validator(mode="after")
    def _simulation_possible(self) -> SerialConfig:
        if self.port == SIM_PORT:
            check_encodable(self.parse, self.sim.template, where="sim.template")
        return self

    def simulated_device(self) -> SerialSimConfig:
        """The device ``port: sim`` plays: the ``sim:`` block with this port's framing and
        parse, realistic signals for fields it does not list, and answers to ``poll``."""
        options = dict(self.sim)
        if options["respond_to"] is None and self.poll is not None:
            options["respond_to"] = self.poll.request
        device = SerialSimConfig.model_validate(
            {**options, "framing": self.framing, "parse": self.parse}
        )
        return device.model_copy(update={"signals": {**typical_signals(device), **device.signals}})

    @field_validator("stopbits")
    @classmethod
    def _known_stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stop bits are 1, 1.5 or 2")
        return value
