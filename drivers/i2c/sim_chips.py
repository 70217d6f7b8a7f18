"""Simulated chips for ``SimulatedBus``: each answers the transactions like the part.

- ``Bme280Sim``: the register map (chip id, the BMP280 datasheet's example
  calibration, ``ctrl_meas``, ``status``, the data registers); a forced-mode write
  starts a conversion that takes the datasheet's typical time, during which
  ``status`` says measuring and the data registers keep the previous result; the
  raw ADC values are found by inverting the compensation, so a driver that
  compensates right reads back the target temperature, pressure and humidity.
- ``Sht3xSim``: the single-shot command, NACKs until the measurement is done,
  six bytes with real CRCs (``bad_crc_next`` / ``crc_error_rate`` corrupt them).
- ``Ads1115Sim``: Config/Conversion registers, MUX/PGA/DR honoured, OS bit while
  converting, input voltages per AIN pin.
- ``Bh1750Sim``: power on, one-time high resolution, two result bytes.
- ``RegisterSim``: 256 registers with an auto-incrementing pointer.

A target (``temperature``, an input voltage, …) is a number or a function of
nothing that returns one, read at each conversion.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from tidegate.drivers.i2c.chips import ads1115, bh1750, bme280, sht3x
from tidegate.drivers.i2c.sim_bus import ChipNack, SimChip

Target = float | Callable[[], float]
Clock = Callable[[], float]

EXAMPLE_CALIBRATION = bme280.Calibration(
    # BMP280 datasheet rev. 1.26, §3.12 (the worked example of the compensation).
    T1=27504, T2=26435, T3=-1000,
    P1=36477, P2=-10685, P3=3024, P4=2855, P5=140, P6=-7, P7=15500, P8=-14600, P9=6000,
    # The BME280 datasheet gives no example for humidity: values read from a real part.
    H1=75, H2=362, H3=0, H4=313, H5=50, H6=30,
)


def _value(target: Target) -> float:
    return target() if callable(target) else target


def _search(f: Callable[[int], float], goal: float, low: int, high: int) -> int:
    """The integer in [low, high] where increasing ``f`` comes closest to ``goal``."""
    while high - low > 1:
        middle = (low + high) // 2
        if f(middle) < goal:
            low = middle
        else:
            high = middle
    return low if abs(f(low) - goal) <= abs(f(high) - goal) else high


class RegisterSim(SimChip):
    """256 byte registers: a write sets the pointer, then writes from it; a read reads
    from it; both auto-increment (most register chips: BME280, TSL2561 with the
    command bit, EEPROMs without paging)."""

    def __init__(self, registers: dict[int, bytes] | None = None, *, nack_rate: float = 0.0,
                 seed: int | None = None) -> None:
        super().__init__(nack_rate=nack_rate, seed=seed)
        self.memory = bytearray(256)
        for at, data in (registers or {}).items():
            self.memory[at : at + len(data)] = data
        self.pointer = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.pointer = data[0]
        for byte in data[1:]:
            self.store(self.pointer, byte)
            self.pointer = (self.pointer + 1) & 0xFF

    def store(self, register: int, value: int) -> None:
        """A register written by the master."""
        self.memory[register] = value

    def read(self, length: int) -> bytes:
        self.before_read()
        start = self.pointer
        data = bytes(self.memory[(start + i) & 0xFF] for i in range(length))
        self.pointer = (start + length) & 0xFF
        return data

    def before_read(self) -> None:
        """Bring the registers up to date (a conversion that finished)."""


class Bme280Sim(RegisterSim):
    """A BME280 (``chip_id=0x60``) or BMP280 (``0x58``) with ``calibration``."""

    def __init__(self, temperature: Target = 21.0, pressure: Target = 1013.25,
                 humidity: Target = 45.0, *, chip_id: int = bme280.BME280_ID,
                 calibration: bme280.Calibration = EXAMPLE_CALIBRATION,
                 clock: Clock = time.monotonic, nack_rate: float = 0.0,
                 seed: int | None = None) -> None:
        """``pressure`` in hPa."""
        super().__init__(nack_rate=nack_rate, seed=seed)
        self.temperature, self.pressure, self.humidity = temperature, pressure, humidity
        self.calibration = cal = calibration
        self.clock = clock
        self.done_at: float | None = None
        self.conversions = 0
        self.slowness = 0.8
        """Conversion time as a fraction of the datasheet's maximum: 0.8 is about the
        typical time; above 1 a part slower than its datasheet."""
        self.nvm_copying = 0
        """Status reads that still show ``im_update`` (a chip just powered on)."""
        self._last: tuple[tuple[float, ...], bytes] | None = None
        self.memory[bme280.CHIP_ID] = chip_id
        self.memory[bme280.CALIB_TP : bme280.CALIB_TP + 24] = struct.pack(
            "<HhhHhhhhhhhh", cal.T1, cal.T2, cal.T3, cal.P1, cal.P2, cal.P3, cal.P4, cal.P5,
            cal.P6, cal.P7, cal.P8, cal.P9)
        if chip_id == bme280.BME280_ID:
            self.memory[bme280.CALIB_H1] = cal.H1
            self.memory[bme280.CALIB_H : bme280.CALIB_H + 7] = struct.pack(
                "<hBbBbb", cal.H2, cal.H3, cal.H4 >> 4, ((cal.H5 & 0xF) << 4) | (cal.H4 & 0xF),
                cal.H5 >> 4, cal.H6)
        self.memory[bme280.DATA : bme280.DATA + 8] = b"\x80\x00\x00\x80\x00\x00\x80\x00"

    def store(self, register: int, value: int) -> None:
        if register == bme280.RESET and value == 0xB6:
            self.memory[bme280.CTRL_HUM : bme280.CTRL_MEAS + 2] = bytes(4)
            return
        super().store(register, value)
        if register == bme280.CTRL_MEAS and value & 0b11 == 0b01:
            self._start()

    def _start(self) -> None:
        codes = {code: n for n, code in bme280.OVERSAMPLING_CODE.items()}
        control = self.memory[bme280.CTRL_MEAS]
        t_os, p_os = codes.get(control >> 5, 16), codes.get((control >> 2) & 0b111, 16)
        h_os = codes.get(self.memory[bme280.CTRL_HUM] & 0b111, 16)
        if self.memory[bme280.CHIP_ID] != bme280.BME280_ID:
            h_os = 0
        # Typical time (§9.1): a little under the maximum the driver waits.
        self.done_at = self.clock() + self.slowness * bme280.measurement_time(t_os, p_os, h_os)
        self.memory[bme280.STATUS] |= bme280.MEASURING
        self._pending = self.raw_values(t_os, p_os, h_os)

    def raw_values(self, t_os: int, p_os: int, h_os: int) -> bytes:
        """The data registers 0xF7-0xFE for the targets, by inverting the compensation
        (the last answer is kept: the same targets need no new search)."""
        targets = (_value(self.temperature), _value(self.pressure), _value(self.humidity),
                   t_os, p_os, h_os)
        if self._last is not None and self._last[0] == targets:
            return self._last[1]
        raw = self._invert(targets)
        self._last = (targets, raw)
        return raw

    def _invert(self, targets: tuple[float, ...]) -> bytes:
        t, p, h, t_os, p_os, h_os = targets
        cal = self.calibration
        adc_t = _search(lambda a: bme280.temperature(bme280.t_fine(a, cal)),
                        round(t * 100), 0, 0xFFFFF) if t_os else bme280.SKIPPED_20BIT
        fine = bme280.t_fine(adc_t, cal)
        adc_p = bme280.SKIPPED_20BIT
        if p_os:  # pressure falls as adc_P rises: search the negated function
            adc_p = _search(lambda a: -bme280.pressure(a, fine, cal), -p * 25600, 0, 0xFFFFF)
        adc_h = 0x8000
        if h_os:
            adc_h = _search(lambda a: bme280.humidity(a, fine, cal), h * 1024, 0, 0xFFFF)
        return (struct.pack(">I", adc_p << 4)[1:] + struct.pack(">I", adc_t << 4)[1:]
                + struct.pack(">H", adc_h))

    def before_read(self) -> None:
        if self.done_at is not None and self.clock() >= self.done_at:
            self.memory[bme280.DATA : bme280.DATA + 8] = self._pending
            self.memory[bme280.STATUS] &= ~bme280.MEASURING & 0xFF
            self.memory[bme280.CTRL_MEAS] &= 0b11111100  # back to sleep mode
            self.done_at = None
            self.conversions += 1
        if self.pointer == bme280.STATUS and self.nvm_copying > 0:
            self.nvm_copying -= 1
            self.memory[bme280.STATUS] |= bme280.IM_UPDATE
        else:
            self.memory[bme280.STATUS] &= ~bme280.IM_UPDATE & 0xFF


class Sht3xSim(SimChip):
    """An SHT3x answering single-shot measurements."""

    def __init__(self, temperature: Target = 21.0, humidity: Target = 45.0, *,
                 clock: Clock = time.monotonic, crc_error_rate: float = 0.0,
                 nack_rate: float = 0.0, seed: int | None = None) -> None:
        super().__init__(nack_rate=nack_rate, seed=seed)
        self.temperature, self.humidity = temperature, humidity
        self.clock = clock
        self.crc_error_rate = crc_error_rate
        self.bad_crc_next = 0
        """Corrupt the CRC of this many results from now."""
        self.done_at: float | None = None
        self.result: bytes | None = None

    @staticmethod
    def encode(t: float, rh: float) -> bytes:
        """The six bytes the chip sends for ``t`` °C and ``rh`` %RH."""
        raw_t = max(0, min(0xFFFF, round((t + 45.0) * 65535.0 / 175.0)))
        raw_h = max(0, min(0xFFFF, round(rh * 65535.0 / 100.0)))
        words = [raw_t.to_bytes(2, "big"), raw_h.to_bytes(2, "big")]
        return b"".join(word + bytes([sht3x.crc8(word)]) for word in words)

    def write(self, data: bytes) -> None:
        if tuple(data[:2]) == sht3x.SINGLE_SHOT_HIGH:
            self.done_at = self.clock() + 0.0125  # typical (Table 4)
            self.result = self.encode(_value(self.temperature), _value(self.humidity))

    def read(self, length: int) -> bytes:
        if self.result is None or self.done_at is None or self.clock() < self.done_at:
            raise ChipNack  # no result yet: the chip does not acknowledge the read (§4.4)
        data, self.result = bytearray(self.result), None
        rate = self.crc_error_rate
        if self.bad_crc_next > 0 or (rate and self.rng.random() < rate):
            self.bad_crc_next = max(0, self.bad_crc_next - 1)
            data[2] ^= 0x01
        return bytes(data)


class Ads1115Sim(RegisterSim):
    """An ADS1115; ``inputs`` are the voltages on AIN0-AIN3."""

    def __init__(self, inputs: tuple[Target, Target, Target, Target] = (1.0, 0.5, 0.25, 0.0),
                 *, clock: Clock = time.monotonic, nack_rate: float = 0.0,
                 seed: int | None = None) -> None:
        super().__init__(nack_rate=nack_rate, seed=seed)
        self.inputs = list(inputs)
        self.clock = clock
        self.done_at: float | None = None
        self.pending = 0
        self.memory[0:8] = bytes.fromhex("0000 8583 8000 7fff".replace(" ", ""))
        self.conversions = 0
        self.slowness = 1.0
        """Conversion time in periods (1/DR): above 1.1 a part slower than its datasheet."""

    def write(self, data: bytes) -> None:
        # A 16-bit register: the pointer byte, then MSB and LSB (§9.5.3).
        self.pointer = data[0] & 0b11
        if len(data) >= 3:
            at = self.pointer * 2
            word = (data[1] << 8) | data[2]
            if self.pointer == ads1115.CONFIG:
                if word & ads1115.START and self.done_at is None:
                    self._start(word)
                word &= 0x7FFF if self.done_at is not None else 0xFFFF
            if self.pointer != ads1115.CONVERSION:  # the conversion register is read-only
                self.memory[at : at + 2] = word.to_bytes(2, "big")

    def _start(self, word: int) -> None:
        mux = (word >> 12) & 0b111
        fsr = {code: v for v, code in ads1115.PGA.items()}.get((word >> 9) & 0b111, 0.256)
        rate = {code: r for r, code in ads1115.DATA_RATE.items()}[(word >> 5) & 0b111]
        pairs = {0: (0, 1), 1: (0, 3), 2: (1, 3), 3: (2, 3)}
        volts = [_value(v) for v in self.inputs]
        v = volts[mux - 4] if mux >= 4 else volts[pairs[mux][0]] - volts[pairs[mux][1]]
        self.pending = max(-32768, min(32767, round(v / fsr * 32768)))
        self.done_at = self.clock() + self.slowness / rate

    def read(self, length: int) -> bytes:
        if self.done_at is not None and self.clock() >= self.done_at:
            self.memory[0:2] = self.pending.to_bytes(2, "big", signed=True)
            self.memory[2] |= 0x80  # OS = 1: idle again
            self.done_at = None
            self.conversions += 1
        at = self.pointer * 2
        return bytes(self.memory[at : at + 2])[:length]


class Bh1750Sim(SimChip):
    """A BH1750 with ``lux`` on its window."""

    def __init__(self, lux: Target = 250.0, *, clock: Clock = time.monotonic,
                 nack_rate: float = 0.0, seed: int | None = None) -> None:
        super().__init__(nack_rate=nack_rate, seed=seed)
        self.lux = lux
        self.clock = clock
        self.powered = False
        self.done_at: float | None = None
        self.pending = 0
        self.result = 0

    def write(self, data: bytes) -> None:
        for command in data:
            if command == bh1750.POWER_ON:
                self.powered = True
            elif command == 0x00:
                self.powered = False
            elif command == bh1750.ONE_TIME_HIGH_RES and self.powered:
                self.pending = max(0, min(0xFFFF, round(_value(self.lux) * 1.2)))
                self.done_at = self.clock() + 0.120  # typical
                self.powered = False  # one-time modes power down after the measurement

    def read(self, length: int) -> bytes:
        if self.done_at is not None and self.clock() >= self.done_at:
            self.result, self.done_at = self.pending, None
        return self.result.to_bytes(2, "big")[:length]
