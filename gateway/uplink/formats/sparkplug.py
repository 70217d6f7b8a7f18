"""``sparkplug_b``: Eclipse Sparkplug B 3.0, so SCADA and MES hosts (Ignition, HiveMQ's
and Cirrus Link's modules) see the gateway as an edge node and each source as a device.

Topics are ``spBv1.0/<group>/<TYPE>/<node>[/<device>]``: the group is
``mqtt.sparkplug_group``, the node the gateway's id, the device an event's source
(each with ``+``, ``#`` and ``/`` replaced by ``_``). Payloads are Sparkplug's
protobuf ``Payload`` (``sparkplug_payload``). On every connection:

- the Last Will is an NDEATH with that connection's ``bdSeq`` (0-255, one more for
  each connection attempt);
- NBIRTH says the same ``bdSeq`` and ``Node Control/Rebirth`` (false); seq 0;
- a DBIRTH per device known so far: each metric with its name, alias, datatype,
  unit (``engUnit``) and latest value. A device's first event, or a metric it has
  not had or whose type changed, sends its DBIRTH again before the data.

Events go as DDATA on the device's topic, their metrics by alias only, each with the
event's own time (ms) and, for an event accepted before the connection was made (sent
from the outbox after an outage), ``is_historical``. A batch (``events_per_message``
above 1) is one DDATA per device. Datatypes come from the values: true/false Boolean,
integers Int64, other numbers Double (a metric born Double stays Double when an
integer comes), text String; a structured value is one metric per key,
``<name>/<key>``; a null (NaN) reading is ``is_null``. Every message of the node
but NDEATH carries ``seq``, 0-255 in the order they are sent, NBIRTH 0.

The uplink subscribes to ``spBv1.0/<group>/NCMD/<node>``: a ``Node Control/Rebirth``
metric that is true brings NBIRTH and the DBIRTHs again. With ``commands:``, metrics
written by NCMD or DCMD call the commands they are named after
(``sparkplug_commands``; the NBIRTH declares them). A clean stop sends a DDEATH
per device, then NDEATH, before the gateway's ``offline`` and the DISCONNECT.

Births and deaths go at QoS 0, outside the send window (the next connection sends
them again). DDATA goes at the uplink's QoS, 1 by default: Sparkplug says QoS 0 for
data, but the outbox deletes an event only on the broker's PUBACK, so tidegate keeps
at-least-once delivery, on purpose.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from tidegate.uplink.formats import sparkplug_commands as commands
from tidegate.uplink.formats import sparkplug_payload as pb
from tidegate.uplink.formats.base import Announcement, Format, FormatError
from tidegate.uplink.formats.stored import since_epoch, stored_event

if TYPE_CHECKING:
    from tidegate.commands.native import NativeCommand

REBIRTH = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
NAMESPACE = "spBv1.0"
_TEXTS = ("source", "name", "time")
_UNSAFE = re.compile(r"[+#/]")
_MILLISECOND = timedelta(milliseconds=1)
_INT64 = range(-(1 << 63), 1 << 63)


def sanitised(name: str) -> str:
    """A topic level of ``name``: no MQTT wildcards, no level separator."""
    return _UNSAFE.sub("_", name) or "_"


class _Point(NamedTuple):
    """One metric's reading in an event."""

    name: str
    datatype: int | None
    """None: a null, whose type the value does not tell."""
    value: object


@dataclass(slots=True)
class _Metric:
    """A metric as its device's DBIRTH declares it."""

    alias: int
    datatype: int
    value: object
    time: int
    unit: str | None


