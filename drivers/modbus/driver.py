"""The ``modbus`` driver's runtime: polling a bus's devices, writing their registers.

The schema, and what a user writes, are in ``tidegate.drivers.modbus.config``.

``run`` connects the bus (``bus.Bus``: pymodbus's client, one request at a time,
the RTU inter-frame gap), polls each device's read groups when they are due
(``polling``) and emits each group's events as one batch. A lost port or TCP
connection is reopened with ``reconnect:``'s backoff; a session in which a device
answered starts the waits again from ``initial_delay``. While the bus is down every
device shows as stale (one driver error for the outage, not one per device). A group
that starts later than one unanswered request (its retries, and on RTU the
settling before each) after it was due is counted as
``late_polls`` (logged once a connection): the bus has more to ask than its
intervals allow, most often because silent devices hold it; the readings become
rarer. With ``port: sim`` /
``host: sim`` the driver starts the simulated bus
(``tidegate.drivers.modbus.sim_device.simulated_bus``) and talks to it through the
same client code as to a real port.

``write(device, register, value)`` is the API for commands: it encodes ``value``
with the register's codec and sends FC5 (a coil), FC6 (one holding register; FC16
with the device's ``write_function: 16``) or FC16 (several), between two polls on
the same bus. A bitfield written as a mapping that names only some of its bits
(``{"pump": True}``) is a read-modify-write: the register is read, those bits are
changed and the others kept, and it is written back, with no other request in
between. It returns the value as it will read back (rounded to the register's
resolution: 22.7 with ``scale: 0.5`` is 22.5).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import partial
from typing import NoReturn

from tidegate.backoff import Backoff
from tidegate.driver import Driver, DriverContext, DriverState, Emit
from tidegate.drivers.modbus.bus import Bus, BusLost, Target
from tidegate.drivers.modbus.codec import RegisterCodec, Writable
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.exceptions import (
    ExceptionReply,
    ModbusError,
    NoAnswer,
    ReadOnlyRegister,
    UnknownRegister,
    ValueOutOfRange,
)
from tidegate.drivers.modbus.polling import Group, Poller, schedule

log = logging.getLogger("tidegate.drivers.modbus")

_LATE_MARGIN = 0.05
"""Seconds a group may start late on top of one unanswered request: the exchanges'
own time and the event loop's."""

MAX_WRITE_REGISTERS = 123
"""The most registers one FC16 request may write (Modbus Application Protocol 6.12)."""


class NotConnected(ModbusError):
    """A write while the bus is down (the driver is reconnecting, or not running)."""


