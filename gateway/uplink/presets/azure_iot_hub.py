"""``preset: azure_iot_hub`` at run time: the SAS login, and every message on the
device's events topic.

IoT Hub takes messages from a device only on ``devices/<id>/messages/events/``,
followed by a property bag (URL-encoded ``key=value`` pairs joined by ``&``) that
becomes the message's properties. Events go there with their content type and
encoding (``$.ct``, ``$.ce``: what IoT Hub's routing needs to query the body) and
their ``source`` and ``name`` as application properties, whatever topic their route
had; the gateway's status (birth and Last Will) and metrics messages with
``tidegate=status`` and ``tidegate=metrics``. The hub takes no subscription of a
device's own choosing: commands arrive as its direct methods (``azure_methods``).

With a device key, every CONNECT's password is a new SAS token (``sas``), and the
publisher renews the connection before it expires (``renewal``).
"""

from __future__ import annotations

from urllib.parse import quote

from tidegate.config.schema import MqttSection
from tidegate.mqtt.credentials import Secret, read_secret
from tidegate.uplink.formats import Format
from tidegate.uplink.formats.stored import stored_event
from tidegate.uplink.presets.azure_methods import AzureFormat
from tidegate.uplink.presets.base import Preset, with_topic_rule
from tidegate.uplink.presets.sas import SasLogin

_TYPES = {"influx": "text/plain"}
"""Content types of formats that do not say theirs (the others write JSON)."""
_KNOWN = 4096
"""Events topics remembered, at most (one per source and name)."""


def _bag(**properties: str) -> str:
    return "&".join(f"{quote(k, safe='$.')}={quote(v, safe='')}" for k, v in properties.items())


class AzureIotHub(Preset):
    def __init__(self, mqtt: MqttSection, password: Secret | None) -> None:
        super().__init__(mqtt, None)  # the password is a token, or none (X.509)
        azure = mqtt.azure
        assert azure is not None  # the schema makes sure
        self.device_id = azure.device_id
        self.hub = azure.hub or mqtt.host
        self.events = f"devices/{self.device_id}/messages/events/"
        what = "the Azure IoT Hub device key"
        key = read_secret(
            azure.device_key_file,
            azure.device_key_env,
            azure.device_key_credential,
            named=what,
            key="device_key_credential",
        )
        self.login = (
            SasLogin(
                f"{self.hub}/devices/{self.device_id}",
                key,
                key_name=azure.key_name,
                lifetime=azure.sas_token_lifetime,
                what=what,
            )
            if key is not None
            else None
        )
        self._topics: dict[tuple[str, str], str] = {}
        self._typed = self.events

    def password(self) -> Secret | None:
        return self.login.token() if self.login is not None else None

    def renewal(self) -> tuple[float, float] | None:
        return self.login.renewal if self.login is not None else None

    def status_topic(self, topic: str) -> str:
        return self.events + _bag(**{"$.ct": "text/plain", "$.ce": "utf-8", "tidegate": "status"})

    def unbuffered_topic(self, topic: str) -> str | None:
        kind = topic.rsplit("/", 1)[-1]
        return self.events + _bag(**{"$.ct": "application/json", "$.ce": "utf-8", "tidegate": kind})

    def wrap(self, fmt: Format) -> Format:
        batched = self.mqtt.events_per_message > 1
        media = fmt.content_type(batched) or _TYPES.get(fmt.name, "application/json")
        self._typed = self.events + _bag(**{"$.ct": media, "$.ce": "utf-8"})
        return with_topic_rule(fmt, self._topic, "Azure IoT Hub", AzureFormat)

    def _topic(self, routed: str, stored: bytes) -> str:
        doc = stored_event(stored, ("source", "name"))
        key = (doc["source"], doc["name"])
        topic = self._topics.get(key)
        if topic is None:
            if len(self._topics) >= _KNOWN:
                self._topics.clear()
            topic = self._topics[key] = f"{self._typed}&{_bag(source=key[0], name=key[1])}"
        return topic