class SparkplugB(Format):
    name: ClassVar[str] = "sparkplug_b"
    announces: ClassVar[bool] = True
    supersedes: ClassVar[bool] = True
    retopics: ClassVar[bool] = True
    replays: ClassVar[bool] = True
    sequences: ClassVar[bool] = True
    overhead: ClassVar[int] = 16  # the payload's timestamp (≤ 11 B) and seq (≤ 3 B)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        group, self.node = sanitised(self.context.sparkplug_group), sanitised(self.context.gateway)
        self._prefix = f"{NAMESPACE}/{group}"
        self.nbirth_topic = f"{self._prefix}/NBIRTH/{self.node}"
        self.ndeath_topic = f"{self._prefix}/NDEATH/{self.node}"
        self._bd_seq = 0
        self._next_bd_seq = 0
        self._seq = 0
        self._devices: dict[str, dict[str, _Metric]] = {}
        self._unborn: set[str] = set()
        """Devices whose DBIRTH is due before their data (new, or a metric new or retyped)."""
        self._aliases = 0
        self._last: tuple[bytes, tuple[str, int, list[_Point], str | None]] | None = None
        """The last event read: announce, event and topic each read the same row."""

    # -- connections -----------------------------------------------------------------

    def will(self) -> Announcement | None:
        # A new connection attempt: its own bdSeq (3.0: one more than the last CONNECT's).
        self._bd_seq = self._next_bd_seq
        self._next_bd_seq = (self._bd_seq + 1) % 256
        return self._ndeath()

    def reannounce(self) -> list[Announcement]:
        self._unborn.clear()
        now = _now()
        births = pb.metric(name=BD_SEQ, timestamp=now, datatype=pb.INT64, value=self._bd_seq)
        births += pb.metric(name=REBIRTH, timestamp=now, datatype=pb.BOOLEAN, value=False)
        births += commands.command_metrics(self.context.commands, now)
        out = [Announcement(self.nbirth_topic, births, retain=False)]
        return out + [self._dbirth(device) for device in self._devices]

    def farewell(self) -> list[Announcement]:
        deaths = [
            Announcement(self._topic("DDEATH", device), b"", retain=False)
            for device in self._devices
        ]
        return [*deaths, self._ndeath()]

    def listens(self) -> list[str]:
        return [f"{self._prefix}/NCMD/{self.node}"]

    def heard(self, topic: str, payload: bytes) -> bool:
        try:
            metrics = pb.read_metrics(payload)
        except ValueError:
            return False  # not a Sparkplug payload: nothing asked of us
        return any(m.name == REBIRTH and m.boolean for m in metrics)

    def command_filters(self) -> list[str]:
        if not self.context.commands:
            return []
        return [f"{self._prefix}/NCMD/{self.node}", f"{self._prefix}/DCMD/{self.node}/+"]

    def command_of(self, topic: str, payload: bytes) -> NativeCommand | None:
        return commands.command_of(payload, self.context.commands)

    def sequence(self, topic: str, payload: bytes) -> bytes:
        if topic == self.ndeath_topic:
            return payload  # complete as written, and an NDEATH carries no seq
        self._seq = 0 if topic == self.nbirth_topic else (self._seq + 1) % 256
        return pb.stamp(payload, _now(), self._seq)

    # -- events ------------------------------------------------------------------------

    def announce(self, stored: bytes, topic: str) -> list[Announcement]:
        device = self._learn(stored)
        if device in self._unborn:
            self._unborn.discard(device)
            return [self._dbirth(device)]
        return []

    def topic(self, routed: str, stored: bytes) -> str:
        return self._topic("DDATA", self._read(stored)[0])

    def event(self, stored: bytes) -> bytes:
        return self._data(stored, historical=False)

    def replayed(self, stored: bytes) -> bytes:
        return self._data(stored, historical=True)

    def join(self, events: Sequence[bytes]) -> bytes:
        # Each event is a run of encoded metrics (repeated field 2): one payload of all.
        return b"".join(events)

    def _data(self, stored: bytes, *, historical: bool) -> bytes:
        device = self._learn(stored)
        _, ms, points, _ = self._read(stored)
        known = self._devices[device]
        return b"".join(
            pb.metric(
                alias=known[p.name].alias,
                timestamp=ms,
                datatype=known[p.name].datatype,
                value=_as(known[p.name].datatype, p.value),
                with_datatype=False,
                historical=historical,
            )
            for p in points
        )

    def _read(self, stored: bytes) -> tuple[str, int, list[_Point], str | None]:
        """The event's device, time (ms), metrics and unit; FormatError if it has none."""
        last = self._last
        if last is not None and last[0] is stored:
            return last[1]
        doc = stored_event(stored, _TEXTS)
        value, name = doc.get("value"), doc["name"]
        if isinstance(value, dict):
            if not value:
                raise FormatError("the event has no value to send")
            points = [_point(f"{name}/{key}", v) for key, v in value.items()]
        else:
            points = [_point(name, value)]
        unit = doc.get("unit")
        read = (
            sanitised(doc["source"]),
            since_epoch(doc["time"]) // _MILLISECOND,
            points,
            unit if isinstance(unit, str) and unit else None,
        )
        self._last = (stored, read)
        return read

    def _learn(self, stored: bytes) -> str:
        """Take the event's metrics into its device's; mark the device unborn if its
        DBIRTH no longer says them all as they are."""
        device, ms, points, unit = self._read(stored)
        known = self._devices.get(device)
        if known is None:
            known = self._devices[device] = {}
            self._unborn.add(device)
        for point in points:
            metric = known.get(point.name)
            if metric is None:
                self._aliases += 1
                datatype = point.datatype if point.datatype is not None else pb.DOUBLE
                known[point.name] = _Metric(self._aliases, datatype, point.value, ms, unit)
                self._unborn.add(device)
                continue
            datatype = _merged(metric.datatype, point.datatype)
            if datatype != metric.datatype or unit != metric.unit:
                metric.datatype, metric.unit = datatype, unit
                metric.value, metric.time = point.value, ms
                self._unborn.add(device)
            elif ms >= metric.time:  # the birth's value is the latest reading
                metric.value, metric.time = point.value, ms
        return device

    def _dbirth(self, device: str) -> Announcement:
        metrics = b"".join(
            pb.metric(
                name=name,
                alias=m.alias,
                timestamp=m.time,
                datatype=m.datatype,
                value=_as(m.datatype, m.value),
                unit=m.unit if m.datatype in (pb.INT64, pb.DOUBLE) else None,
            )
            for name, m in self._devices[device].items()
        )
        return Announcement(self._topic("DBIRTH", device), metrics, retain=False)

    def _ndeath(self) -> Announcement:
        now = _now()
        bd_seq = pb.metric(name=BD_SEQ, timestamp=now, datatype=pb.INT64, value=self._bd_seq)
        return Announcement(self.ndeath_topic, pb.stamp(bd_seq, now, None), retain=False)

    def _topic(self, kind: str, device: str) -> str:
        return f"{self._prefix}/{kind}/{self.node}/{device}"


def _point(name: str, value: object) -> _Point:
    if isinstance(value, bool):
        return _Point(name, pb.BOOLEAN, value)
    if isinstance(value, int):
        if value not in _INT64:
            raise FormatError(f"{name}: the integer {value} does not fit an Int64")
        return _Point(name, pb.INT64, value)
    if isinstance(value, float):
        return _Point(name, pb.DOUBLE, value)
    if isinstance(value, str):
        return _Point(name, pb.STRING, value)
    if value is None:
        return _Point(name, None, None)
    raise FormatError(f"{name}: a {type(value).__name__} value has no Sparkplug datatype here")


def _merged(born: int, now: int | None) -> int:
    """The metric's datatype once a value of type ``now`` came (a null keeps it; an
    integer keeps a Double metric Double; any other change retypes it)."""
    if now is None or now == born or (born == pb.DOUBLE and now == pb.INT64):
        return born
    return now


def _as(datatype: int, value: object) -> object:
    """``value`` as the metric's datatype writes it (an integer of a Double metric)."""
    if datatype == pb.DOUBLE and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _now() -> int:
    return time.time_ns() // 1_000_000
