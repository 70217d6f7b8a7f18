"""A simulated Modbus bus for ``port: sim`` / ``host: sim``, the tests and the demo.

``simulated_bus(config)`` builds, from a ``modbus`` driver's own config, one
simulated slave per device (its register map served with changing values, see
``sim_values``; its faults from ``sim.faults`` / ``sim.device_faults``, see
``sim_slave``) and puts them on a real transport: with ``port: sim`` an RS-485
line on a pseudo-terminal (Modbus RTU, CRC-16; the driver opens
``endpoint.port`` with pyserial like any serial port), with ``host: sim`` a
Modbus TCP server on 127.0.0.1 (``endpoint.host``, ``endpoint.tcp_port``). The
device is our own implementation of the protocol (``sim_pdu``), not pymodbus's
server, so the driver's pymodbus client is tested against an independent one.

::

    async with simulated_bus(config) as endpoint:
        endpoint.slave("mains").inject(Fault.EXCEPTION, code=6)   # tests: exact faults
        ...  # connect to endpoint.port (RTU) or endpoint.host:endpoint.tcp_port (TCP)

Everything it started (the pty, the server and its connections) is stopped when
the block exits, also on cancellation. While it runs, ``running[config.name]``
is its endpoint, so a test can reach the bus a driver made for itself.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.sim_config import ModbusSimSection
from tidegate.drivers.modbus.sim_pdu import SlaveTables, Table
from tidegate.drivers.modbus.sim_slave import Fault, SimSlave
from tidegate.drivers.modbus.sim_transport import RtuBus, TcpBus
from tidegate.drivers.modbus.sim_values import RegisterFeeder, SimConfigError, check_values

__all__ = [
    "Fault",
    "RtuBus",
    "SimConfigError",
    "SimEndpoint",
    "SimSlave",
    "SlaveTables",
    "Table",
    "TcpBus",
    "build_slaves",
    "running",
    "simulated_bus",
]


@dataclass(slots=True)
class SimEndpoint:
    """Where a simulated bus listens, and its slaves (by device name) for tests."""

    bus: RtuBus | TcpBus
    slaves: dict[str, SimSlave] = field(default_factory=dict)
    feeders: dict[str, RegisterFeeder] = field(default_factory=dict)

    @property
    def port(self) -> str:
        """RTU: the pty path to open as the serial port."""
        if not isinstance(self.bus, RtuBus):
            raise TypeError("a simulated TCP bus has no serial port; use host and tcp_port")
        return self.bus.path

    @property
    def host(self) -> str:
        """TCP: the address to connect to (loopback)."""
        if not isinstance(self.bus, TcpBus):
            raise TypeError("a simulated RTU bus has no host; use port")
        return self.bus.host

    @property
    def tcp_port(self) -> int:
        """TCP: the port the simulated server listens on (a free one)."""
        if not isinstance(self.bus, TcpBus):
            raise TypeError("a simulated RTU bus has no TCP port; use port")
        return self.bus.port

    def slave(self, device: str) -> SimSlave:
        """The simulated slave behind the device named ``device``."""
        found = self.slaves.get(device)
        if found is None:
            raise KeyError(f"no simulated device is named {device!r}; known: {sorted(self.slaves)}")
        return found


running: dict[str, SimEndpoint] = {}
"""The simulated buses open now, by driver name."""


def build_slaves(
    config: ModbusConfig, sim: ModbusSimSection | None = None
) -> tuple[dict[str, SimSlave], dict[str, RegisterFeeder]]:
    """One ``SimSlave`` per device of ``config``, fed by its register map; raises
    ``SimConfigError`` when the ``sim:`` block does not fit the map."""
    sim = sim if sim is not None else config.sim or ModbusSimSection()
    check_values(sim, config.devices)
    rng = random.Random(sim.seed)
    slaves: dict[str, SimSlave] = {}
    feeders: dict[str, RegisterFeeder] = {}
    for device in config.devices:
        if not 1 <= device.slave <= 247:
            raise SimConfigError(
                f"device {device.name!r}: slave id {device.slave} cannot be simulated (1..247)"
            )
        feeder = RegisterFeeder(device, sim, rng=random.Random(rng.random()))
        slaves[device.name] = SimSlave(
            device.slave,
            feeder.tables(),
            faults=sim.device_faults.get(device.name, sim.faults),
            rng=random.Random(rng.random()),
            refresh=feeder.refresh,
        )
        feeders[device.name] = feeder
    return slaves, feeders


@contextlib.asynccontextmanager
async def simulated_bus(config: ModbusConfig) -> AsyncIterator[SimEndpoint]:
    """Serve ``config``'s devices on a pty (``port: sim``) or a loopback TCP port
    (``host: sim``) until the block exits."""
    sim = config.sim or ModbusSimSection()
    slaves, feeders = build_slaves(config, sim)
    by_id = {slave.slave_id: slave for slave in slaves.values()}
    bus: RtuBus | TcpBus = (
        TcpBus(by_id, reply_delay=sim.reply_delay)
        if config.tcp
        else RtuBus(by_id, reply_delay=sim.reply_delay, echo=sim.echo)
    )
    endpoint = SimEndpoint(bus, slaves, feeders)
    try:  # from here on, whatever happens (a cancellation too), it is all stopped
        if isinstance(bus, TcpBus):
            await bus.start()
        else:
            bus.open()
        running[config.name] = endpoint
        yield endpoint
    finally:
        if running.get(config.name) is endpoint:
            del running[config.name]
        if isinstance(bus, TcpBus):
            await bus.stop()
        else:
            bus.close()
