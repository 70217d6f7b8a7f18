"""``preset: azure_iot_hub`` end to end, against a stand-in for IoT Hub's MQTT endpoint
(``fake_hub``: TLS on loopback; like the hub, it closes a connection when its SAS
token expires): what each CONNECT carries, where messages go, the login renewed
before the token expires with nothing lost, and X.509 without a password."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mqtt.support import make_pki, until
from tests.support import assert_contiguous
from tests.uplink.fake_hub import FakeHub, sdk_token, server_context, token_fields
from tidegate.config.loader import load_config_text
from tidegate.pipeline import Gateway
from tidegate.uplink.formats import FormatContext, FormatError, format_named
from tidegate.uplink.presets.base import preset_for

KEY = base64.b64encode(b"a device key of 32 bytes, random").decode()
HUB = "testhub.azure-devices.net"
EVENTS = "devices/farm-7/messages/events/"
STATUS = EVENTS + "$.ct=text%2Fplain&$.ce=utf-8&tidegate=status"
LIFETIME = 5


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


def config(tmp: Path, pki: dict[str, Path], *, tls: str = "", azure: str = "") -> str:
    """The gateway's file; PORT is the hub's, known once it listens."""
    return f"""
gateway: {{id: farm-7, data_dir: {tmp / "data"}}}
mqtt:
  host: 127.0.0.1
  port: PORT
  preset: azure_iot_hub
  tls: {{ca_file: {pki["ca.crt"]}{tls}}}
  azure: {{device_id: farm-7, hub: {HUB}{azure}}}
  reconnect: {{initial_delay: 50ms, max_delay: 100ms}}
buffer: {{commit_interval: 20ms}}
drivers:
  - name: s1
    type: sim
    signals: [{{name: n, kind: counter, rate: 100}}]
