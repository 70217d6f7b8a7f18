"""The ``modbus`` driver's runtime: polling a bus's devices, writing their registers.

The schema, and what a user writes, are in ``tidegate.drivers.modbus.config``.

``run`` connects the bus (``bus.Bus``: pymodbus's client, one request at a time,
the RTU inter-frame gap), polls each device's read groups when they are due
(``polling``) and emits each group's events as one batch. A lost port or TCP
connection is reopened with ``reconnect:``'s backoff; a session in which a device
answered starts the waits again from ``initial_delay``. With ``port: sim`` /
``host: sim`` the driver starts the simulated bus
(``tidegate.drivers.modbus.sim_device.simulated_bus``) and talks to it through the
same client code as to a real port.

``write(device, register, value)`` is the API for commands: it encodes ``value``
with the register's codec and sends FC5 (a coil), FC6 (one holding register) or
FC16 (several), between two polls on the same bus.
"""

from __future__ import annotations

import asyncio
import logging
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
)
from tidegate.drivers.modbus.polling import Poller, schedule

log = logging.getLogger("tidegate.drivers.modbus")


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
        self.retry_delay = 0.0
        """The last wait before a reconnect attempt."""
        self.target: Target | None = None
        """Where the bus is (with ``sim``: the simulated bus's pty or port), once known."""
        self.connects = 0
        """Successful connections (1 + reconnects)."""
        self.polls = 0
        """Read groups polled (whatever their outcome)."""
        self._bus: Bus | None = None
        self._answered_since_connect = False

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
            from tidegate.drivers.modbus.sim_device import simulated_bus  # noqa: PLC0415

            async with simulated_bus(self.config) as endpoint:
                target = (
                    Target(host=endpoint.host, tcp_port=endpoint.tcp_port)
                    if self.config.tcp
                    else Target(port=endpoint.port)
                )
                await self._run_bus(emit, target)
        finally:
            self.health.set_state(DriverState.STOPPED)

    async def _run_bus(self, emit: Emit, target: Target) -> None:
        """Connect, poll until the bus is lost, wait, reconnect; until cancelled."""
        self.target = target
        self.backoff.reset()
        failing = False  # within a streak of failures only the first counts as an error
        while True:
            bus = Bus(self.config, target, self.poller.garbled)
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
            self.retry_delay = self.backoff.next_delay()
            await asyncio.sleep(self.retry_delay)

    def _lost(self, message: str, *, first: bool) -> None:
        if first:
            log.warning("%s: %s; reconnecting", self.name, message)
            self.health.set_state(DriverState.RECONNECTING, message)
        else:
            self.health.set_state(DriverState.RECONNECTING)
            self.health.last_error = message

    async def _poll(self, bus: Bus, emit: Emit) -> NoReturn:
        """Poll each group when it is due; returns only by raising BusLost."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        now = loop.time()
        for group in self.groups:
            group.due = now
        self._answered_since_connect = False
        while True:
            group = min(self.groups, key=lambda g: g.due)
            wait = group.due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            events = await self.poller.poll(bus, group)
            self.polls += 1
            if task is not None and task.cancelling():
                # pymodbus waits with wait_for, which on 3.11 can swallow a cancellation
                # that arrives as the answer does: honour it here.
                raise asyncio.CancelledError
            # A stalled loop skips the missed rounds instead of polling in a burst.
            group.due = max(group.due + group.interval, loop.time())
            if events:
                self._answered_since_connect = True
                await emit(events)
                self.health.count(len(events))

    # --- writes -------------------------------------------------------------------------

    async def write(self, device: str, register: str, value: Writable) -> None:
        """Set ``device``'s ``register`` to ``value`` (in engineering units: scale and
        offset are undone). Raises ``UnknownRegister``, ``ReadOnlyRegister`` or
        ``ValueOutOfRange`` before anything is sent; ``NotConnected``, ``NoAnswer`` or
        ``ExceptionReply`` (counted by name, like the reads') when it could not be done."""
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
        words = RegisterCodec(spec).encode(value)
        bus = self._bus
        if bus is None:
            raise NotConnected(f"{self.name}: the bus is not connected; try again later")
        try:
            if spec.table == "coil":
                await bus.write_coil(found.name, found.slave, spec.address, bool(words[0]))
            else:
                await bus.write_registers(found.name, found.slave, spec.address, words)
        except ExceptionReply as exc:
            self.health.tally(exc.name)
            raise
        except NoAnswer:
            self.health.tally("timeout")
            raise
        except BusLost as exc:
            raise NotConnected(f"{self.name}: {exc}") from None
        log.info("%s: wrote %s.%s = %r", self.name, device, register, value)
