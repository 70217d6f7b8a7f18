"""The ``modbus`` driver: meters, inverters, PLCs and sensors that speak Modbus.

One driver instance is one bus: a serial port with one or many slaves on it (Modbus
RTU, e.g. an RS-485 line through a USB adapter, ``port:``), or one Modbus TCP
connection (``host:``; a TCP gateway in front of an RS-485 line has several unit ids).
Each device under ``devices:`` has its slave (unit) id, a name (the events' ``device``
tag) and a register map; the driver merges nearby registers of a device into as few
reads as the protocol allows (125 registers or 2000 bits a read), polls the devices
one after the other on the one bus, and emits one event per value (``source``: the
driver's name; ``name``: ``<device>.<register>``, e.g. ``mains.voltage``, or
``<device>.<bit>`` for a bitfield's named bits; tag ``device``: the device's name).

Addresses are 0-based within their table: a manual's "30001" is ``table: input,
address: 0`` and "40101" is ``table: holding, address: 100`` (a Modicon number is read
literally: ``address: 30001`` is input register 30001). Types: u16, i16, u32, i32,
u64, i64, f32, f64, string, bitfield (named bits become bool events) and bool (coils,
discrete inputs), with ``byte_order``/``word_order`` for devices that swap them, and
``scale``/``offset``/``decimals`` for values sent as scaled integers.

An exception reply (illegal data address, device busy, ...) is counted by name in
``tidegate status`` (``illegal_data_address``, ``device_busy``, ...), logged once and
kept as a dead letter; a read refused for the unmapped registers it reads through is
split into gapless reads. A device that does not answer ``retries`` retries (or that a
TCP gateway reports unreachable, exception 0x0A/0x0B) goes stale: its readings are
missing, so absence rules fire, and it is then asked once a round, its first read
without retries, so that it holds the bus for the others as little as possible; it
comes back when it answers again. An answer that comes after ``timeout`` is counted
as ``late_reply`` (raise ``timeout``; it is not a damaged frame, ``bad_crc``); on RTU
the next request to a slave that left one unanswered waits another ``timeout``, so
that a late answer is dropped rather than taken for the next request's. Every answer is
checked against its request (function, number of registers or bits): one that does
not fit is never decoded, but counted as ``mismatched_reply`` and the read retried. A
group that starts well after it was due as ``late_polls`` (the bus has more to ask
than its intervals allow). A lost port or connection is reopened with
``reconnect:``'s backoff; every device shows stale meanwhile.

``tidegate check`` refuses slave ids a serial bus cannot have (0 is the RTU broadcast
address; 1-247) and, on RTU, a ``timeout`` shorter than the largest planned read's
time on the wire at ``baudrate`` (a 125-register answer takes 1.1 s at 2400 baud),
naming the ``timeout`` or ``max_read`` that would fit. ``local_echo: true`` drops the
echo of each request that some RS-485 circuits send back; a device's
``write_function: 16`` makes ``write`` use function 16 for a single register too.

```yaml
drivers:
  - name: meters
    type: modbus
    port: /dev/serial/by-id/usb-FTDI_USB_RS485_Cable_FT0A1B2C-if00-port0  # laptop: sim
    baudrate: 9600
    parity: none
    timeout: 500ms                   # per request
    retries: 1                       # then the device is stale until it answers again
    interval: 10s                    # default for every device
    devices:
      - name: mains                  # an Eastron SDM120 at slave id 1
        slave: 1
        registers:
          - {name: voltage, table: input, address: 0x00, type: f32, unit: V}
          - {name: current, table: input, address: 0x06, type: f32, unit: A}
          - {name: power, table: input, address: 0x0C, type: f32, unit: W}
          - {name: energy, table: input, address: 0x156, type: f32, unit: kWh, interval: 60s}
      - name: boiler                 # a controller at slave id 7
        slave: 7
        interval: 5s
        registers:
          - {name: temperature, address: 0, type: i16, scale: 0.1, unit: "°C"}
          - {name: setpoint, address: 1, type: u16, scale: 0.1, unit: "°C"}
          - {name: status, address: 2, type: bitfield, bits: {burner: 0, pump: 1, fault: 15}}
          - {name: enabled, table: coil, address: 0}
  - name: inverter
    type: modbus
    host: 192.168.1.50               # Modbus TCP; laptop: sim
    tcp_port: 502
    devices:
      - name: inverter
        slave: 1
        registers:
          - {name: pv_power, address: 5016, type: u32, word_order: little, unit: W}
          - {name: model, address: 4999, type: string, length: 10}
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tidegate.backoff import ReconnectSection
from tidegate.config.located_errors import ProblemList
from tidegate.config.types import Duration, Name, Section
from tidegate.driver import DriverConfig
from tidegate.drivers.modbus.config_checks import distinct_devices, fits_timeout, serial_slave_id
from tidegate.drivers.modbus.plan import MAX_READ_REGISTERS
from tidegate.drivers.modbus.registers import RegisterSpec
from tidegate.drivers.modbus.sim_config import ModbusSimSection

SIM = "sim"
"""``port: sim`` / ``host: sim``: poll a simulated bus instead of a real one."""



class ModbusDevice(Section):
    """One slave on the bus and its register map."""

    name: Name = Field(
        description="The device's name: the `device` tag of its events and the first part "
        "of their names (`mains.voltage`)."
    )
    slave: int = Field(
        ge=0,
        le=255,
        description="Slave (unit) id: 1-247 on a serial bus (0 is the broadcast address, "
        "which no slave answers); on TCP often 1, or the id behind a TCP-to-RTU gateway "
        "(0 and 255 are what some TCP devices answer to; `host: sim` serves 1-247).",
    )
    interval: Duration | None = Field(
        None, gt=0, description="How often to read this device (default: the driver's)."
    )
    max_gap: int = Field(
        4,
        ge=0,
        le=MAX_READ_REGISTERS - 2,
        description="Read through up to this many unmapped registers (or bits) to merge two "
        "reads into one; 0 if the device answers 'illegal data address' to them.",
    )
    max_read: int = Field(
        MAX_READ_REGISTERS,
        ge=1,
        le=MAX_READ_REGISTERS,
        description="Most registers in one read, for devices that allow fewer than the "
        "protocol's 125 (bit reads stay limited to 2000).",
    )
    write_function: Literal["auto", 16] = Field(
        "auto",
        description="How `write` sets holding registers: `auto` sends function 6 for one "
        "register and 16 for several; `16` always sends function 16 (Write Multiple "
        "Registers), for devices that refuse function 6.",
    )
    registers: list[RegisterSpec] = Field(
        min_length=1, description="The values to read, each at its table and address."
    )

    @model_validator(mode="after")
    def _fits_and_distinct(self) -> ModbusDevice:
        problems = ProblemList()
        for index, register in enumerate(self.registers):
            if register.table not in ("coil", "discrete") and register.words > self.max_read:
                problems.add(
                    f"device {self.name!r}: register {register.name!r} spans {register.words} "
                    f"registers, more than one read of `max_read: {self.max_read}`",
                    "registers", index,
                )
        seen: set[str] = set()
        for index, register in enumerate(self.registers):
            for name in sorted({register.name, *register.event_names()}):
                if name in seen:
                    problems.add(
                        f"device {self.name!r}: two registers or bits are named {name!r}",
                        "registers", index,
                    )
                seen.add(name)
        problems.raise_if_any()
        return self

    def register(self, name: str) -> RegisterSpec | None:
        return next((r for r in self.registers if r.name == name), None)


class ModbusConfig(DriverConfig, runtime="tidegate.drivers.modbus.driver:ModbusDriver"):
    """A Modbus bus: RTU on a serial port (`port:`) or TCP (`host:`)."""

    type: Literal["modbus"] = Field("modbus", description="Driver kind.")
    port: str | None = Field(
        None,
        min_length=1,
        description="Modbus RTU: the serial device (better a stable /dev/serial/by-id/... "
        "name); `sim` polls a simulated bus on a pseudo-terminal. Give `port` or `host`.",
    )
    baudrate: int = Field(9600, gt=0, le=16_000_000, description="RTU: bits per second.")
    parity: Literal["none", "even", "odd"] = Field(
        "none", description="RTU: parity (the standard says even; many meters ship with none)."
    )
    bytesize: Literal[8] = Field(
        8, description="RTU: data bits; always 8 (7 data bits is Modbus ASCII, not supported)."
    )
    stopbits: Literal[1, 2] = Field(1, description="RTU: stop bits.")
    local_echo: bool = Field(
        False,
        description="RTU: drop the echo of each request that some RS-485 circuits send back "
        "(a transceiver whose receiver stays on while sending: every read would time out).",
    )
    host: str | None = Field(
        None,
        min_length=1,
        description="Modbus TCP: the device's or gateway's address; `sim` polls a simulated "
        "device on a loopback port. Give `port` or `host`.",
    )
    tcp_port: int = Field(502, ge=1, le=65535, description="Modbus TCP: the TCP port.")
    timeout: Duration = Field(
        1.0,
        gt=0,
        le=60,
        description="How long to wait for each answer, per attempt, from the request to the "
        "answer's last byte: on RTU it must cover both frames' time on the wire (about 4.2 ms "
        "a byte at 2400 baud 8N1, 4.6 ms with parity or two stop bits; a 125-register "
        "answer is 255 bytes), which `tidegate check` "
        "verifies for the largest read. On RTU, after an unanswered attempt the next request "
        "to that slave (a retry too) waits another `timeout`: a late answer that comes "
        "meanwhile is dropped, counted as `late_reply`, never taken for the next request's. "
        "So a silent device costs `(2 x retries + 1) x timeout` of bus time when it goes "
        "stale (on TCP `(retries + 1) x timeout`), then one `timeout` per probe.",
    )
    retries: int = Field(
        1,
        ge=0,
        le=10,
        description="Retries of a request that got no answer, before its device is marked "
        "stale. A stale device is then asked once a round (its first read, no retries), at "
        "its interval doubled after each silent round up to `reconnect.max_delay`, and its "
        "other reads wait until it answers, so it holds the bus for the others as little "
        "as possible.",
    )
    frame_gap: Duration | None = Field(
        None,
        ge=0,
        le=1,
        description="Silence between the end of an answer and the next request on the bus. "
        "Default: 3.5 character times at `baudrate` (at least 1.75 ms), as RTU requires; "
        "0 on TCP. Some slow devices need more (e.g. 50ms).",
    )
    interval: Duration = Field(
        10.0, gt=0, description="How often each device is read (a device's own `interval` wins)."
    )
    devices: list[ModbusDevice] = Field(
        min_length=1, description="The slaves on this bus, polled in turn."
    )
    reconnect: ReconnectSection = Field(
        default_factory=ReconnectSection,
        description="Backoff when the port or the TCP connection is lost.",
    )
    sim: ModbusSimSection | None = Field(
        None,
        description="The simulated bus for `port: sim` / `host: sim`: how each register's "
        "value moves and which faults the devices inject. Ignored with a real port or host, "
        "so that switching between laptop and device is the one line.",
    )

    @field_validator("port", mode="before")
    @classmethod
    def _a_device_path(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(
                "`port` is the RTU serial device (e.g. /dev/ttyUSB0); the Modbus TCP port "
                "is `tcp_port`, with `host`"
            )
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> ModbusConfig:
        problems = ProblemList()
        if self.port is not None and self.host is not None:
            problems.add("give `port` (Modbus RTU) or `host` (Modbus TCP), not both", "host")
        if self.port is None and self.host is None:
            raise ValueError("give `port` (Modbus RTU: a serial device) or `host` (Modbus TCP)")
        distinct_devices(self.devices, problems)
        if self.port is not None or self.host == SIM:
            for index, device in enumerate(self.devices):
                wrong = serial_slave_id(device, rtu=self.port is not None)
                if wrong:
                    problems.add(wrong, "devices", index, "slave")
        if self.port is not None:
            for device in self.devices:
                too_short = fits_timeout(self, device)
                if too_short:
                    problems.add(too_short, "timeout")
        if self.simulated and self.sim is not None:
            # Only a simulated bus reads `sim:`, and its checks import the codec: a real
            # port's config never loads them.
            from tidegate.drivers.modbus.sim_values import sim_problems  # noqa: PLC0415

            problems.found += sim_problems(self.sim, self.devices)
        problems.raise_if_any()
        return self

    @property
    def char_bits(self) -> int:
        """Bits one character takes on the serial line: start, data, parity, stop."""
        return 1 + self.bytesize + (self.parity != "none") + self.stopbits

    @property
    def tcp(self) -> bool:
        return self.host is not None

    @property
    def simulated(self) -> bool:
        return SIM in (self.port, self.host)

    @property
    def gap_seconds(self) -> float:
        """The silence kept between the end of one exchange and the next request."""
        if self.frame_gap is not None:
            return self.frame_gap
        if self.tcp:
            return 0.0
        # 11 bits a character (start, 8 data, parity or second stop, stop); fixed
        # 1.75 ms above 19200 baud, as the Modbus over serial line spec says.
        return max(3.5 * 11 / self.baudrate, 0.00175)

    @property
    def settle_seconds(self) -> float:
        """RTU: how long after an unanswered attempt the next request to that slave
        waits, so that a late answer is not taken for the next one's (an RTU answer
        carries no transaction id). One more ``timeout``, which `fits_timeout` makes
        longer than the largest planned answer on the wire. 0 on TCP, whose
        transaction ids tell answers apart."""
        return 0.0 if self.tcp else self.timeout

    def device(self, name: str) -> ModbusDevice | None:
        return next((d for d in self.devices if d.name == name), None)

    def device_interval(self, device: ModbusDevice) -> float:
        return device.interval if device.interval is not None else self.interval
