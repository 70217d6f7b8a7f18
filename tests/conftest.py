from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tidegate.demo.local_broker import LocalBroker, find_mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A real Mosquitto on a free loopback port, stopped after the test."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed; ./dev test installs it")
    instance = LocalBroker(tmp_path / "broker")
    instance.start()
    try:
        yield instance
    finally:
        instance.kill()
