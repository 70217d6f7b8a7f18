"""Fixtures of the wire client's tests used by more than one module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt.support import make_pki
from tidegate.demo.local_broker import LocalBroker


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(tmp_path: Path, pki: dict[str, Path]) -> Iterator[LocalBroker]:
    with LocalBroker(
        tmp_path / "tls-broker",
        extra_config=(
            f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\n"
            f"keyfile {pki['server.key']}\nrequire_certificate true\n"
        ),
    ) as instance:
        yield instance
