"""A stand-in for Azure IoT Hub's MQTT endpoint (no real hub is reachable from here), and
Microsoft's own SAS token code to check ours against.

``FakeHub`` serves TLS on loopback, records each CONNECT (client id, user name,
password, Last Will) and every PUBLISH, acknowledges QoS 1, and, like the hub, closes a
connection whose SAS token expires (its ``se``). ``sdk_token`` is the token that the
Azure IoT device SDK for Python (``azure-iot-device``, installed by ``./dev setup``
without its dependencies: it pins paho-mqtt 1.x) makes for the same inputs: its two
token modules are loaded from their files, without the SDK's package around them.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.mqtt.support import FakeBroker, read_packet

PUBLISH, SUBSCRIBE, PINGREQ, DISCONNECT = 3, 8, 12, 14
CONNACK_OK = b"\x20\x02\x00\x00"


def _sdk_module(name: str) -> ModuleType:
    try:
        dist = importlib.metadata.distribution("azure-iot-device")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("azure-iot-device is not installed; ./dev setup installs it")
    path = Path(str(dist.locate_file(f"azure/iot/device/common/auth/{name}.py")))
    spec = importlib.util.spec_from_file_location(f"azure_sdk_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sdk_token(uri: str, key_b64: str, expiry: int, key_name: str | None = None) -> str:
    """The SDK's ``RenewableSasToken`` for ``uri``, made so that it expires at ``expiry``."""
    sastoken = _sdk_module("sastoken")
    signing = _sdk_module("signing_mechanism")
    sastoken.__dict__["time"] = SimpleNamespace(time=lambda: float(expiry))  # its clock: se
    token = sastoken.RenewableSasToken(
        uri, signing.SymmetricKeySigningMechanism(key_b64), key_name=key_name, ttl=0
    )
    assert token.expiry_time == expiry
    return str(token)


def token_fields(token: str) -> dict[str, str]:
    assert token.startswith("SharedAccessSignature ")
    return dict(parse_qsl(token.removeprefix("SharedAccessSignature "), keep_blank_values=True))


def _length(n: int) -> bytes:
    out = b""
    while True:
        digit, n = n % 128, n // 128
        out += bytes([digit | (0x80 if n else 0)])
        if not n:
            return out


def _field(body: bytes, at: int) -> tuple[bytes, int]:
    n = int.from_bytes(body[at : at + 2], "big")
    return body[at + 2 : at + 2 + n], at + 2 + n


@dataclass
class Login:
    """One CONNECT the hub got, and how its connection ended."""

    at: float
    level: int
    client_id: str
    username: str | None
    password: str | None
    will_topic: str | None
    ended: str = ""
    """``disconnect`` (the client's DISCONNECT), ``expired`` (the hub closed it at the
    token's expiry) or ``lost``."""
    ended_at: float = 0.0

    @property
    def expiry(self) -> int:
        assert self.password is not None
        return int(token_fields(self.password)["se"])


def parse_connect(body: bytes) -> Login:
    name, at = _field(body, 0)
    assert name == b"MQTT"
    level, flags = body[at], body[at + 1]
    at += 4  # level, flags, keep-alive
    client_id, at = _field(body, at)
    will_topic = None
    if flags & 0x04:
        topic, at = _field(body, at)
        will_topic = topic.decode()
        _, at = _field(body, at)
    username = password = None
    if flags & 0x80:
        raw, at = _field(body, at)
        username = raw.decode()
    if flags & 0x40:
        raw, at = _field(body, at)
        password = raw.decode()
    return Login(time.time(), level, client_id.decode(), username, password, will_topic)


@dataclass
class FakeHub:
    server_tls: ssl.SSLContext
    logins: list[Login] = field(default_factory=list)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    client_certificates: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)
    """Every topic filter a device subscribed to (IoT Hub takes only its own)."""
    _writer: asyncio.StreamWriter | None = None

    def invoke(self, method: str, payload: bytes, rid: str) -> None:
        """Call a direct method on the connected device, as the hub does (QoS 0)."""
        assert self._writer is not None, "no device connected"
        topic = f"$iothub/methods/POST/{method}/?$rid={rid}".encode()
        body = len(topic).to_bytes(2, "big") + topic + payload
        self._writer.write(bytes([PUBLISH << 4]) + _length(len(body)) + body)

    def broker(self) -> FakeBroker:
        hub = self

        class TlsBroker(FakeBroker):
            async def _listen(self) -> asyncio.Server:
                return await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=hub.server_tls)

        return TlsBroker(self._script)

    async def _script(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        kind, _, body = await read_packet(reader)
        assert kind == 1, kind
        login = parse_connect(body)
        self.logins.append(login)
        cert = writer.get_extra_info("peercert")
        if cert:
            self.client_certificates.append(cert)
        writer.write(CONNACK_OK)
        self._writer = writer
        until = login.expiry - time.time() if login.password is not None else None
        try:
            await asyncio.wait_for(self._serve(login, reader, writer), until)
        except TimeoutError:
            login.ended = "expired"  # as IoT Hub does once a token expires
        except (asyncio.IncompleteReadError, ConnectionError):
            login.ended = "lost"
        login.ended_at = time.time()

    async def _serve(
        self, login: Login, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            kind, flags, body = await read_packet(reader)
            if kind == DISCONNECT:
                login.ended = "disconnect"
                return
            if kind == PINGREQ:
                writer.write(b"\xd0\x00")
            elif kind == SUBSCRIBE:
                granted, at = b"", 2
                while at < len(body):
                    topic, at = _field(body, at)
                    at += 1  # the requested QoS
                    self.subscriptions.append(topic.decode())
                    ok = topic.startswith(b"$iothub/")
                    granted += b"\x01" if ok else b"\x80"
                writer.write(b"\x90" + _length(2 + len(granted)) + body[:2] + granted)
            elif kind == PUBLISH:
                topic, at = _field(body, 0)
                if (flags >> 1) & 3:
                    writer.write(b"\x40\x02" + body[at : at + 2])
                    at += 2
                self.messages.append((topic.decode(), body[at:]))


def server_context(pki: dict[str, Path], *, client_certificates: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["server.crt"], pki["server.key"])
    if client_certificates:
        context.load_verify_locations(pki["ca.crt"])
        context.verify_mode = ssl.CERT_REQUIRED
    return context
