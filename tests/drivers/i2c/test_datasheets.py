"""Each chip profile's arithmetic against its datasheet's worked examples (pure functions)."""

from __future__ import annotations

import struct

import pytest

from tidegate.drivers.i2c.chips import ads1115, bh1750, bme280, sht3x
from tidegate.drivers.i2c.chips.base import BadReading

# BMP280 datasheet (BST-BMP280-DS001, rev. 1.26), §3.12 "Calculating pressure and
# temperature", the example table: these trimming values and raw readings.
EXAMPLE = bme280.Calibration(
    T1=27504, T2=26435, T3=-1000,
    P1=36477, P2=-10685, P3=3024, P4=2855, P5=140, P6=-7, P7=15500, P8=-14600, P9=6000,
)
ADC_T, ADC_P = 519888, 415148


def test_bmp280_example_temperature() -> None:
    # The same table: t_fine = 128422, T = 2508 (25.08 °C).
    assert bme280.t_fine(ADC_T, EXAMPLE) == 128422
    assert bme280.temperature(128422) == 2508


def test_bmp280_example_pressure() -> None:
    # The same table: p = 100653 Pa (100653.27 from the floating-point code; the table
    # warns that the integer result may deviate slightly). The 64-bit integer code gives
    # 25767233 in Q24.8, i.e. 100653.25 Pa: 0.02 Pa below the floating-point figure.
    p = bme280.pressure(ADC_P, 128422, EXAMPLE)
    assert round(p / 256) == 100653
    assert p / 256 == pytest.approx(100653.27, abs=0.03)
    assert p == 25767233


def test_calibration_registers_unpack_as_table_16() -> None:
    # 0x88..0x9F little-endian: T1 unsigned, T2.. signed (BME280 §5.4.6 Table 16).
    tp = struct.pack("<HhhHhhhhhhhh", 27504, 26435, -1000, 36477, -10685, 3024, 2855, 140,
                     -7, 15500, -14600, 6000)
    # 0xE1..0xE7 worked by hand: H2 = 0x016A (362), H3 = 0, H4 = 0x13 << 4 | 0x9 = 313,
    # H5 = 0x03 << 4 | 0x2 = 50 (0xE5 = 0x29 holds H5's low nibble high, H4's low), H6 = 30.
    h = bytes([0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 0x1E])
    cal = bme280.parse_calibration(tp, 75, h)
    assert (cal.T1, cal.T3, cal.P1, cal.P9) == (27504, -1000, 36477, 6000)
    assert (cal.H1, cal.H2, cal.H3, cal.H4, cal.H5, cal.H6) == (75, 362, 0, 313, 50, 30)


def test_negative_h4_h5_keep_their_sign() -> None:
    # 0xE4 = 0xFF, 0xE5 = 0xF1, 0xE6 = 0xFE: H4 = -16 | 1 = -15, H5 = -32 | 0xF = -17.
    cal = bme280.parse_calibration(bytes(24), 0, bytes([0, 0, 0, 0xFF, 0xF1, 0xFE, 0xF6]))
    assert (cal.H4, cal.H5, cal.H6) == (-15, -17, -10)


HUMIDITY_CAL = bme280.parse_calibration(
    bytes(24), 75, bytes([0x6A, 0x01, 0, 0x13, 0x29, 0x03, 0x1E])
)


def humidity_double(adc_h: int, fine: float, cal: bme280.Calibration) -> float:
    """BME280 §8.1's double-precision humidity, transcribed here on its own: the
    datasheet has no worked humidity example, so the integer code is checked against it."""
    h = fine - 76800.0
    h = (adc_h - (cal.H4 * 64.0 + cal.H5 / 16384.0 * h)) * (
        cal.H2 / 65536.0 * (1.0 + cal.H6 / 67108864.0 * h * (1.0 + cal.H3 / 67108864.0 * h))
    )
    h = h * (1.0 - cal.H1 * h / 524288.0)
    return min(100.0, max(0.0, h))


