"""Polling: which reads are due, and what one round of a device's reads yields.

A device's registers are planned into reads (``plan``), grouped by interval; each
group is due every ``interval`` seconds and is read as a whole, its events emitted
as one batch. The outcome of each read goes to the driver's health:

- values -> events (tag ``device``), and the device counts as answering;
- an exception reply -> a counter named after the code (``illegal_data_address``,
  ``device_busy``, ...), a dead letter with the exception PDU and the request, a
  WARNING the first time for that read and code, and the next read of the group
  goes on (the device is alive). ``illegal_data_address`` for a read that goes
  through unmapped registers (``max_gap``) splits it into gapless reads from the
  next round on, with a WARNING suggesting ``max_gap: 0``;
- no answer -> the ``timeout`` counter; the device goes stale (one driver error at
  the change, not one per poll) and the rest of its group is skipped this round:
  a silent device would only hold the bus for the others. So is a TCP gateway's
  "no answer" for the device behind it (exception 0x0A ``gateway_path_unavailable``
  or 0x0B ``gateway_target_failed``: counted under its name, no dead letter);
- a stale device is *probed*: the driver asks only its first read, without retries,
  once a round, at an interval that doubles after each silent round up to
  ``max(interval, reconnect.max_delay)``, and skips its other groups; an answer
  makes it fresh again and its reads resume;
- an answer that came after ``timeout`` (``late_reply``) is counted and logged once
  per slave (raise ``timeout``); it is not a damaged frame;
- an answer that does not fit its request (another function, another number of
  registers or bits: on RTU most likely a late answer to an earlier request of the
  same slave) is never decoded: ``mismatched_reply`` is counted for each, logged
  once per device, and the read retried; if every retry gets one, the last is a
  dead letter and the group goes on (the device is there);
- a value that is not one (NaN, bytes that are not UTF-8) -> a dead letter with
  the register's words; the other registers of the read still publish.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tidegate.driver import DriverHealth, Reject
from tidegate.drivers.modbus.bus import Bus, BusLost
from tidegate.drivers.modbus.codec import RegisterCodec
from tidegate.drivers.modbus.config import ModbusConfig, ModbusDevice
from tidegate.drivers.modbus.exceptions import ExceptionReply, MismatchedReply, NoAnswer
from tidegate.drivers.modbus.plan import Read, plan_reads
from tidegate.drivers.modbus.registers import READ_FUNCTION
from tidegate.drivers.parsing.records import FrameRejected
from tidegate.event import Event, new_event

log = logging.getLogger("tidegate.drivers.modbus")

ILLEGAL_DATA_ADDRESS = 0x02
GATEWAY_NO_ANSWER = frozenset({0x0A, 0x0B})
"""Exception codes with which a TCP gateway says the device behind it did not answer."""


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
    lead: bool = False
    """The device's first group: the one that probes it while it is stale."""
    due: float = 0.0
    """When it is next due, on the monotonic clock."""