"""


def run_gateway(text: str, hub: FakeHub, done: Callable[[], bool], within: float) -> Gateway:
    async def main() -> None:
        async with hub.broker() as broker:
            gateway = Gateway(load_config_text(text.replace("PORT", str(broker.port))))
            holder.append(gateway)
            stop = asyncio.Event()
            task = asyncio.create_task(gateway.run(stop))
            try:
                await until(done, within, "the hub to see it")
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)

    holder: list[Gateway] = []
    asyncio.run(main())
    return holder[0]


def events_of(hub: FakeHub) -> list[dict[str, object]]:
    return [json.loads(payload) for topic, payload in hub.messages if topic != STATUS]


def test_sas_logins_are_renewed_before_they_expire_and_nothing_is_lost(
    tmp_path: Path, pki: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    (tmp_path / "key").write_text(KEY)
    hub = FakeHub(server_context(pki))
    login = f", device_key_file: {tmp_path / 'key'}, sas_token_lifetime: {LIFETIME}s"
    gateway = run_gateway(
        config(tmp_path, pki, azure=login),
        hub,
        lambda: len(hub.logins) >= 3 and len(events_of(hub)) > 3 * 100 * 0.8 * (LIFETIME - 1),
        within=4 * LIFETIME + 10,
    )
    logins = hub.logins
    for login_ in logins:
        assert login_.level == 4  # MQTT 3.1.1
        assert login_.client_id == "farm-7"
        assert login_.username == f"{HUB}/farm-7/?api-version=2021-04-12"
        assert login_.will_topic == STATUS
        # Each password a valid token, as Microsoft's SDK makes it for that expiry.
        assert login_.password == sdk_token(f"{HUB}/devices/farm-7", KEY, login_.expiry)
        assert token_fields(login_.password)["sr"] == f"{HUB}/devices/farm-7"
    assert len({login_.password for login_ in logins}) == len(logins)  # fresh each time
    for before, after in itertools.pairwise(logins):
        # Renewed by the gateway (its DISCONNECT), not dropped by the hub at expiry; and
        # the new login came before the old token expired (the hub ends a connection at
        # its token's expiry: this bound cannot be met by a reconnect after a drop).
        assert before.ended == "disconnect", before
        assert after.at < before.expiry, (after.at, before.expiry)
        # ... yet not long before: at 80% of the token's real lifetime (4 to 5 s here).
        assert after.at - before.at > 0.6 * (LIFETIME - 1)
        assert after.expiry > before.expiry
    events = events_of(hub)
    assert_contiguous(events)  # per source, seq 1..max: nothing lost across renewals
    topics = {topic for topic, _ in hub.messages}
    assert topics == {STATUS, EVENTS + "$.ct=application%2Fjson&$.ce=utf-8&source=s1&name=n"}
    assert [p for t, p in hub.messages if t == STATUS].count(b"online") == len(logins)
    assert gateway.publisher is not None and gateway.publisher.status.connects == len(logins)
    assert "renewing the login" in caplog.text
    for secret in (KEY, "SharedAccessSignature", *(login_.password or "" for login_ in logins)):
        assert secret not in caplog.text
        assert secret not in repr(gateway.publisher.status)


def test_x509_logs_in_with_the_certificate_and_no_password(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    hub = FakeHub(server_context(pki, client_certificates=True))
    cert = f", cert_file: {pki['client.crt']}, key_file: {pki['client.key']}"
    run_gateway(
        config(tmp_path, pki, tls=cert),
        hub,
        lambda: len(events_of(hub)) >= 20,
        within=15,
    )
    (login,) = hub.logins
    assert login.password is None
    assert login.username == f"{HUB}/farm-7/?api-version=2021-04-12"
    (certificate,) = hub.client_certificates
    assert certificate["subject"] == ((("commonName", "gateway"),),)
    assert_contiguous(events_of(hub))


def test_messages_carry_their_content_type_and_the_events_source_and_name() -> None:
    def section(fmt: str, per_message: int = 1) -> object:
        text = (
            "mqtt:\n  host: h.azure-devices.net\n  preset: azure_iot_hub\n"
            f"  format: {fmt}\n  events_per_message: {per_message}\n"
            "  tls: {cert_file: c, key_file: k}\n  azure: {device_id: farm-7}\n"
            "drivers: [{name: s, type: sim, signals: [{name: t, kind: sine, rate: 1}]}]\n"
        )
        return load_config_text(text).mqtt

    stored = json.dumps({"source": "barn door", "name": "open&shut", "value": 1}).encode()
    for fmt, per_message, media in [
        ("json", 1, "application%2Fjson"),
        ("cloudevents", 1, "application%2Fcloudevents%2Bjson"),
        ("cloudevents", 10, "application%2Fcloudevents-batch%2Bjson"),
        ("influx", 1, "text%2Fplain"),
    ]:
        mqtt = section(fmt, per_message)
        preset = preset_for(mqtt, None)  # type: ignore[arg-type]
        wrapped = preset.wrap(format_named(fmt, FormatContext(STATUS)))
        assert wrapped.name == f"{fmt} for Azure IoT Hub"
        assert wrapped.topic_for("tidegate/farm-7/x/y", stored) == (
            f"{EVENTS}$.ct={media}&$.ce=utf-8&source=barn%20door&name=open%26shut"
        )
        assert preset.unbuffered_topic("tidegate/farm-7/metrics") == (
            EVENTS + "$.ct=application%2Fjson&$.ce=utf-8&tidegate=metrics"
        )
    with pytest.raises(FormatError, match="not a JSON event"):
        wrapped.topic_for("t", b"\xff")


def test_direct_methods_are_commands_answered_the_hubs_way(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    hub = FakeHub(server_context(pki))
    text = (
        config(
            tmp_path, pki, tls=f", cert_file: {pki['client.crt']}, key_file: {pki['client.key']}"
        )
        + "commands:\n  allow: [{name: ping}, {name: status}]\n"
    )
    answers = "$iothub/methods/res/"

    def answered(rid: str) -> tuple[str, dict[str, object]] | None:
        for topic, payload in hub.messages:
            if topic.startswith(answers) and topic.endswith(f"?$rid={rid}"):
                return topic[len(answers) :].split("/")[0], json.loads(payload)
        return None

    async def main() -> None:
        async with hub.broker() as broker:
            gateway = Gateway(load_config_text(text.replace("PORT", str(broker.port))))
            stop = asyncio.Event()
            task = asyncio.create_task(gateway.run(stop))
            try:
                await until(lambda: bool(hub.subscriptions), 10, "the methods subscription")
                hub.invoke("ping", b"{}", "1")
                hub.invoke("reboot", b'{"now": true}', "2")
                hub.invoke("status", b"", "3")
                await until(lambda: all(answered(r) for r in "123"), 10, "the answers")
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)

    asyncio.run(main())
    # Only the hub's own topic: IoT Hub ends a connection that subscribes elsewhere.
    assert hub.subscriptions == ["$iothub/methods/POST/#"]
    ping, reboot, status = (answered(r) for r in "123")
    assert ping is not None and ping[0] == "200" and "pong" in ping[1]["result"]  # type: ignore[operator]
    assert reboot == ("404", {"reason": "unknown_command", "message": reboot[1]["message"]})  # type: ignore[index]
    assert status is not None and status[0] == "200"
