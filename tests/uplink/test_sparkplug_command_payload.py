"""The hand-written reader of a command's metrics (NCMD, DCMD) against payloads that
Eclipse Tahu's ``sparkplug_b`` (Google's protobuf runtime) writes: every scalar
datatype a host may write, negative integers in both of Tahu's encodings, nulls,
aliases, and what is not a payload at all."""

from __future__ import annotations

from typing import Any

import pytest
from tahutils.tahu import sparkplug_b as tahu

from tidegate.uplink.formats import sparkplug_payload as pb

T: Any = tahu.MetricDataType


def written(
    datatype: int, value: object, name: str | None = "m", alias: int | None = None
) -> bytes:
    payload = tahu.Payload()
    tahu.addMetric(payload, name, alias, datatype, value)
    return bytes(payload.SerializeToString())


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        (T.Boolean, True),
        (T.Boolean, False),
        (T.Int8, -128),
        (T.Int8, 127),
        (T.Int16, -2),
        (T.Int32, -(1 << 31)),
        (T.Int32, 123456),
        (T.Int64, -1),
        (T.Int64, (1 << 63) - 1),
        (T.UInt8, 255),
        (T.UInt32, (1 << 32) - 1),
        (T.UInt64, (1 << 64) - 1),
        (T.Float, 0.5),
        (T.Double, 22.5),
        (T.Double, -1e-300),
        (T.String, "open"),
        (T.Text, "ünïcode"),
        (T.DateTime, 1764162300125),
    ],
)
def test_each_scalar_reads_back_as_tahu_wrote_it(datatype: int, value: object) -> None:
    (heard,) = pb.read_metrics(written(datatype, value))
    assert (heard.name, heard.datatype, heard.value) == ("m", datatype, value)
    assert type(heard.value) is type(value)
    assert heard.boolean == (value if isinstance(value, bool) else None)


def test_a_negative_small_integer_sign_extended_to_32_bits_reads_back() -> None:
    # Tahu's Java writes an Int8 of -1 as the uint32 0xFFFFFFFF, its Python as 255.
    payload = tahu.Payload()
    metric = payload.metrics.add()
    metric.name, metric.datatype, metric.int_value = "m", T.Int8, (1 << 32) - 1
    (heard,) = pb.read_metrics(payload.SerializeToString())
    assert heard.value == -1


def test_names_aliases_nulls_and_several_metrics() -> None:
    payload = tahu.Payload()
    payload.timestamp, payload.seq = 1764162300125, 7
    tahu.addMetric(payload, None, 42, T.Double, 18.0)
    null = payload.metrics.add()
    null.name, null.datatype, null.is_null = "gone", T.Double, True
    tahu.addMetric(payload, "Node Control/Rebirth", None, T.Boolean, True)
    heard = pb.read_metrics(payload.SerializeToString())
    assert heard == [
        pb.Heard(None, 42, None, T.Double, 18.0),
        pb.Heard("gone", None, None, T.Double, None),
        pb.Heard("Node Control/Rebirth", None, True, T.Boolean, True),
    ]


def test_our_own_births_read_back() -> None:
    born = pb.metric(name="vent", timestamp=1, datatype=pb.BOOLEAN, value=None)
    born += pb.metric(name="t", alias=3, timestamp=1, datatype=pb.DOUBLE, value=21.5, unit="°C")
    assert pb.read_metrics(pb.stamp(born, 2, 0)) == [
        pb.Heard("vent", None, None, pb.BOOLEAN, None),
        pb.Heard("t", 3, None, pb.DOUBLE, 21.5),
    ]


@pytest.mark.parametrize("payload", [b"\x12\x05ab", b"\x80", b"\x0b", b"\x12\x03\x0a\x09x"])
def test_what_is_not_a_payload_is_a_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError):
        pb.read_metrics(payload)
