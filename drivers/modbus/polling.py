"""Polling: which reads are due, and what one round of a device's reads yields.

A device's registers are planned into reads (``plan``), grouped by interval; each
group is due every ``interval`` seconds and is read as a whole, its events emitted
as one batch. The outcome of each read goes to the driver's health:

- values -> events (tag ``device``), and the device counts as answering;
- an exception reply -> a counter named after the code (``illegal_data_address``,
  ``device_busy``, ...), a dead letter with the exception PDU and the request, and
  the next read of the group goes on (the device is alive);
- no answer -> the ``timeout`` counter; the device goes stale (one driver error at
  the change, not one per poll) and the rest of its group is skipped this round:
  a silent device would only hold the bus for the others. It is polled again at
  its next interval, and an answer makes it fresh again;
- a value that is not one (NaN, bytes that are not UTF-8) -> a dead letter with
  the register's words; the other registers of the read still publish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tidegate.driver import DriverHealth, Reject
from tidegate.drivers.modbus.bus import Bus
from tidegate.drivers.modbus.codec import RegisterCodec
from tidegate.drivers.modbus.config import ModbusConfig, ModbusDevice
from tidegate.drivers.modbus.exceptions import ExceptionReply, NoAnswer
from tidegate.drivers.modbus.plan import Read, plan_reads
from tidegate.drivers.parsing.records import FrameRejected
from tidegate.event import Event, new_event

log = logging.getLogger("tidegate.drivers.modbus")

_FUNCTION = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}


@dataclass(frozen=True, slots=True)
class PlannedRead:
    """A read and the conversions of the registers it carries: (codec, offset)."""

    read: Read
    codecs: tuple[tuple[RegisterCodec, int], ...]


@dataclass(slots=True)
class Group:
    """A device's reads that share an interval: due together, emitted together."""

    device: ModbusDevice
    interval: float
    reads: list[PlannedRead]
    tags: dict[str, str]
    due: float = 0.0
    """When it is next due, on the monotonic clock."""


def schedule(config: ModbusConfig) -> list[Group]:
    """Every device's read groups, each due at once."""
    groups: list[Group] = []
    for device in config.devices:
        reads = plan_reads(
            device.registers,
            interval=config.device_interval(device),
            max_gap=device.max_gap,
            max_read=device.max_read,
        )
        tags = {"device": device.name}
        by_interval: dict[float, list[PlannedRead]] = {}
        for read in reads:
            codecs = tuple((RegisterCodec(r), r.address - read.address) for r in read.registers)
            by_interval.setdefault(read.interval, []).append(PlannedRead(read, codecs))
        for interval, planned in sorted(by_interval.items()):
            groups.append(Group(device, interval, planned, tags))
    return groups


def _words_bytes(words: Sequence[int]) -> bytes:
    return b"".join(w.to_bytes(2, "big") for w in words)


@dataclass
class Poller:
    """Reads groups on a bus, turns the answers into events, and keeps the health."""

    source: str
    health: DriverHealth
    reject: Reject
    rtu: bool
    clock: Callable[[], float] = time.time
    stale: set[str] = field(default_factory=set)
    """Devices that stopped answering (until they answer again)."""

    def refuse(self, raw: bytes, reason: str) -> None:
        """Input that cannot become events: a dead letter and a driver error."""
        self.health.set_state(self.health.state, reason)
        self.reject(raw, reason)

    def garbled(self, device: str, raw: bytes) -> None:
        """Bytes that made no frame (a bad CRC, noise, a cut-off TCP frame)."""
        what = "bad_crc" if self.rtu else "garbled"
        self.health.tally(what)
        self.refuse(raw, f"device {device!r}: a reply that is not a Modbus frame ({what})")

    async def poll(self, bus: Bus, group: Group) -> list[Event]:
        """One round of ``group``'s reads; raises BusLost when the bus is gone."""
        device = group.device
        batch: list[Event] = []
        for planned in group.reads:
            read = planned.read
            try:
                words = await bus.read(
                    device.name, device.slave, read.table, read.address, read.count
                )
            except ExceptionReply as exc:
                self._exception(device, read, exc)
                continue
            except NoAnswer as exc:
                self._silent(device, str(exc))
                break
            self._answered(device)
            batch += self.events_of(group, planned, words, self.clock())
        return batch

    def _answered(self, device: ModbusDevice) -> None:
        self.health.device_answered(device.name)
        if device.name in self.stale:
            self.stale.discard(device.name)
            log.info("%s: device %r (slave %d) answers again", self.source, device.name,
                     device.slave)

    def _silent(self, device: ModbusDevice, message: str) -> None:
        self.health.tally("timeout")
        if device.name in self.stale:
            self.health.device(device.name).last_error = "timeout"
            return
        self.stale.add(device.name)
        log.warning("%s: %s; it is stale until it answers", self.source, message)
        self.health.device_failed(device.name, "timeout", stale=True)
        self.health.last_error = message

    def _exception(self, device: ModbusDevice, read: Read, exc: ExceptionReply) -> None:
        self._answered(device)  # an exception reply is an answer: the device is there
        self.health.tally(exc.name)
        reason = (
            f"device {device.name!r} (slave {device.slave}): {read.table} {read.address}"
            f"+{read.count}: exception {exc.code} ({exc.name})"
        )
        self.health.device(device.name).last_error = exc.name
        # The dead letter: the exception PDU, then the request PDU it answered.
        request = bytes([_FUNCTION[read.table]]) + read.address.to_bytes(2, "big")
        request += read.count.to_bytes(2, "big")
        self.refuse(bytes([exc.function | 0x80, exc.code & 0xFF]) + request, reason)

    def events_of(
        self, group: Group, planned: PlannedRead, values: Sequence[int], now: float
    ) -> list[Event]:
        """The events of one read's answer; a value that is not one is refused."""
        events: list[Event] = []
        for codec, offset in planned.codecs:
            spec = codec.spec
            part = values[offset : offset + codec.words]
            try:
                value = codec.decode(part)
            except FrameRejected as exc:
                self.refuse(_words_bytes(part), f"device {group.device.name!r}: {exc}")
                continue
            # `<device>.<register>`, as the i2c driver names its chips' quantities: rule
            # state is kept per (source, name), so two meters' `voltage` must differ.
            prefix = group.device.name + "."
            if isinstance(value, dict):
                events += (
                    new_event(self.source, prefix + flag, on, tags=group.tags, time=now)
                    for flag, on in value.items()
                )
            else:
                events.append(new_event(self.source, prefix + spec.name, value, unit=spec.unit,
                                        tags=group.tags, time=now))
        return events
