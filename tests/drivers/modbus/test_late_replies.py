"""An RTU answer that comes late, or does not fit its request, is never decoded.

RTU frames carry no transaction id: pymodbus takes the first sound frame from the
slave it asked as the answer. One slave's two blocks, A (holding 0+2) and B
(holding 100+2), are read with the same function and count, and hold distinct
values; the simulated slave answers one request of A after the driver's timeout.
Without the bus settling after the unanswered attempt, A's late answer arrives
while B's request waits and is published under B's names. The driver runs for
real (pty, pymodbus's client, the simulated slave); the tests see the events, the
dead letters and the counters.
"""

from __future__ import annotations

from typing import Any

import yaml
from pymodbus.pdu.bit_message import ReadCoilsResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from tests.drivers.harness import Probe, eventually, running
from tests.drivers.modbus.test_sim_driver import endpoint_of, run
from tidegate.drivers.modbus.config import ModbusConfig
from tidegate.drivers.modbus.driver import ModbusDriver
from tidegate.drivers.modbus.replies import mismatch
from tidegate.drivers.modbus.sim_slave import Fault

BUS = """
name: slow
type: modbus
port: sim
timeout: 200ms
retries: 1
interval: 20ms
devices:
  - name: meter
    slave: 1
    max_gap: 0
    registers:
      - {name: a0, address: 0, type: u16}
      - {name: a1, address: 1, type: u16}
      - {name: b0, address: 100, type: u16}
      - {name: b1, address: 101, type: u16}
sim:
  values: {a0: 1111, a1: 2222, b0: 3333, b1: 4444}
"""

RIGHT = {"meter.a0": 1111, "meter.a1": 2222, "meter.b0": 3333, "meter.b1": 4444}


def driver_of(probe: Probe, **top: Any) -> ModbusDriver:
    data = yaml.safe_load(BUS)
    data.update(top)
    return ModbusDriver(ModbusConfig.model_validate(data), probe.context)


def wrong(probe: Probe) -> list[tuple[str, Any]]:
    """Every event whose value is not its register's."""
    return [(e.name, e.value) for e in probe.events if RIGHT[e.name] != e.value]


def test_a_late_answer_is_never_published_under_the_next_reads_names() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = driver_of(probe)
        counters = driver.health.counters
        async with running(driver, probe):
            meter = (await endpoint_of("slow")).slave("meter")
            # B answers in 120 ms (within the 200 ms timeout), every time; A answers
            # once after 260 ms, past the timeout: its retry is answered at once, and
            # B's request goes out while A's late answer is still to come.
            meter.delay(0.12, address=100, count=1_000_000)
            meter.delay(0.26, address=0)
            await eventually(lambda: counters.get("late_reply", 0) >= 1, "A's answer, late")
            after = len(probe.values("meter.b0"))
            await eventually(lambda: len(probe.values("meter.b0")) >= after + 3,
                             "three more readings of B")
        assert wrong(probe) == []  # never A's 1111/2222 as b0/b1, nor anything else
        assert probe.values("meter.a0")[-1] == 1111 and probe.values("meter.b0")[-1] == 3333
        assert meter.replies == meter.requests  # A's late answer was sent, and dropped
        assert "bad_crc" not in counters and probe.rejects == []

    run(scenario)


def test_an_answer_with_the_wrong_register_count_is_not_decoded_and_retried() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = driver_of(probe)
        counters = driver.health.counters
        async with running(driver, probe):
            meter = (await endpoint_of("slow")).slave("meter")
            await eventually(lambda: len(probe.values("meter.b0")) >= 1, "a first round")
            meter.inject(Fault.WRONG_COUNT)  # one answer, one register short
            await eventually(lambda: counters.get("mismatched_reply", 0) >= 1, "the mismatch")
            after = len(probe.values("meter.b0"))
            await eventually(lambda: len(probe.values("meter.b0")) >= after + 3,
                             "three more rounds")
        assert meter.faults_served[Fault.WRONG_COUNT] == 1
        assert counters["mismatched_reply"] == 1
        assert wrong(probe) == [] and probe.rejects == []  # retried: read, not refused
        assert not driver.health.devices["meter"].stale

    run(scenario)


def test_a_read_only_ever_answered_wrongly_is_a_dead_letter_and_the_round_goes_on() -> None:
    async def scenario() -> None:
        probe = Probe()
        driver = driver_of(probe)
        counters = driver.health.counters
        async with running(driver, probe):
            meter = (await endpoint_of("slow")).slave("meter")
            await eventually(lambda: len(probe.values("meter.b0")) >= 1, "a first round")
            # The attempt and its one retry: the same read both times.
            meter.inject(Fault.WRONG_COUNT, count=2)
            await eventually(lambda: probe.rejects != [], "a dead letter")
            after = len(probe.values("meter.b0"))
            await eventually(lambda: len(probe.values("meter.b0")) > after, "the next round")
        assert counters["mismatched_reply"] == 2
        [(raw, reason)] = probe.rejects
        assert "with 1 registers instead of 2" in reason
        assert raw[:2] == bytes((3, 2))  # the answer itself: function 3, 2 bytes of data
        assert wrong(probe) == []
        assert not driver.health.devices["meter"].stale  # it answers, wrongly

    run(scenario)


def test_a_reply_fits_its_request_only_with_its_function_and_count() -> None:
    registers = ReadHoldingRegistersResponse(registers=[1, 2])
    assert mismatch(3, registers, 2, bits=False) is None
    assert mismatch(3, registers, 3, bits=False) == "2 registers instead of 3"
    assert mismatch(4, registers, 2, bits=False) == "an answer to function 3"
    assert mismatch(3, ReadInputRegistersResponse(registers=[1, 2]), 2, bits=False) == (
        "an answer to function 4"
    )
    coils = ReadCoilsResponse(bits=[True] * 16)  # two bytes of bits
    assert mismatch(1, coils, 9, bits=True) is None
    assert mismatch(1, coils, 16, bits=True) is None
    assert mismatch(1, coils, 8, bits=True) == "2 bytes of bits instead of 1"
    assert mismatch(1, coils, 17, bits=True) == "2 bytes of bits instead of 3"
