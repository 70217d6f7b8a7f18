"""The broker connection section shared by the uplink (`mqtt:`) and the `mqtt` driver."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError

from tests.support import run_in_process
from tidegate.backoff import ReconnectSection
from tidegate.config import schema
from tidegate.config.loader import load_config_text
from tidegate.demo.local_broker import free_port
from tidegate.errors import ConfigError
from tidegate.mqtt.connection import MqttConnection, TlsSection
from tidegate.pipeline import Gateway


def config(mqtt: str) -> str:
    return f"""
gateway: {{id: conn, data_dir: /tmp/unused}}
mqtt:
{mqtt}
drivers:
  - {{name: s, type: sim, signals: [{{name: n, kind: counter, rate: 10, count: 1}}]}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gw.yaml")
    return caught.value.messages


def test_the_uplink_reads_its_reconnect_policy_as_a_section() -> None:
    loaded = load_config_text(
        config("  host: broker\n  reconnect: {initial_delay: 250ms, max_delay: 1m, jitter: false}")
    )
    assert loaded.mqtt is not None
    assert loaded.mqtt.reconnect == ReconnectSection(initial_delay=0.25, max_delay=60, jitter=False)
    assert load_config_text(config("  host: broker")).mqtt == schema.MqttSection(host="broker")


def test_a_reconnect_range_upside_down_is_refused_where_it_is_written() -> None:
    (message,) = problems(config("  host: b\n  reconnect: {initial_delay: 10s, max_delay: 1s}"))
    assert message.startswith("gw.yaml:5:")
    assert "mqtt.reconnect" in message and "initial_delay must not exceed max_delay" in message


def test_the_old_reconnect_keys_point_to_the_new_section() -> None:
    (message,) = problems(config("  host: b\n  reconnect_min: 1s"))
    assert message.startswith("gw.yaml:5:3:")
    assert "unknown key 'reconnect_min' (did you mean 'reconnect'?)" in message


def test_tls_picks_the_secure_port_and_stays_importable_from_the_schema() -> None:
    assert MqttConnection(host="b").effective_port == 1883
    assert MqttConnection(host="b", tls=TlsSection()).effective_port == 8883
    assert MqttConnection(host="b", port=1234, tls=TlsSection()).effective_port == 1234
    assert schema.TlsSection is TlsSection


class LocalBrokerConnection(MqttConnection):
    """A section for a broker on the gateway, as the `mqtt` driver declares it."""

    host: str = MqttConnection.default_for("host", "127.0.0.1")
    protocol: Literal["3.1.1", "5"] = MqttConnection.default_for("protocol", "3.1.1")
    reconnect: ReconnectSection = MqttConnection.default_for(
        "reconnect", ReconnectSection(initial_delay=2), description="Waits between attempts."
    )


def test_a_subclass_changes_defaults_and_keeps_each_fields_bounds_and_text() -> None:
    section = LocalBrokerConnection()
    assert (section.host, section.protocol, section.reconnect.initial_delay) == (
        "127.0.0.1",
        "3.1.1",
        2,
    )
    assert MqttConnection(host="b").protocol == "5"  # the base keeps its own
    fields = LocalBrokerConnection.model_fields
    assert fields["host"].description == MqttConnection.model_fields["host"].description
    assert fields["reconnect"].description == "Waits between attempts."
    assert list(fields) == list(MqttConnection.model_fields)  # the reference's order
    with pytest.raises(ValidationError, match="at least 1 character"):
        LocalBrokerConnection(host="")
    with pytest.raises(ValidationError, match="protocol"):
        LocalBrokerConnection(protocol="4")


def test_the_section_imports_no_mqtt_client() -> None:
    # `tidegate check` loads it: paho (and ssl) are for the runtime modules only.
    code = (
        "import sys, tidegate.mqtt.connection; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paho', 'ssl', 'aiomqtt')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_publisher_waits_as_its_reconnect_section_says(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # No broker at the port: the first wait is exactly initial_delay (no jitter),
    # and a gateway in the middle of an hour's wait still stops at once.
    caplog.set_level(logging.WARNING, logger="tidegate.uplink.publisher")
    text = config(
        f"  host: 127.0.0.1\n  port: {free_port()}\n"
        "  reconnect: {initial_delay: 1h, max_delay: 2h, jitter: false}"
    ).replace("/tmp/unused", str(tmp_path))

    def waiting(gateway: Gateway) -> bool:
        return "retrying in" in caplog.text

    gateway = run_in_process(text, waiting)
    assert gateway.publisher is not None and gateway.publisher.status.connects == 0
    assert "retrying in 3600.0 s (attempt 1)" in caplog.text
