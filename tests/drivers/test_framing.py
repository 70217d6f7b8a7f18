"""Framers and checksums on known inputs, and fuzzed with random and damaged streams."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.support import FRAMING, feed_in_pieces, framer_for
from tidegate.drivers.framing import lines as _framing
from tidegate.drivers.framing.checksums import (
    CHECKSUMS,
    crc8,
    crc16_ccitt,
    crc16_modbus,
    lrc8,
    sum8,
    sum16,
    xor8,
)
from tidegate.drivers.framing.lines import BinaryFraming, Framer, encode_frame, nmea_sentence

# --- real-world frames ------------------------------------------------------------------

PMS5003 = {
    "type": "binary",
    "start": "42 4d",
    "length": {"offset": 2, "size": 2, "byte_order": "big", "adjust": 4},
    "checksum": {"type": "sum16"},
    "max_length": 64,
}


def pms5003_frame(pm2_5: int = 12) -> bytes:
    """A PMS5003 frame laid out by hand from the datasheet: 0x42 0x4d, length 28
    (13 data words + checksum), 13 big-endian u16 fields, 16-bit sum of bytes 0..29."""
    words = [5, 8, 10, 5, pm2_5, 10, 810, 225, 47, 6, 2, 0, 0x9700]
    body = b"\x42\x4d" + (28).to_bytes(2, "big") + b"".join(w.to_bytes(2, "big") for w in words)
    assert len(body) == 30
    return body + (sum(body) & 0xFFFF).to_bytes(2, "big")


MODBUS_RESPONSE = {
    # A slave-1 "read holding registers" response: address, function, byte count, data, CRC.
    "type": "binary",
    "start": "01 03",
    "length": {"offset": 2, "size": 1, "adjust": 5},
    "checksum": {"type": "crc16-modbus"},
    "max_length": 64,
}


def modbus_response(registers: list[int]) -> bytes:
    body = bytes([1, 3, 2 * len(registers)]) + b"".join(r.to_bytes(2, "big") for r in registers)
    return body + crc16_modbus(body).to_bytes(2, "little")


# --- checksums --------------------------------------------------------------------------


def test_checksums_match_published_check_values() -> None:
    assert crc8(b"123456789") == 0xF4
    assert crc16_modbus(b"123456789") == 0x4B37
    assert crc16_ccitt(b"123456789") == 0x29B1
    # The classic Modbus RTU requests, as found in every Modbus manual.
    request = bytes.fromhex("01 03 00 00 00 0A")
    assert CHECKSUMS["crc16-modbus"].encode(crc16_modbus(request)) == bytes.fromhex("C5 CD")
    request = bytes.fromhex("01 03 00 00 00 01")
    assert CHECKSUMS["crc16-modbus"].encode(crc16_modbus(request)) == bytes.fromhex("84 0A")
    assert sum8(b"\xff\x02") == 0x01
    assert sum16(b"\xff" * 300) == (255 * 300) & 0xFFFF
    assert xor8(b"\x0f\xf0\x01") == 0xFE
    assert (sum(b"\x01\x03\x04") + lrc8(b"\x01\x03\x04")) & 0xFF == 0
    gga = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert nmea_sentence(gga) == gga + b"*47"


# --- line and delimiter -------------------------------------------------------------------


def test_line_framer_splits_across_chunks_and_strips_cr() -> None:
    framer, rejects = framer_for({"type": "line"})
    assert framer.feed(b"T=21.5,H=4") == []
    assert framer.feed(b"0\r\nT=22\n\nT=2") == [b"T=21.5,H=40", b"T=22"]
    assert framer.pending() == 3
    assert framer.feed(b"3\n") == [b"T=23"]
    assert rejects == []


def test_line_framer_with_a_two_byte_terminator_split_between_chunks() -> None:
    framer, _ = framer_for({"type": "line", "terminator": "\r\n", "strip_cr": False})
    assert framer.feed(b"one\r") == []
    assert framer.feed(b"\ntwo\r\nthree") == [b"one", b"two"]


def test_over_long_line_is_rejected_and_the_next_line_survives() -> None:
    framer, rejects = framer_for({"type": "line", "max_length": 8})
    frames = framer.feed(b"ok\n" + b"x" * 20)
    assert frames == [b"ok"]
    assert framer.pending() <= 9  # bounded while the rest of the long line streams in
    frames = feed_in_pieces(framer, b"y" * 1000 + b"\nnext\n", 7)
    assert frames == [b"next"]
    assert rejects.reasons() == ["frame longer than 8 bytes"]
    assert len(rejects[0][0]) == 8


def test_over_long_line_with_multibyte_terminator_straddling_chunks() -> None:
    framer, rejects = framer_for({"type": "line", "terminator": "\r\n", "max_length": 4})
    assert framer.feed(b"abcdefgh\r") == []
    assert framer.feed(b"\nfine\r\n") == [b"fine"]
    assert len(rejects) == 1


def test_complete_over_long_line_inside_one_chunk() -> None:
    framer, rejects = framer_for({"type": "line", "max_length": 4})
    assert framer.feed(b"12345\nabc\n") == [b"abc"]
    assert rejects.reasons() == ["frame longer than 4 bytes"]


def test_nmea_checksum_is_verified_and_stripped() -> None:
    framer, rejects = framer_for({"type": "line", "nmea_checksum": True})
    good = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
    bad = good.replace(b"545.4", b"545.5")
    frames = framer.feed(bad + b"no checksum here\r\n" + good)
    assert frames == [good[:-5]]
    assert rejects.reasons()[0] == "NMEA checksum mismatch (line carries 47, computed 46)"
    assert rejects.reasons()[1].startswith("no NMEA checksum")


def test_delimiter_framer() -> None:
    framer, _ = framer_for({"type": "delimiter", "delimiter": "\x03"})
    assert framer.feed(b"\x0221.5\x03\x0222.0") == [b"\x0221.5"]
    assert framer.feed(b"\x03") == [b"\x0222.0"]


def test_delimiter_must_be_one_byte() -> None:
    with pytest.raises(ValidationError):
        FRAMING.validate_python({"type": "delimiter", "delimiter": ";;"})


# --- fixed --------------------------------------------------------------------------------


def test_fixed_framer_cuts_back_to_back_frames() -> None:
    framer, _ = framer_for({"type": "fixed", "length": 4})
    assert framer.feed(b"abcdefg") == [b"abcd"]
    assert framer.feed(b"hijklmnop") == [b"efgh", b"ijkl", b"mnop"]
    assert framer.pending() == 0
    assert framer.feed(b"xy") == []
    assert framer.flush() == b"xy"


# --- binary -------------------------------------------------------------------------------


def test_pms5003_frame() -> None:
    framer, rejects = framer_for(PMS5003)
    frame = pms5003_frame()
    assert feed_in_pieces(framer, frame * 3, 5) == [frame] * 3
    assert rejects == []


def test_modbus_rtu_response_with_crc16() -> None:
    framer, rejects = framer_for(MODBUS_RESPONSE)
    frame = modbus_response([0x00D2, 0x015E])
    assert frame[-2:] == crc16_modbus(frame[:-2]).to_bytes(2, "little")
    assert framer.feed(frame) == [frame]
    damaged = frame[:4] + bytes([frame[4] ^ 1]) + frame[5:]
    assert framer.feed(damaged + frame) == [frame]
    assert len(rejects) == 1 and rejects.reasons()[0].startswith("checksum mismatch (crc16-modbus")


def test_garbage_before_a_frame_is_one_reject() -> None:
    framer, rejects = framer_for(PMS5003)
    frame = pms5003_frame()
    assert framer.feed(b"\x00\x11\x42\x22" + frame) == [frame]
    assert rejects == [(b"\x00\x11\x42\x22", "4 garbage bytes before the start sequence")]


def test_start_sequence_split_between_chunks() -> None:
    framer, rejects = framer_for(PMS5003)
    frame = pms5003_frame()
    assert framer.feed(b"\x99" + frame[:1]) == []
    assert framer.pending() == 1  # the 0x42 may begin a frame; the 0x99 is gone
    assert framer.feed(frame[1:]) == [frame]
    assert rejects.reasons() == ["1 garbage bytes before the start sequence"]


def test_partial_frame_then_a_good_one_loses_only_the_partial() -> None:
    framer, rejects = framer_for(PMS5003)
    frame = pms5003_frame()
    assert framer.feed(frame[:17] + frame + frame) == [frame, frame]
    assert len(rejects) == 1 and "checksum mismatch" in rejects.reasons()[0]


def test_impossible_length_is_rejected_and_resynchronised() -> None:
    framer, rejects = framer_for(PMS5003)
    frame = pms5003_frame()
    assert framer.feed(b"\x42\x4d\xff\xff" + frame) == [frame]
    assert rejects.reasons() == ["impossible frame length 65539 (allowed 6..64)"]


def test_damaged_length_field_holds_frames_back_until_expire() -> None:
    framer, rejects = framer_for(MODBUS_RESPONSE)
    frame = modbus_response([0x00D2, 0x015E])
    damaged = frame[:2] + b"\x30" + frame[3:]  # claims 0x30 + 5 = 53 bytes
    assert framer.feed(damaged + frame) == []  # 20 bytes: the bogus candidate is incomplete
    assert framer.expire("incomplete frame: no byte for 0.5 s") == [frame]
    assert rejects == [(damaged, "incomplete frame: no byte for 0.5 s")]
    assert framer.pending() == 0


def test_expire_drops_a_partial_line() -> None:
    framer, rejects = framer_for({"type": "line"})
    assert framer.feed(b"T=2") == []
    assert framer.expire("quiet") == []
    assert framer.feed(b"T=3\n") == [b"T=3"]
    assert rejects == [(b"T=2", "quiet")]
    assert framer.expire("quiet") == [] and len(rejects) == 1


def test_fixed_length_binary_frame_with_crc8_in_the_middle() -> None:
    config = {
        "type": "binary",
        "start": "aa",
        "length": 6,
        "checksum": {"type": "crc8", "position": 1, "start": 2, "end": 6},
    }
    framer, rejects = framer_for(config)
    payload = b"\x01\x02\x03\x04"
    frame = b"\xaa" + bytes([crc8(payload)]) + payload
    assert framer.feed(frame) == [frame]
    parsed = FRAMING.validate_python(config)
    assert encode_frame(parsed, payload) != frame  # encode_frame puts the payload after the header
    assert rejects == []


def test_binary_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="shorter than"):
        FRAMING.validate_python({"type": "binary", "start": "42 4d", "length": 3,
                                 "checksum": {"type": "sum16"}})
    with pytest.raises(ValidationError, match="hex"):
        FRAMING.validate_python({"type": "binary", "start": "4g", "length": 8})


@pytest.mark.parametrize(
    "config",
    [
        {"type": "line"},
        {"type": "line", "nmea_checksum": True},
        {"type": "delimiter", "delimiter": ";"},
        {"type": "fixed", "length": 7},
        PMS5003,
        MODBUS_RESPONSE,
        {"type": "binary", "start": "7e", "length": 9, "checksum": {"type": "xor8"}},
    ],
)
def test_encode_frame_round_trips(config: dict[str, Any]) -> None:
    parsed = FRAMING.validate_python(config)
    framer, rejects = framer_for(config)
    payload = b"payload"
    wire = encode_frame(parsed, payload)
    frames = feed_in_pieces(framer, wire * 2, 3)
    assert len(frames) == 2 and frames[0] == frames[1]
    assert payload[:5] in frames[0]
    assert rejects == []


# --- fuzzing ------------------------------------------------------------------------------

FUZZED = [
    ({"type": "line", "max_length": 32}, b"T=21.5,H=40\n", 33),
    ({"type": "line", "terminator": "\r\n", "max_length": 16, "nmea_checksum": True},
     nmea_sentence(b"$WIMDA,1.0,B") + b"\r\n", 17),
    ({"type": "delimiter", "delimiter": "\x03", "max_length": 16}, b"\x0221.5\x03", 16),
    (PMS5003, pms5003_frame(), 63),
    (MODBUS_RESPONSE, modbus_response([1, 2, 3]), 63),
    ({"type": "binary", "start": "7e 7e", "length": 8, "checksum": {"type": "crc16-ccitt"}},
     encode_frame(FRAMING.validate_python(
         {"type": "binary", "start": "7e 7e", "length": 8, "checksum": {"type": "crc16-ccitt"}}),
         b"ab"), 7),
]
FUZZ_IDS = ["line", "nmea", "delimiter", "pms5003", "modbus", "fixed-binary"]


@pytest.mark.parametrize(("config", "good", "bound"), FUZZED, ids=FUZZ_IDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.binary(max_size=200), max_size=12))
def test_random_bytes_never_escape_and_memory_stays_bounded(
    config: dict[str, Any], good: bytes, bound: int, chunks: list[bytes]
) -> None:
    framer, rejects = framer_for(config)
    for chunk in chunks:
        for frame in framer.feed(chunk):
            assert len(frame) <= framer.max_length
        assert framer.pending() <= bound
    for raw, _ in rejects:
        assert len(raw) <= framer.max_length
    # Whatever came before, a frame after a clean boundary is found. A line framer needs
    # the terminator that ends the garbage; a binary framer, enough bytes to complete
    # any candidate a fake start sequence in the garbage began.
    frames = framer.feed(good * recovery_frames(framer, good))
    assert frames[-1] == framer_for(config)[0].feed(good)[0]


def recovery_frames(framer: Framer, good: bytes) -> int:
    """Good frames after damage that guarantee the last one is found: past the longest
    candidate a fake start sequence could begin, plus the frame itself."""
    return framer.max_length // len(good) + 2


@st.composite
def damaged_streams(draw: st.DrawFn, good: bytes) -> bytes:
    stream = bytearray(good * draw(st.integers(1, 6)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(stream)))
        action = draw(st.sampled_from(["insert", "delete", "flip"]))
        if action == "insert":
            stream[at:at] = draw(st.binary(min_size=1, max_size=10))
        elif action == "delete" and at < len(stream):
            del stream[at : at + draw(st.integers(1, 5))]
        elif at < len(stream):
            stream[at] ^= draw(st.integers(1, 255))
    return bytes(stream)


@pytest.mark.parametrize(("config", "good", "bound"), FUZZED[3:], ids=FUZZ_IDS[3:])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_damaged_binary_streams_only_yield_valid_frames(
    config: dict[str, Any], good: bytes, bound: int, data: st.DataObject
) -> None:
    stream = data.draw(damaged_streams(good))
    pieces = data.draw(st.integers(1, 40))
    framer, _ = framer_for(config)
    frames = feed_in_pieces(framer, stream + good * recovery_frames(framer, good), pieces)
    assert framer.pending() <= bound
    verifier, verify_rejects = framer_for(config)
    for frame in frames:
        assert verifier.feed(frame) == [frame]  # every frame passes its own checksum
    assert verify_rejects == []
    assert frames[-1] == good


def test_binary_framing_config_type() -> None:
    assert isinstance(FRAMING.validate_python(PMS5003), BinaryFraming)


def test_docstring_examples_load() -> None:
    assert _framing.__doc__ is not None
    (block,) = re.findall(r"```yaml\n(.*?)```", _framing.__doc__, re.S)
    examples = yaml.safe_load(block)
    assert len(examples) == 8
    for example in examples:
        FRAMING.validate_python(example)
