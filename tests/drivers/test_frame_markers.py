"""Start and end sequences: checked, and used to find the next frame after damage.

- ``binary`` and ``fixed`` framings check an ``end:`` sequence: a frame with a valid
  checksum but a wrong trailer used to be published;
- ``line``/``delimiter`` framings cut a line at a ``start:`` sequence, so garbage
  glued before a record costs the garbage, not the record.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.support import FRAMING, feed_in_pieces, framer_for
from tidegate.drivers.framing.checksums import sum8
from tidegate.drivers.framing.lines import encode_frame, nmea_sentence

# --- binary: end ------------------------------------------------------------------------

SDS011 = {
    # Nova SDS011: AA C0, PM2.5 (u16 LE, 0.1 µg/m³), PM10, 2 id bytes, sum8 of bytes 2..7, AB.
    "type": "binary",
    "start": "aa c0",
    "length": 10,
    "checksum": {"type": "sum8", "start": 2},
    "end": "ab",
}


def sds011(pm2_5: int, pm10: int, tail: int = 0xAB) -> bytes:
    data = pm2_5.to_bytes(2, "little") + pm10.to_bytes(2, "little") + b"\x12\x34"
    return b"\xaa\xc0" + data + bytes([sum8(data), tail])


def test_a_valid_checksum_with_a_wrong_end_byte_is_rejected() -> None:
    framer, rejects = framer_for(SDS011)
    wrong = sds011(123, 456, tail=0xAC)
    good = sds011(124, 457)
    assert framer.feed(wrong + good) == [good]
    assert rejects == [(wrong, "frame ends in ac, not in ab")]


@pytest.mark.parametrize("piece", [1, 3, 10, 64])
def test_end_check_resynchronises_on_the_next_start(piece: int) -> None:
    framer, rejects = framer_for(SDS011)
    first, second, third = sds011(1, 2), sds011(3, 4), sds011(5, 6)
    damaged = second[:9] + b"\x00" + second[9:]  # an extra byte before the trailer
    assert feed_in_pieces(framer, first + damaged + third, piece) == [first, third]
    assert rejects[0][1] == "frame ends in 00, not in ab"
    assert framer.pending() == 0


def test_end_with_a_length_field_and_the_checksum_before_it() -> None:
    config = {"type": "binary", "start": "02", "length": {"offset": 1, "size": 1},
              "checksum": {"type": "xor8", "start": 1}, "end": "03"}
    parsed = FRAMING.validate_python(config)
    wire = encode_frame(parsed, b"hello")
    assert wire[0] == 0x02 and wire[-1] == 0x03 and wire[1] == len(wire)
    framer, rejects = framer_for(config)
    assert framer.feed(wire + wire[:-1] + b"\x04" + wire) == [wire, wire]
    assert [reason for _, reason in rejects] == ["frame ends in 04, not in 03"]


def test_end_is_counted_in_the_minimum_length() -> None:
    with pytest.raises(ValidationError, match=r"end sequence need \(5\)"):
        FRAMING.validate_python({"type": "binary", "start": "aa", "length": 4,
                                 "checksum": {"type": "sum16"}, "end": "0d 0a"})
    with pytest.raises(ValidationError, match="hex"):
        FRAMING.validate_python({**SDS011, "end": "xyz"})


# --- fixed: end -------------------------------------------------------------------------

FIXED = {"type": "fixed", "length": 5, "end": "0d 0a"}


def fixed_frame(data: bytes) -> bytes:
    assert len(data) == 3 and b"\r" not in data
    return data + b"\r\n"


@pytest.mark.parametrize("piece", [1, 2, 4, 7, 100])
def test_fixed_end_finds_its_step_again_after_a_lost_byte(piece: int) -> None:
    framer, rejects = framer_for(FIXED)
    frames = [fixed_frame(bytes([65 + i, 66 + i, 67 + i])) for i in range(5)]
    stream = frames[0] + frames[1][1:] + frames[2] + frames[3] + frames[4]
    assert feed_in_pieces(framer, stream, piece) == [frames[0], frames[2], frames[3], frames[4]]
    # One lost byte is one reject, however the stream was chunked.
    assert rejects == [
        (frames[1][1:], "frame does not end in 0d 0a: skipped 4 bytes to the next frame end")
    ]


def test_fixed_end_steps_over_inserted_garbage() -> None:
    framer, rejects = framer_for(FIXED)
    one, two = fixed_frame(b"abc"), fixed_frame(b"xyz")
    assert framer.feed(one + b"\x99\x98\x97\x96\x95\x94\x93" + two + one) == [one, two, one]
    assert len(rejects) == 1 and rejects[0][0] == b"\x99\x98\x97\x96\x95"
    assert "skipped 7 bytes" in rejects[0][1]


def test_fixed_end_wrong_trailer_and_expire() -> None:
    framer, rejects = framer_for(FIXED)
    assert framer.feed(b"abc\r\x00" + b"de") == []
    assert framer.pending() == 4  # a frame could still end at the next "\r\n"
    assert framer.expire("quiet") == []
    assert [reason for _, reason in rejects] == [
        "frame does not end in 0d 0a: skipped 3 bytes to the next frame end", "quiet",
    ]
    assert framer.feed(fixed_frame(b"fgh")) == [fixed_frame(b"fgh")]


def test_fixed_frame_over_another_end_sequence_is_rejected() -> None:
    # "a\r\n" (a frame that lost its head) and "yz\r\n" run together into 5 bytes
    # ending in \r\n: the remains of two frames, not a frame.
    framer, rejects = framer_for(FIXED)
    good = fixed_frame(b"xyz")
    assert framer.feed(b"\r\n" + b"yz\r\n" + good) == [good]
    # A port opened between the \r and the \n of an end: the frame cannot begin there.
    framer, rejects = framer_for(FIXED)
    assert framer.feed(b"\nbc\r\n" + good) == [good]
    assert [raw for raw, _ in rejects] == [b"\nbc\r\n"]


@pytest.mark.parametrize("piece", [1, 3, 8, 100])
def test_fixed_frames_in_step_may_begin_with_the_last_byte_of_the_end(piece: int) -> None:
    # A u8 of 10 (or a u16 of 2560..2815) is a first byte 0a: right after a frame that
    # ended in 0d 0a it is data, not the remains of an end. It used to be rejected
    # ("does not end in 0d 0a", which it does).
    framer, rejects = framer_for({"type": "fixed", "length": 8, "end": "0d 0a"})
    frames = [bytes([n, 5, 0, 100, 0, 200]) + b"\r\n" for n in (1, 2, 0x0A, 0x0A, 3)]
    assert feed_in_pieces(framer, b"".join(frames), piece) == frames
    assert rejects == []


def test_a_self_overlapping_end_after_a_frame_is_not_a_straddle() -> None:
    # End "ab ab": the previous frame's end is known, so a frame that begins with ab
    # is data (after the port opened, or after a skip, it could be an end's remains).
    framer, rejects = framer_for({"type": "fixed", "length": 5, "end": "ab ab"})
    one, two = b"\x01\x02\x03\xab\xab", b"\xab\x02\x03\xab\xab"
    assert framer.feed(one + two + two) == [one, two, two]
    assert rejects == []


def test_fixed_frames_with_unknown_bytes_before_them_give_the_right_reason() -> None:
    good = fixed_frame(b"xyz")
    begins = (
        "frame begins with the last bytes of 0d 0a after bytes not known to end a frame "
        "(the rest of an end?): skipped 5 bytes to the next frame end"
    )
    # Right after the port opened (or a flush) the bytes before "\n" are unknown.
    framer, rejects = framer_for(FIXED)
    assert framer.feed(b"\nbc\r\n" + good) == [good]
    assert rejects == [(b"\nbc\r\n", begins)]
    framer.flush()
    assert framer.feed(b"\nbc\r\n" + good) == [good]
    assert rejects[1:] == [(b"\nbc\r\n", begins)]
    # After skipped bytes too: "\n" can be what is left of an end whose "\r" was lost,
    # the frame the rest of one that lost a byte. One reject for the whole skip.
    framer, rejects = framer_for(FIXED)
    assert framer.feed(good + b"\x99" + b"\nbc\r\n" + good) == [good, good]
    assert rejects == [(b"\x99\nbc\r", "frame does not end in 0d 0a: skipped 6 bytes "
                        "to the next frame end")]
    # After skipped bytes ending in "\r", the "\n" is part of an end: not a frame.
    framer, rejects = framer_for(FIXED)
    assert framer.feed(good + b"\x99\r" + b"\nbc\r\n" + good) == [good, good]
    assert rejects == [(b"\x99\r\nbc", "frame does not end in 0d 0a: skipped 7 bytes "
                        "to the next frame end")]
    # A frame holding the end sequence before its own.
    framer, rejects = framer_for(FIXED)
    assert framer.feed(good + b"a\r\n\r\n" + good) == [good, good]
    assert rejects == [(b"a\r\n\r\n", "frame holds 0d 0a before its end (the remains of "
                        "two frames?): skipped 5 bytes to the next frame end")]


def test_fixed_without_end_is_unchanged_and_end_must_fit() -> None:
    framer, _ = framer_for({"type": "fixed", "length": 2})
    assert framer.feed(b"abcde") == [b"ab", b"cd"]
    with pytest.raises(ValidationError, match="shorter than `length`"):
        FRAMING.validate_python({"type": "fixed", "length": 2, "end": "0d 0a"})
    parsed = FRAMING.validate_python(FIXED)
    assert encode_frame(parsed, b"abcdef") == b"abc\r\n"
    assert encode_frame(parsed, b"a") == b"a\x00\x00\r\n"


# --- line: start ------------------------------------------------------------------------

NMEA = {"type": "line", "terminator": "\r\n", "nmea_checksum": True, "start": "$"}
GGA = nmea_sentence(b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
RMC = nmea_sentence(b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W")


def test_garbage_glued_before_a_sentence_costs_only_the_garbage() -> None:
    framer, rejects = framer_for(NMEA)
    assert framer.feed(b"xx#" + GGA + b"\r\n") == [GGA[:-3]]
    assert rejects == [(b"xx#", "3 garbage bytes before the start sequence '$'")]


def test_a_sentence_that_lost_its_line_end_is_rejected_and_the_next_one_kept() -> None:
    framer, rejects = framer_for(NMEA)
    assert framer.feed(GGA[:30] + RMC + b"\r\n" + b"noise only\r\n") == [RMC[:-3]]
    assert rejects == [
        (GGA[:30], "30 garbage bytes before the start sequence '$'"),
        (b"noise only", "no start sequence '$' in the line"),
    ]


def test_start_ends_the_skipping_of_an_over_long_line() -> None:
    framer, rejects = framer_for({**NMEA, "max_length": 100})
    noise = b"\x80" * 250
    frames = feed_in_pieces(framer, noise + GGA + b"\r\n" + RMC + b"\r\n", 40)
    assert frames == [GGA[:-3], RMC[:-3]]
    assert len(rejects) == 1 and len(rejects[0][0]) <= 100
    assert framer.pending() == 0


def test_a_start_inside_a_long_unterminated_tail_keeps_the_record() -> None:
    framer, rejects = framer_for({"type": "line", "start": "#", "max_length": 10})
    assert framer.feed(b"\x80" * 8) == []
    assert framer.feed(b"#T=1") == []  # 12 bytes pending: more than a line, but a record starts
    assert framer.feed(b"\n") == [b"#T=1"]
    assert rejects == [(b"\x80" * 8, "8 garbage bytes before the start sequence '#'")]


def test_delimiter_framing_with_a_start_byte() -> None:
    framer, rejects = framer_for({"type": "delimiter", "delimiter": "\x03", "start": "\x02"})
    assert framer.feed(b"\xff\x0221.5\x03\x0222.0\x03") == [b"\x0221.5", b"\x0222.0"]
    assert rejects == [(b"\xff", "1 garbage bytes before the start sequence '\\x02'")]


def test_encode_frame_puts_the_start_before_a_payload_without_it() -> None:
    parsed = FRAMING.validate_python({"type": "line", "start": "#"})
    assert encode_frame(parsed, b"T=1") == b"#T=1\n"
    assert encode_frame(parsed, b"#T=1") == b"#T=1\n"
