"""The hand-written Sparkplug B protobuf encoder and NCMD reader, against Eclipse Tahu's
``sparkplug_b`` (Google's protobuf runtime and the schema's generated code)."""

from __future__ import annotations

from typing import Any

import pytest
from tahutils.tahu import sparkplug_b as tahu

from tidegate.uplink.formats import sparkplug_payload as pb

Payload: Any = tahu.Payload


def decoded(data: bytes) -> Any:
    return Payload.FromString(data)


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")],
)
def test_varints_are_protobufs(n: int, encoded: bytes) -> None:
    assert pb.varint(n) == encoded
    assert pb.varint((1 << 64) - 1) == b"\xff" * 9 + b"\x01"


@pytest.mark.parametrize(
    ("datatype", "value", "field", "read"),
    [
        (pb.BOOLEAN, True, "boolean_value", True),
        (pb.BOOLEAN, False, "boolean_value", False),
        (pb.INT64, 0, "long_value", 0),
        (pb.INT64, (1 << 63) - 1, "long_value", (1 << 63) - 1),
        (pb.INT64, -1, "long_value", (1 << 64) - 1),  # two's complement in a uint64
        (pb.INT64, -(1 << 63), "long_value", 1 << 63),
        (pb.DOUBLE, 21.4, "double_value", 21.4),
        (pb.DOUBLE, -0.5e-300, "double_value", -0.5e-300),
        (pb.DOUBLE, 3, "double_value", 3.0),
        (pb.STRING, "", "string_value", ""),
        (pb.STRING, "ok °C ✓", "string_value", "ok °C ✓"),
    ],
)
def test_a_metric_reads_back_in_tahu(
    datatype: int, value: object, field: str, read: object
) -> None:
    data = pb.metric(
        name="climate/t",
        alias=300,
        timestamp=1764162300125,
        datatype=datatype,
        value=value,
        historical=True,
    )
    payload = decoded(pb.stamp(data, 1764162300999, 255))
    assert (payload.timestamp, payload.seq, len(payload.metrics)) == (1764162300999, 255, 1)
    [m] = payload.metrics
    assert (m.name, m.alias, m.timestamp, m.datatype) == ("climate/t", 300, 1764162300125, datatype)
    assert m.is_historical and not m.is_null
    assert m.WhichOneof("value") == field
    assert getattr(m, field) == read


def test_data_metrics_carry_no_name_no_datatype_and_nulls_no_value() -> None:
    data = pb.metric(alias=7, timestamp=5, datatype=pb.DOUBLE, value=None, with_datatype=False)
    data += pb.metric(alias=8, timestamp=6, datatype=pb.INT64, value=3, with_datatype=False)
    null, three = decoded(pb.stamp(data, 9, 1)).metrics
    assert not null.HasField("name") and not null.HasField("datatype")
    assert null.alias == 7 and null.is_null and null.WhichOneof("value") is None
    assert not three.HasField("is_historical") and three.long_value == 3


def test_the_unit_is_the_engunit_property() -> None:
    data = pb.metric(name="t", timestamp=1, datatype=pb.DOUBLE, value=1.5, unit="°C")
    [m] = decoded(pb.stamp(data, 1, 0)).metrics
    assert list(m.properties.keys) == ["engUnit"]
    [prop] = m.properties.values
    assert (prop.type, prop.string_value) == (pb.STRING, "°C")


def test_a_payload_without_seq_has_none() -> None:
    payload = decoded(pb.stamp(b"", 42, None))
    assert payload.timestamp == 42 and not payload.HasField("seq") and not payload.metrics


def test_an_ncmd_written_by_tahu_is_read() -> None:
    ncmd = tahu.getNodeDeathPayload()  # any payload: its own bdSeq metric comes first
    tahu.addMetric(ncmd, "Node Control/Rebirth", None, tahu.MetricDataType.Boolean, True)
    tahu.addMetric(ncmd, None, 12, tahu.MetricDataType.Boolean, False)
    tahu.addMetric(ncmd, "Node Control/Next Server", None, tahu.MetricDataType.String, "x")
    heard = pb.read_metrics(ncmd.SerializeToString())
    assert heard[1:] == [
        pb.Heard("Node Control/Rebirth", None, True, pb.BOOLEAN, True),
        pb.Heard(None, 12, False, pb.BOOLEAN, False),
        pb.Heard("Node Control/Next Server", None, None, pb.STRING, "x"),
    ]


@pytest.mark.parametrize(
    "garbage",
    [b"\x12\x05ab", b"\x80", b"\x0b", b"\x12\x02\x0a\x09"],
    ids=["cut", "varint-cut", "group", "inner-cut"],
)
def test_what_is_not_a_payload_is_a_value_error(garbage: bytes) -> None:
    with pytest.raises(ValueError):
        pb.read_metrics(garbage)
