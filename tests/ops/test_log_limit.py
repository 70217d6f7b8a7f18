"""Rate-limiting repeated log lines: real loggers writing through a real handler,
with the limiter's clock advanced by the test."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import GatewayProcess, wait_until, write_config
from tidegate.demo.local_broker import free_port
from tidegate.ops.config import LoggingSection, RateLimitSection
from tidegate.ops.log_limit import RepeatLimiter, install_rate_limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Captured:
    """A logger with one stream handler carrying the limiter; ``lines`` is what was written."""

    def __init__(self, limiter: RepeatLimiter, name: str) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        self.handler.addFilter(limiter)
        limiter.handler = self.handler
        self.logger = logging.getLogger(name)
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.handlers[:] = [self.handler]

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def captured(clock: Clock, request: pytest.FixtureRequest) -> Iterator[Captured]:
    limiter = RepeatLimiter(burst=3, per=600.0, clock=clock)
    instance = Captured(limiter, f"tidegate.test.{request.node.name}")
    yield instance
    instance.logger.handlers.clear()


def broker_down(log: logging.Logger, attempt: int) -> None:
    # One call site, like the publisher's: the numbers change, the message does not.
    log.warning(
        "broker %s unavailable (%s); retrying in %.1f s (attempt %d)",
        "mqtt.example:8883",
        "Connection refused",
        attempt * 0.5,
        attempt,
    )


def test_a_repeated_line_is_written_burst_times_then_counted(
    captured: Captured, clock: Clock
) -> None:
    for attempt in range(1, 101):
        broker_down(captured.logger, attempt)
        clock.now += 2
    lines = captured.lines
    assert len(lines) == 3
    assert lines[0].startswith("WARNING broker mqtt.example:8883 unavailable")
    assert lines[2].endswith(
        "[limit of 3 like this per 10 min reached; more are suppressed for 10 min]"
    )
    assert captured.handler.filters[0].suppressed_total == 97  # type: ignore[union-attr]

    # The window ends: the count is written, then the next line of the kind.
    clock.now += 600
    broker_down(captured.logger, 101)
    assert captured.lines[3:] == [
        "WARNING 97 more lines like “broker %s unavailable (%s); retrying in %.1f s "
        "(attempt %d)” were suppressed in 13 min",
        "WARNING broker mqtt.example:8883 unavailable (Connection refused); retrying in 50.5 s "
        "(attempt 101)",
    ]


def test_other_kinds_of_lines_are_not_held_back(captured: Captured) -> None:
    for _ in range(10):
        broker_down(captured.logger, 1)
    captured.logger.error("serial port %s: %s", "/dev/ttyUSB0", "device disconnected")
    captured.logger.error("serial port %s: %s", "/dev/ttyUSB1", "device disconnected")
    captured.logger.error("a line with no arguments")
    lines = captured.lines
    assert len(lines) == 3 + 3
    assert "ttyUSB0" in lines[3] and "ttyUSB1" in lines[4]


def test_a_window_that_ended_quietly_gets_its_count_written(
    captured: Captured, clock: Clock
) -> None:
    for attempt in range(20):
        broker_down(captured.logger, attempt)
    clock.now += 900  # the broker came back; nothing of that kind since
    captured.logger.info("connected to broker")
    lines = captured.lines
    assert lines[3] == (
        "WARNING 17 more lines like “broker %s unavailable (%s); retrying in %.1f s "
        "(attempt %d)” were suppressed in 15 min"
    )
    assert lines[4] == "INFO connected to broker"


def test_a_summary_keeps_no_traceback_alive_and_keys_are_bounded(clock: Clock) -> None:
    limiter = RepeatLimiter(burst=1, per=60.0, clock=clock, max_keys=5)
    captured = Captured(limiter, "tidegate.test.bounded")
    try:
        for n in range(50):
            for _ in range(2):  # the second is suppressed: burst 1
                captured.logger.error("driver %s crashed", f"d{n}")
        assert len(limiter._windows) <= 5
        # Forgotten windows had their counts written as they went.
        assert sum("1 more line like" in line for line in captured.lines) == 45
    finally:
        captured.logger.handlers.clear()


def test_install_replaces_and_removes_the_limiter() -> None:
    logger = logging.getLogger("tidegate.test.install")
    handler = logging.StreamHandler(io.StringIO())
    logger.handlers[:] = [handler]
    try:
        first = install_rate_limit(RateLimitSection(burst=2, per=10), logger)
        second = install_rate_limit(RateLimitSection(burst=4, per=10), logger)
        assert first is not None and second is not None
        assert handler.filters == [second] and second.burst == 4
        assert install_rate_limit(None, logger) is None
        assert handler.filters == []
    finally:
        logger.handlers.clear()
    assert LoggingSection().rate_limit == RateLimitSection(burst=5, per=3600.0)
    assert LoggingSection.model_validate({"rate_limit": None}).rate_limit is None
    assert RateLimitSection.model_validate({"per": "1d"}).per == 86400.0


LOG_A_THOUSAND_TIMES = """
import logging
from tidegate.ops.config import RateLimitSection
from tidegate.ops.log_limit import install_rate_limit
from tidegate.ops.logs import setup_logging

setup_logging("info")
install_rate_limit(RateLimitSection(burst=5, per=3600))
log = logging.getLogger("tidegate.drivers.serial")
for attempt in range(1000):
    log.error("%s: cannot open %s (attempt %d)", "meter", "/dev/ttyUSB0", attempt)
log.info("done")
"""


def test_a_process_under_journald_writes_few_lines_without_timestamps() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOG_A_THOUSAND_TIMES],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "JOURNAL_STREAM": "8:12345"},  # what systemd sets for journald
    )
    lines = done.stderr.splitlines()
    assert len(lines) == 6, lines
    assert all(
        line.startswith("ERROR tidegate.drivers.serial: meter: cannot open") for line in lines[:5]
    )
    assert "suppressed for" in lines[4]
    assert lines[5] == "INFO tidegate: done" or lines[5].startswith("INFO ")


def test_the_gateway_takes_its_log_level_and_rate_limit_from_the_config(tmp_path: Path) -> None:
    # Nothing listens on this port: the publisher logs that the broker is unavailable.
    config = write_config(
        tmp_path / "tidegate.yaml",
        f"""
gateway: {{id: quiet, data_dir: {tmp_path / "data"}}}
mqtt: {{host: 127.0.0.1, port: {free_port()}, reconnect: {{initial_delay: 1s, max_delay: 1s}}}}
control: {{socket: {tmp_path / "control.sock"}}}
logging: {{level: warning, rate_limit: {{burst: 1, per: 1h}}}}
drivers:
  - name: alpha
    type: sim
    signals: [{{name: n, kind: counter, rate: 5}}]
""",
    )
    gateway = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        process = gateway.process
        assert process is not None
        wait_until(
            lambda: "unavailable" in gateway.output() or process.poll() is not None,
            30,
            "the broker-down warning",
        )
        assert process.poll() is None, gateway.output()
    finally:
        assert gateway.stop() == 0, gateway.output()
    lines = [line for line in gateway.output().splitlines() if " tidegate" in line]
    assert not [line for line in lines if " INFO " in line], lines  # level: warning
    [unavailable] = [line for line in lines if "unavailable" in line]
    assert unavailable.endswith(
        "[limit of 1 like this per 60 min reached; more are suppressed for 60 min]"
    )
