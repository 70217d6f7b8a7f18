"""What the publisher asks of ``mqtt.preset`` at run time (``preset_for``).

Five hooks, each a no-op without a preset (``Preset`` itself):

- ``password()`` for each CONNECT (a fresh SAS token on Azure IoT Hub),
- ``renewal()``: when the current connection's login must be renewed, if ever,
- ``status_topic`` and ``unbuffered_topic``: where the status (birth and Last Will)
  and metrics messages go,
- ``wrap(format)``: the format with the preset's topic rule applied to every event
  (``PresetFormat``): AWS IoT's limits checked, Azure's events topic put in. An event
  whose topic breaks the rule is refused alone (a ``FormatError``: dead-lettered with
  the reason), never its message's other events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, cast

from tidegate.config.schema import MqttSection
from tidegate.mqtt.credentials import Secret
from tidegate.uplink.formats import Announcement, Format

if TYPE_CHECKING:
    from tidegate.commands.native import NativeCommand

TopicRule = Callable[[str, bytes], str]
"""(the topic the format would use, the stored event) -> the topic to send it on."""


class Preset:
    """No preset: the configured password, and topics as they are."""

    def __init__(self, mqtt: MqttSection, password: Secret | None) -> None:
        self.mqtt = mqtt
        self._password = password

    def password(self) -> Secret | None:
        """The password for the next CONNECT."""
        return self._password

    def renewal(self) -> tuple[float, float] | None:
        """When to renew the connection that the last ``password()`` logged in: from and
        at the latest (``time.monotonic``); None: never."""
        return None

    def status_topic(self, topic: str) -> str:
        return topic

    def unbuffered_topic(self, topic: str) -> str | None:
        """The topic of a message from outside the outbox (metrics); None: not sent."""
        return topic

    def wrap(self, fmt: Format) -> Format:
        return fmt


def preset_for(mqtt: MqttSection, password: Secret | None) -> Preset:
    """The run-time side of ``mqtt.preset``; reads the device key (SecretUnreadable)."""
    # The presets' modules only for an uplink that has one.
    if mqtt.preset == "aws_iot":
        from tidegate.uplink.presets.aws_iot import AwsIot  # noqa: PLC0415

        return AwsIot(mqtt, password)
    if mqtt.preset == "azure_iot_hub":
        from tidegate.uplink.presets.azure_iot_hub import AzureIotHub  # noqa: PLC0415

        return AzureIotHub(mqtt, password)
    return Preset(mqtt, password)


class PresetFormat(Format):
    """A format whose events' topics go through a preset's ``TopicRule``; all else is
    the format's own."""

    reshapes: ClassVar[bool] = True
    retopics: ClassVar[bool] = True
    announces: ClassVar[bool] = True
    describes: ClassVar[bool] = True

    def __init__(self, inner: Format, rule: TopicRule) -> None:
        super().__init__(inner.context)
        self.inner = inner
        self._rule = rule

    def event(self, stored: bytes) -> bytes:
        return self.inner.event(stored) if self.inner.reshapes else stored

    def topic_for(self, routed: str, stored: bytes) -> str:
        inner = self.inner
        return self._rule(inner.topic_for(routed, stored) if inner.retopics else routed, stored)

    def join(self, events: Sequence[bytes]) -> bytes:
        return self.inner.join(events)

    def message(self, events: Sequence[bytes], *, batched: bool) -> bytes:
        return self.inner.message(events, batched=batched)

    def content_type(self, batched: bool) -> str | None:
        return self.inner.content_type(batched)

    def message_properties(self, events: Sequence[bytes]) -> bytes:
        return self.inner.message_properties(events) if self.inner.describes else b""

    def announce(self, stored: bytes, topic: str) -> list[Announcement]:
        return self.inner.announce(stored, topic) if self.inner.announces else []

    def reannounce(self) -> list[Announcement]:
        return self.inner.reannounce()

    def listens(self) -> list[str]:
        return self.inner.listens()

    def heard(self, topic: str, payload: bytes) -> bool:
        return self.inner.heard(topic, payload)

    def command_filters(self) -> list[str]:
        return self.inner.command_filters()

    def command_of(self, topic: str, payload: bytes) -> NativeCommand | None:
        return self.inner.command_of(topic, payload)


def with_topic_rule(
    fmt: Format, rule: TopicRule, broker: str, base: type[PresetFormat] | None = None
) -> Format:
    """``fmt`` with ``rule`` on every event's topic; named e.g. ``json for AWS IoT`` in
    the reasons of what it cannot write. ``base``: a preset's own PresetFormat."""
    named = type(
        f"{type(fmt).__name__}Preset",
        (base or PresetFormat,),
        {"name": f"{fmt.name} for {broker}"},
    )
    return cast(PresetFormat, named(fmt, rule))


async def when_idle(start: float, latest: float, idle: asyncio.Event) -> None:
    """Return once ``idle`` is set after ``start``, or at ``latest`` (monotonic): when a
    connection may end for a new login with the least sent again."""
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(idle.wait(), max(0.0, latest - time.monotonic()))
