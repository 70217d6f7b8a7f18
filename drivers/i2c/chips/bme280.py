"""Bosch BME280 (temperature, pressure, humidity) and BMP280 (no humidity).

Datasheets: BME280 rev. 1.23 (BST-BME280-DS002) and BMP280 rev. 1.26
(BST-BMP280-DS001). The chip id register 0xD0 reads 0x60 on a BME280 and 0x58 on
a BMP280 (one profile reads both; a BMP280 has no humidity). The factory
calibration (0x88-0xA1 and 0xE1-0xE7, BME280 §5.4.6 Table 16) is read at setup;
each measurement is a forced-mode conversion (§3.3.3): write ``ctrl_hum``, then
``ctrl_meas`` with mode 01, wait the maximum measurement time (§9.1), and read
the raw values from 0xF7; the status register is checked once more after each
extra wait before the reading is given up (``not_ready``). The compensation is
the datasheet's integer code (BME280 §4.2.3: 32-bit temperature and humidity,
64-bit pressure). On the BMP280 datasheet's worked example (§3.12) it gives the
table's t_fine 128422 and T 25.08 °C exactly. For pressure the table prints
25767236 (1/256 Pa, 100653.27 Pa), but executing the published 64-bit code gives
25767233 = 100653.25 Pa, 0.01 Pa lower (other implementations report the same
3-count gap; the table itself warns that the integer result may deviate
slightly from the floating-point 100653.27). Published, both are 1006.53 hPa;
``tests/drivers/i2c/test_datasheets.py`` pins 25767233.

Setup waits for the chip to have copied its calibration from NVM (``status``
bit 0, ``im_update``, set for about 2 ms after power-on) and refuses a
calibration with ``dig_T1`` or ``dig_P1`` zero (an all-zero read, a chip still
starting): the reading would be garbage, and pressure would divide by zero.
Neither is ever published; the setup is tried again at the next interval.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from tidegate.drivers.i2c.chips.base import BadReading, Bus, Chip, Measurement, Reading, WrongChip

CHIP_ID = 0xD0
RESET = 0xE0
CTRL_HUM = 0xF2
STATUS = 0xF3
CTRL_MEAS = 0xF4
DATA = 0xF7
CALIB_TP = 0x88
CALIB_H1 = 0xA1
CALIB_H = 0xE1

BME280_ID = 0x60
BMP280_ID = 0x58
MEASURING = 0x08
"""``status`` bit 3: a conversion is running."""
IM_UPDATE = 0x01
"""``status`` bit 0: the calibration is being copied from NVM (after power-on, a reset)."""
SKIPPED_20BIT = 0x80000
"""What a 20-bit result register holds when its measurement was skipped (or never ran)."""

OVERSAMPLING_CODE = {0: 0, 1: 1, 2: 2, 4: 3, 8: 4, 16: 5}
"""Oversampling xn → the 3-bit ``osrs_x`` field (0: the measurement is skipped)."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """The trimming parameters (``dig_*``) as the datasheet names them."""

    T1: int
    T2: int
    T3: int
    P1: int
    P2: int
    P3: int
    P4: int
    P5: int
    P6: int
    P7: int
    P8: int
    P9: int
    H1: int = 0
    H2: int = 0
    H3: int = 0
    H4: int = 0
    H5: int = 0
    H6: int = 0


def _signed8(byte: int) -> int:
    return byte - 256 if byte & 0x80 else byte


def parse_calibration(tp: bytes, h1: int | None = None, h: bytes | None = None) -> Calibration:
    """``tp``: the 24 bytes at 0x88-0x9F; ``h1``: 0xA1; ``h``: the 7 bytes at 0xE1-0xE7
    (BME280 only). dig_H4 and dig_H5 share 0xE5: H4 = 0xE4[7:0] << 4 | 0xE5[3:0],
    H5 = 0xE6[7:0] << 4 | 0xE5[7:4], both signed 12-bit (Table 16)."""
    base = Calibration(*struct.unpack("<HhhHhhhhhhhh", tp))
    if h1 is None or h is None:
        return base
    return replace(
        base,
        H1=h1,
        H2=struct.unpack_from("<h", h, 0)[0],
        H3=h[2],
        H4=(_signed8(h[3]) << 4) | (h[4] & 0x0F),
        H5=(_signed8(h[5]) << 4) | (h[4] >> 4),
        H6=_signed8(h[6]),
    )


def t_fine(adc_t: int, cal: Calibration) -> int:
    """The fine temperature the pressure and humidity compensations take (§4.2.3)."""
    var1 = (((adc_t >> 3) - (cal.T1 << 1)) * cal.T2) >> 11
    var2 = (((((adc_t >> 4) - cal.T1) * ((adc_t >> 4) - cal.T1)) >> 12) * cal.T3) >> 14
    return var1 + var2


def temperature(fine: int) -> int:
    """Temperature in 0.01 °C (``BME280_compensate_T_int32``: 2508 is 25.08 °C)."""
    return (fine * 5 + 128) >> 8


def pressure(adc_p: int, fine: int, cal: Calibration) -> int:
    """Pressure in 1/256 Pa (``BME280_compensate_P_int64``, Q24.8: 24674867 is
    96386.2 Pa); 0 where the datasheet guards against a division by zero."""
    var1 = fine - 128000
    var2 = var1 * var1 * cal.P6
    var2 = var2 + ((var1 * cal.P5) << 17)
    var2 = var2 + (cal.P4 << 35)
    var1 = ((var1 * var1 * cal.P3) >> 8) + ((var1 * cal.P2) << 12)
    var1 = (((1 << 47) + var1) * cal.P1) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    numerator = ((p << 31) - var2) * 3125
    # C's division truncates toward zero; Python's // floors.
    p = abs(numerator) // abs(var1) * (1 if (numerator < 0) == (var1 < 0) else -1)
    var1 = (cal.P9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (cal.P8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (cal.P7 << 4)


def humidity(adc_h: int, fine: int, cal: Calibration) -> int:
    """Relative humidity in 1/1024 %RH (``bme280_compensate_H_int32``, Q22.10: 47445
    is 46.333 %RH), clamped to 0-100 % as there."""
    x = fine - 76800
    x = (
        ((((adc_h << 14) - (cal.H4 << 20) - (cal.H5 * x)) + 16384) >> 15)
        * (((((((x * cal.H6) >> 10) * (((x * cal.H3) >> 11) + 32768)) >> 10) + 2097152)
            * cal.H2 + 8192) >> 14)
    )
    x = x - (((((x >> 15) * (x >> 15)) >> 7) * cal.H1) >> 4)
    x = min(max(x, 0), 419430400)
    return x >> 12


def measurement_time(t_os: int, p_os: int, h_os: int) -> float:
    """Maximum seconds of one forced measurement (BME280 §9.1, Appendix B):
    1.25 ms + 2.3 ms per temperature sample + 2.3 ms per pressure and humidity
    sample + 0.575 ms for each of those measured."""
    ms = 1.25 + 2.3 * t_os
    ms += (2.3 * p_os + 0.575) if p_os else 0.0
    ms += (2.3 * h_os + 0.575) if h_os else 0.0
    return ms / 1000.0


def _raw20(data: bytes, at: int) -> int:
    return (data[at] << 12) | (data[at + 1] << 4) | (data[at + 2] >> 4)


class Bme280(Chip):
    """A BME280 or BMP280 in forced mode; oversampling xn per quantity (0: skip)."""

    POLLS = 5
    """Extra waits (a quarter of the maximum time each) for a conversion still running
    at the maximum time, each followed by a status check, before it is given up."""
    SETUP_POLLS = 5
    """Status reads while ``im_update`` is set before the setup gives up for now."""

    def __init__(self, address: int, *, temperature: int = 1, pressure: int = 1,
                 humidity: int = 1) -> None:
        super().__init__(address)
        self.oversampling = (temperature, pressure, humidity)
        self.calibration: Calibration | None = None
        self.humidity = True
        """False on a BMP280, found at setup."""

    def setup(self, bus: Bus) -> None:
        found = bus.read_byte_data(self.address, CHIP_ID)
        if found not in (BME280_ID, BMP280_ID):
            raise WrongChip(
                f"chip id 0x{found:02x} at 0x{self.address:02x} is neither a BME280 (0x60) "
                "nor a BMP280 (0x58): check `chip:` and `address:`"
            )
        self.humidity = found == BME280_ID
        # Each status read is a transaction (~0.3 ms at 100 kHz): the polls span the
        # ~2 ms copy; a chip still copying after them is tried again next interval.
        for _ in range(self.SETUP_POLLS):
            status = bus.read_byte_data(self.address, STATUS)
            if not status & IM_UPDATE:
                break
        else:
            raise BadReading(bytes([status]), "the calibration is still being copied from "
                             "NVM (status im_update)", "not_ready")
        tp = bytes(bus.read_i2c_block_data(self.address, CALIB_TP, 24))
        if self.humidity:
            h1 = bus.read_byte_data(self.address, CALIB_H1)
            h = bytes(bus.read_i2c_block_data(self.address, CALIB_H, 7))
            calibration = parse_calibration(tp, h1, h)
        else:
            calibration = parse_calibration(tp)
        if calibration.T1 == 0 or calibration.P1 == 0:
            raise BadReading(tp, "calibration reads dig_T1 or dig_P1 = 0: no valid "
                             "calibration (a chip starting up, or not a BME280)",
                             "bad_calibration")
        self.calibration = calibration

    def measure(self, bus: Bus) -> Measurement:
        cal = self.calibration
        if cal is None:
            raise RuntimeError("measure() before setup()")
        t_os, p_os, h_os = self.oversampling
        if not self.humidity:
            h_os = 0
        if self.humidity:
            # ctrl_hum takes effect only with the next write of ctrl_meas (§5.4.3).
            bus.write_byte_data(self.address, CTRL_HUM, OVERSAMPLING_CODE[h_os])
        control = (OVERSAMPLING_CODE[t_os] << 5) | (OVERSAMPLING_CODE[p_os] << 2) | 0b01
        bus.write_byte_data(self.address, CTRL_MEAS, control)
        wait = measurement_time(t_os, p_os, h_os)
        yield wait
        for extra in range(self.POLLS + 1):  # a check after the maximum, and after each extra
            status = bus.read_byte_data(self.address, STATUS)
            if not status & MEASURING:
                break
            if extra == self.POLLS:
                raise BadReading(bytes([status]), "the measurement did not finish in time",
                                 "not_ready")
            yield wait / 4
        data = bytes(bus.read_i2c_block_data(self.address, DATA, 8 if self.humidity else 6))
        adc_t = _raw20(data, 3)
        if adc_t == SKIPPED_20BIT:
            raise BadReading(data, "temperature register holds no measurement (0x80000)",
                             "bad_reading")
        fine = t_fine(adc_t, cal)
        readings = [Reading("temperature", temperature(fine) / 100, "°C")]
        adc_p = _raw20(data, 0)
        if p_os and adc_p != SKIPPED_20BIT:
            q24_8 = pressure(adc_p, fine, cal)
            if q24_8 == 0:  # the datasheet's division-by-zero guard: no pressure, not 0 hPa
                raise BadReading(data, "pressure compensation divides by zero (calibration?)",
                                 "bad_reading")
            hpa = round(q24_8 / 25600, 2)  # 1/256 Pa -> hPa, to 1 Pa
            readings.append(Reading("pressure", hpa, "hPa"))
        if h_os:
            adc_h = (data[6] << 8) | data[7]
            readings.append(Reading("humidity", round(humidity(adc_h, fine, cal) / 1024, 2), "%"))
        return readings