class ModbusDriver(Driver[ModbusConfig]):
    """Polls the devices on one Modbus bus and emits their values."""

    def __init__(self, config: ModbusConfig, context: DriverContext) -> None:
        super().__init__(config, context)
        self.groups = schedule(config)
        self.poller = Poller(config.name, self.health, context.reject, rtu=not config.tcp)
        for device in config.devices:
            self.health.device(device.name)  # listed by `tidegate status` from the start
        self.backoff = Backoff(config.reconnect)
        self.connects = 0
        """Successful connections (1 + reconnects)."""
        self.polls = 0
        """Read groups polled (whatever their outcome)."""
        self._bus: Bus | None = None
        self._answered_since_connect = False
        self._probe_wait: dict[str, float] = {}
        """Per stale device, the wait before its next probe."""
        self._slack = (config.gap_seconds + (config.retries + 1) * config.timeout
                       + config.retries * config.settle_seconds + _LATE_MARGIN)
        """How late a group may start before it counts as a late poll: more than one
        unanswered request (with its retries, each of them after the settling on RTU)
        can hold it up."""

    # --- the run loop -------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        try:
            if not self.config.simulated:
                cfg = self.config
                await self._run_bus(
                    emit, Target(port=cfg.port, host=cfg.host, tcp_port=cfg.tcp_port)
                )
                return
            # Only `sim` needs the simulated device (and its modules).
            from tidegate.drivers.modbus.sim_device import (  # noqa: PLC0415
                SimConfigError,
                simulated_bus,
            )

            try:
                async with simulated_bus(self.config) as endpoint:
                    target = (
                        Target(host=endpoint.host, tcp_port=endpoint.tcp_port)
                        if self.config.tcp
                        else Target(port=endpoint.port)
                    )
                    await self._run_bus(emit, target)
            except SimConfigError as exc:
                # `tidegate check` refuses these; a config built in code may not be.
                # One line and a failed state, not a traceback every second.
                log.error("%s: cannot simulate this bus: %s", self.name, exc)
                self.health.set_state(DriverState.FAILED, f"cannot simulate: {exc}")
        finally:
            if self.health.state is not DriverState.FAILED:
                self.health.set_state(DriverState.STOPPED)

    async def _run_bus(self, emit: Emit, target: Target) -> None:
        """Connect, poll until the bus is lost, wait, reconnect; until cancelled."""
        self.backoff.reset()
        failing = False  # within a streak of failures only the first counts as an error
        while True:
            bus = Bus(self.config, target, self.poller.garbled, self.poller.late,
                      self.poller.mismatched)
            try:
                await bus.connect()
                self.connects += 1
                failing = False
                log.info("%s: connected to %s", self.name, target)
                self.health.set_state(DriverState.RUNNING)
                self._bus = bus
                await self._poll(bus, emit)
            except BusLost as exc:
                self._lost(str(exc), first=not failing)
                failing = True
                if self._answered_since_connect:
                    self.backoff.reset()  # it worked for a while: a new outage, new waits
            finally:
                self._bus = None
                bus.close()
            await asyncio.sleep(self.backoff.next_delay())

    def _lost(self, message: str, *, first: bool) -> None:
        if first:
            log.warning("%s: %s; reconnecting", self.name, message)
        self.health.reconnecting(message, first=first)
        # A device already stale keeps its own reason (e.g. the timeout that made it so).
        self.health.devices_unreachable(
            (d.name for d in self.config.devices if not self.health.device(d.name).stale),
            "bus lost",
        )

    async def _poll(self, bus: Bus, emit: Emit) -> NoReturn:
        """Poll each group when it is due; returns only by raising BusLost."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        now = loop.time()
        for group in self.groups:
            group.due = now
        self._answered_since_connect = False
        behind_logged = False
        while True:
            group = min(self.groups, key=lambda g: g.due)
            wait = group.due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            name = group.device.name
            stale = name in self.poller.stale
            if stale and not group.lead:
                # A stale device is only probed, by its first group: its others wait.
                group.due = max(group.due + group.interval, loop.time())
                continue
            if -wait > self._slack:
                self.health.tally("late_polls")
                if not behind_logged:
                    behind_logged = True
                    log.warning(
                        "%s: polling is behind: %s was due %.1f s ago (the bus has more to "
                        "ask than its intervals allow; silent devices, a low baud rate or "
                        "short intervals); counted as late_polls", self.name, name, -wait,
                    )
            events, lost = await self.poller.poll(bus, group, probe=stale)
            self.polls += 1
            if task is not None and task.cancelling():
                # pymodbus waits with wait_for, which on 3.11 can swallow a cancellation
                # that arrives as the answer does: honour it here.
                raise asyncio.CancelledError
            # A stalled loop skips the missed rounds instead of polling in a burst.
            group.due = max(group.due + group.interval, loop.time())
            if group.lead and name in self.poller.stale:
                group.due = loop.time() + self._next_probe(group)
            else:
                self._probe_wait.pop(name, None)
            if events:
                self._answered_since_connect = True
                await emit(events)
                self.health.count(len(events))
            if lost is not None:
                raise lost

    def _next_probe(self, group: Group) -> float:
        """The wait before probing a silent device again: its interval, doubled after
        each silent probe, up to ``max(interval, reconnect.max_delay)``."""
        name = group.device.name
        wait = self._probe_wait.get(name)
        wait = group.interval if wait is None else wait * 2
        wait = min(wait, max(group.interval, self.config.reconnect.max_delay))
        self._probe_wait[name] = wait
        return wait

    # --- writes -------------------------------------------------------------------------

    async def write(self, device: str, register: str, value: Writable) -> Writable:
        """Set ``device``'s ``register`` to ``value`` (in engineering units: scale and
        offset are undone) and return the value it now holds, as it reads back.
        Raises ``UnknownRegister``, ``ReadOnlyRegister`` or ``ValueOutOfRange`` before
        anything is sent; ``NotConnected``, ``NoAnswer`` or ``ExceptionReply`` (counted
        by name, like the reads') when it could not be done. A bitfield given as a
        mapping of some of its bits is read, changed in those bits and written back."""
        found = self.config.device(device)
        if found is None:
            known = ", ".join(d.name for d in self.config.devices)
            raise UnknownRegister(f"{self.name}: no device {device!r} (devices: {known})")
        spec = found.register(register)
        if spec is None:
            raise UnknownRegister(f"{self.name}: device {device!r} has no register {register!r}")
        if not spec.writable:
            what = "an input register" if spec.table == "input" else "a discrete input"
            raise ReadOnlyRegister(
                f"{self.name}: {device}.{register} is {what}: Modbus has no function to write it"
            )
        codec = RegisterCodec(spec)
        if spec.table != "coil" and spec.words > MAX_WRITE_REGISTERS:
            raise ValueOutOfRange(
                f"{self.name}: {device}.{register} spans {spec.words} registers; one write "
                f"(FC16) carries at most {MAX_WRITE_REGISTERS}"
            )
        partial_bits = spec.type == "bitfield" and isinstance(value, Mapping) and set(
            value) != set(spec.bits or {})
        words = codec.encode(value)  # refuses what the register cannot hold, first
        bus = self._bus
        if bus is None:
            raise NotConnected(f"{self.name}: the bus is not connected; try again later")
        fc16 = found.write_function == 16
        try:
            if spec.table == "coil":
                await bus.write_coil(found.name, found.slave, spec.address, bool(words[0]))
            elif partial_bits:
                assert isinstance(value, Mapping)
                change = partial(codec.merge_bits, value)
                words = list(await bus.update_registers(
                    found.name, found.slave, spec.address, spec.words, change, fc16=fc16
                ))
            else:
                await bus.write_registers(found.name, found.slave, spec.address, words,
                                          fc16=fc16)
        except ExceptionReply as exc:
            self.health.tally(exc.name)
            raise
        except NoAnswer:
            self.health.tally("timeout")
            raise
        except BusLost as exc:
            raise NotConnected(f"{self.name}: {exc}") from None
        written = value if spec.table == "coil" else codec.decode(words)
        log.info("%s: wrote %s.%s = %r", self.name, device, register, written)
        return written