@pytest.mark.parametrize("adc_h", [20000, 25000, 30000, 35000, 40000, 45000])
@pytest.mark.parametrize("adc_t", [400000, ADC_T, 600000])
def test_integer_humidity_agrees_with_the_double_formula(adc_h: int, adc_t: int) -> None:
    fine = bme280.t_fine(adc_t, EXAMPLE)
    exact = humidity_double(adc_h, fine, HUMIDITY_CAL)
    assert bme280.humidity(adc_h, fine, HUMIDITY_CAL) / 1024 == pytest.approx(exact, abs=0.02)


def test_humidity_is_clamped_to_0_100() -> None:
    fine = bme280.t_fine(ADC_T, EXAMPLE)
    assert bme280.humidity(0, fine, HUMIDITY_CAL) == 0
    assert bme280.humidity(0xFFFF, fine, HUMIDITY_CAL) == 100 * 1024


def test_measurement_time_is_the_datasheet_maximum() -> None:
    # BME280 §9.1: x1 everywhere: 1.25 + 2.3 + 2.875 + 2.875 = 9.3 ms; x16 T only: 38.05 ms.
    assert bme280.measurement_time(1, 1, 1) == pytest.approx(0.0093)
    assert bme280.measurement_time(16, 0, 0) == pytest.approx(0.03805)


def test_sht3x_crc_example() -> None:
    # SHT3x-DIS §4.12, Table 19: CRC of 0xBEEF is 0x92.
    assert sht3x.crc8(b"\xbe\xef") == 0x92


def test_sht3x_conversions() -> None:
    # §4.13: S = 0 → -45 °C / 0 %RH; S = 65535 → 130 °C / 100 %RH.
    assert (sht3x.temperature(0), sht3x.temperature(0xFFFF)) == (-45.0, 130.0)
    assert (sht3x.humidity(0), sht3x.humidity(0xFFFF)) == (0.0, 100.0)
    # 0x6666 = 26214: -45 + 175 * 26214 / 65535 = 24.999...
    assert round(sht3x.temperature(0x6666), 2) == 25.0


def test_sht3x_decode_checks_both_crcs() -> None:
    word_t, word_h = b"\x66\x66", b"\x80\x00"
    good = word_t + bytes([sht3x.crc8(word_t)]) + word_h + bytes([sht3x.crc8(word_h)])
    t, rh = sht3x.decode(good)
    assert (round(t, 2), round(rh, 2)) == (25.0, 50.0)
    for flipped in (2, 5):
        bad = bytearray(good)
        bad[flipped] ^= 0x40
        with pytest.raises(BadReading) as caught:
            sht3x.decode(bytes(bad))
        assert caught.value.counter == "crc_error"
        assert caught.value.raw == bytes(bad)
        assert ("temperature" if flipped == 2 else "humidity") in caught.value.reason


def test_ads1115_full_scale_codes() -> None:
    # ADS111x §9.3.3, Table 3 at FSR ±2.048 V: 0x7FFF → 2.047938 V (+FSR·(2¹⁵-1)/2¹⁵),
    # 0x8000 → -2.048 V, 0x0001 → one step of 62.5 µV.
    assert round(ads1115.volts(b"\x7f\xff", 2.048), ads1115.decimals(2.048)) == 2.047938
    assert ads1115.volts(b"\x80\x00", 2.048) == -2.048
    assert ads1115.volts(b"\x00\x01", 2.048) == pytest.approx(62.5e-6)
    assert ads1115.volts(b"\xff\xff", 0.256) == pytest.approx(-7.8125e-6)


def test_ads1115_config_word() -> None:
    # Table 8: the reset value 0x8583 is OS=1, AIN0-AIN1, ±2.048 V, single-shot, 128 SPS,
    # comparator off: exactly that channel's start word.
    channel = ads1115.Channel("x", "AIN0-AIN1", 2.048)
    assert ads1115.config_word(channel, 128) == 0x8583
    # AIN3 vs GND (MUX 111), ±6.144 V (PGA 000), 860 SPS (DR 111).
    assert ads1115.config_word(ads1115.Channel("y", "AIN3", 6.144), 860) == 0xF1E3


def test_bh1750_example() -> None:
    # BH1750FVI datasheet p. 7: 0x83 0x90 → (2^15 + 2^9 + 2^8 + 2^7 + 2^4) / 1.2 = 28067 lx.
    assert round(bh1750.lux(b"\x83\x90")) == 28067