def with_codecs(read: Read) -> PlannedRead:
    """``read`` with the codecs of its registers."""
    codecs = tuple((RegisterCodec(r), r.address - read.address) for r in read.registers)
    return PlannedRead(read, codecs)


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
            by_interval.setdefault(read.interval, []).append(with_codecs(read))
        for n, (interval, planned) in enumerate(sorted(by_interval.items())):
            groups.append(Group(device, interval, planned, tags, lead=n == 0))
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
    slow: set[int] = field(default_factory=set)
    """Slave ids whose late answers were logged already."""
    told: set[tuple[str, str, int, int]] = field(default_factory=set)
    mixed: set[str] = field(default_factory=set)
    """Devices whose mismatched answers were logged already."""
    """(device, table, address, code) of the exception replies logged already."""

    def refuse(self, raw: bytes, reason: str) -> None:
        """Input that cannot become events: a dead letter and a driver error."""
        self.health.set_state(self.health.state, reason)
        self.reject(raw, reason)

    def garbled(self, device: str, raw: bytes) -> None:
        """Bytes that made no frame (a bad CRC, noise, a cut-off TCP frame)."""
        what = "bad_crc" if self.rtu else "garbled"
        self.health.tally(what)
        self.refuse(raw, f"device {device!r}: a reply that is not a Modbus frame ({what})")

    def late(self, slave: int) -> None:
        """A whole answer that came after its request's timeout."""
        self.health.tally("late_reply")
        if slave not in self.slow:
            self.slow.add(slave)
            log.warning(
                "%s: slave %d answers after `timeout` (%s): raise `timeout`; its late "
                "answers are counted as late_reply", self.source, slave,
                "it waits for each answer" if self.rtu else "per request",
            )

    def mismatched(self, device: str, what: str) -> None:
        """An answer that does not fit the request it was taken for: not decoded."""
        self.health.tally("mismatched_reply")
        if device not in self.mixed:
            self.mixed.add(device)
            log.warning(
                "%s: %s: not its answer (a late answer to an earlier request, or a device "
                "that does not follow the request); never decoded, the read is retried; "
                "counted as mismatched_reply", self.source, what,
            )

    async def poll(
        self, bus: Bus, group: Group, *, probe: bool = False
    ) -> tuple[list[Event], BusLost | None]:
        """One round of ``group``'s reads: the events, and the BusLost that ended the
        round early if the bus went away (the events read before it are kept). With
        ``probe`` the first read is asked once, without retries, and the round ends
        there if the device is still silent."""
        device = group.device
        batch: list[Event] = []
        for n, each in enumerate(list(group.reads)):
            read = each.read
            try:
                words = await bus.read(
                    device.name, device.slave, read.table, read.address, read.count,
                    retries=0 if probe and n == 0 else None,
                )
            except ExceptionReply as exc:
                if exc.code in GATEWAY_NO_ANSWER:
                    self._silent(device, f"{exc}: the gateway got no answer from it",
                                 error=exc.name)
                    break
                self._exception(device, read, exc)
                if exc.code == ILLEGAL_DATA_ADDRESS:
                    self._split(group, each)
                continue
            except NoAnswer as exc:
                self._silent(device, str(exc))
                break
            except MismatchedReply as exc:
                self._answered(device)  # something answered: the device is there
                self.health.device(device.name).last_error = "mismatched_reply"
                self.refuse(exc.raw, str(exc))
                continue
            except BusLost as exc:
                return batch, exc
            self._answered(device)
            batch += self.events_of(group, each, words, self.clock())
        return batch, None

    def _split(self, group: Group, merged: PlannedRead) -> None:
        """A read through unmapped registers got 'illegal data address': read its
        registers without gaps from the next round on (the device may refuse the gap)."""
        read, device = merged.read, group.device
        parts = plan_reads(read.registers, interval=read.interval, max_gap=0,
                           max_read=device.max_read)
        if len(parts) < 2:
            return  # no gap in it: a register of the map itself is refused
        at = group.reads.index(merged)
        group.reads[at : at + 1] = [with_codecs(part) for part in parts]
        log.warning(
            "%s: device %r refused %s %d+%d, which reads through unmapped registers; "
            "reading it as %d requests from now on (set `max_gap: 0` on the device to "
            "plan it so)", self.source, device.name, read.table, read.address, read.count,
            len(parts),
        )

    def _answered(self, device: ModbusDevice) -> None:
        self.health.device_answered(device.name)
        if device.name in self.stale:
            self.stale.discard(device.name)
            log.info("%s: device %r (slave %d) answers again", self.source, device.name,
                     device.slave)

    def _silent(self, device: ModbusDevice, message: str, *, error: str = "timeout") -> None:
        """The device did not answer: counted under ``error``; stale at the change."""
        self.health.tally(error)
        if device.name in self.stale:
            self.health.device(device.name).last_error = error
            return
        self.stale.add(device.name)
        log.warning("%s: %s; it is stale until it answers", self.source, message)
        self.health.device_failed(device.name, error, stale=True)
        self.health.last_error = message

    def _exception(self, device: ModbusDevice, read: Read, exc: ExceptionReply) -> None:
        self._answered(device)  # an exception reply is an answer: the device is there
        self.health.tally(exc.name)
        reason = (
            f"device {device.name!r} (slave {device.slave}): {read.table} {read.address}"
            f"+{read.count}: exception {exc.code} ({exc.name})"
        )
        self.health.device(device.name).last_error = exc.name
        key = (device.name, read.table, read.address, exc.code)
        if key not in self.told:  # once: a device that refuses a read does so every poll
            self.told.add(key)
            log.warning("%s: %s (counted as %s; logged once)", self.source, reason, exc.name)
        # The dead letter: the exception PDU, then the request PDU it answered.
        request = bytes([READ_FUNCTION[read.table]]) + read.address.to_bytes(2, "big")
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
