"""What ``mqtt.preset`` changes and checks when the file is loaded.

Imported by the schema for every file: the standard library and the config types only.
A preset fills in what the cloud decides (``preset_defaults``, before validation: the
values then go through the usual checks) and refuses what the cloud would refuse
(``preset_problems``, after it), each problem at the key to change.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from tidegate.config.located_errors import ProblemList
from tidegate.config.types import Duration, Section

if TYPE_CHECKING:
    from tidegate.config.schema import MqttSection

PresetName = Literal["aws_iot", "azure_iot_hub"]

AWS_MAX_MESSAGE = 128 * 1024
"""AWS IoT Core: the largest PUBLISH payload (128 KB)."""
AWS_MAX_TOPIC_BYTES = 256
AWS_MAX_SLASHES = 7
AWS_MAX_INFLIGHT = 100
"""AWS IoT Core: unacknowledged QoS-1 messages from one client, at most."""
AWS_THING_NAME = re.compile(r"[A-Za-z0-9:_-]{1,128}")

AZURE_MAX_MESSAGE = 256 * 1024
"""Azure IoT Hub: the largest device-to-cloud message (256 KB)."""
AZURE_API_VERSION = "2021-04-12"
AZURE_DEVICE_ID = re.compile(r"[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


class AzureIotHubSection(Section):
    """``mqtt.azure`` with ``preset: azure_iot_hub``: which device this gateway is, and
    how it logs in (its X.509 certificate in ``tls``, or a SAS token from its key)."""

    device_id: str = Field(
        min_length=1,
        max_length=128,
        description="The device's id in the hub (also the MQTT client id).",
    )
    hub: str | None = Field(
        None,
        min_length=1,
        description="The hub's host name, e.g. `myhub.azure-devices.net`; default: `host`.",
    )
    device_key_file: Path | None = Field(
        None,
        description="File holding the device's key (base64, as the portal shows it): SAS "
        "tokens are made from it. Without a key: X.509 (`tls.cert_file`, `tls.key_file`).",
    )
    device_key_env: str | None = Field(
        None, description="Environment variable holding the device's key."
    )
    device_key_credential: str | None = Field(
        None, description="systemd credential name (`LoadCredential=`) holding the device's key."
    )
    key_name: str | None = Field(
        None,
        min_length=1,
        description="With a shared access policy's key rather than the device's own: the "
        "policy's name (the token's `skn`).",
    )
    sas_token_lifetime: Duration = Field(
        3600.0,
        ge=2,
        le=365 * 86400,
        description="How long each SAS token is valid. A new one is made on every connect, "
        "and the connection is renewed (a clean reconnect) at 80% of its lifetime.",
    )

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, value: str) -> str:
        if not AZURE_DEVICE_ID.fullmatch(value):
            raise ValueError(
                "an IoT Hub device id is at most 128 letters, digits and - . % _ * ? ! ( ) , "
                ": = @ $ '"
            )
        return value

    @field_validator("hub")
    @classmethod
    def _hub(cls, value: str | None) -> str | None:
        if value is not None and not _HOST.fullmatch(value):
            raise ValueError("the hub is a host name, e.g. myhub.azure-devices.net")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> AzureIotHubSection:
        sources = [self.device_key_file, self.device_key_env, self.device_key_credential]
        if sum(s is not None for s in sources) > 1:
            raise ValueError(
                "give the device key one way: device_key_file, device_key_env or "
                "device_key_credential"
            )
        if self.key_name is not None and not self.has_key:
            raise ValueError("key_name goes with a device key (device_key_file, _env, ...)")
        return self

    @property
    def has_key(self) -> bool:
        return any(
            s is not None
            for s in (self.device_key_file, self.device_key_env, self.device_key_credential)
        )


def azure_username(hub: str, device_id: str) -> str:
    return f"{hub}/{device_id}/?api-version={AZURE_API_VERSION}"


def preset_defaults(data: Any) -> Any:
    """The raw ``mqtt:`` mapping with what its preset decides filled in (a copy)."""
    if not isinstance(data, dict):
        return data
    preset = data.get("preset")
    if preset == "aws_iot":
        return {"max_message_bytes": AWS_MAX_MESSAGE, "max_inflight": AWS_MAX_INFLIGHT, **data}
    if preset != "azure_iot_hub":
        return data
    problems = ProblemList()
    if "username" in data:
        problems.add(
            "preset azure_iot_hub makes the user name itself "
            f"(<hub>/<device id>/?api-version={AZURE_API_VERSION}): leave it out",
            "username",
            key=True,
        )
    for key in ("password_file", "password_env", "password_credential"):
        if key in data:
            problems.add(
                "with preset azure_iot_hub the password is a SAS token made from the device "
                "key (`azure.device_key_file`, `_env` or `_credential`): leave it out",
                key,
                key=True,
            )
    problems.raise_if_any()
    azure = data.get("azure")
    filled = {"protocol": "3.1.1", "tls": {}, **data}
    if isinstance(azure, dict) and isinstance(azure.get("device_id"), str):
        device_id = azure["device_id"]
        hub = azure.get("hub", data.get("host"))
        filled.setdefault("client_id", device_id)
        if isinstance(hub, str):
            filled["username"] = azure_username(hub, device_id)
    return filled


def aws_topic_problem(topic: str, what: str = "its topic") -> str | None:
    """Why AWS IoT refuses ``topic`` (None: it takes it)."""
    size = len(topic.encode())
    if size > AWS_MAX_TOPIC_BYTES:
        return f"{what} is {size} bytes; AWS IoT takes at most {AWS_MAX_TOPIC_BYTES}"
    slashes = topic.count("/")
    if slashes > AWS_MAX_SLASHES:
        return f"{what} has {slashes} slashes; AWS IoT takes at most {AWS_MAX_SLASHES}"
    return None


def aws_template_problem(template: str, prefix: str) -> str | None:
    """Why every topic ``template`` renders to breaks AWS IoT's rules: its slashes are
    known at load (values put in have theirs replaced), its length only in part."""
    full = template.replace("{prefix}", prefix)
    static = _PLACEHOLDER.sub("", full)
    size = len(static.encode())
    if size > AWS_MAX_TOPIC_BYTES:
        return (
            f"topics of the template '{full}' are at least {size} bytes; AWS IoT takes at "
            f"most {AWS_MAX_TOPIC_BYTES}"
        )
    slashes = static.count("/")
    if slashes > AWS_MAX_SLASHES:
        return (
            f"topics of the template '{full}' have {slashes} slashes; AWS IoT takes at most "
            f"{AWS_MAX_SLASHES}"
        )
    return None


def preset_problems(mqtt: MqttSection) -> None:
    """Raise what ``mqtt.preset`` refuses in ``mqtt``, each problem at its key."""
    problems = ProblemList()
    if mqtt.preset is not None and mqtt.fallbacks:
        problems.add(
            f"fallbacks are not for preset {mqtt.preset}: moving back probes the first broker "
            "as <client_id>-probe, a client id the cloud refuses",
            "fallbacks",
            key=True,
        )
    if mqtt.preset == "aws_iot":
        _aws(mqtt, problems)
    elif mqtt.preset == "azure_iot_hub":
        _azure(mqtt, problems)
    elif mqtt.azure is not None:
        problems.add("`azure:` goes with `preset: azure_iot_hub`", "azure", key=True)
    problems.raise_if_any()


def _aws(mqtt: MqttSection, problems: ProblemList) -> None:
    tls = mqtt.tls
    if tls is None or tls.cert_file is None:
        problems.add(
            "preset aws_iot: AWS IoT takes only TLS with the device's certificate: give "
            "`tls: {ca_file: AmazonRootCA1.pem, cert_file: ..., key_file: ...}`",
            *(("preset",) if tls is None else ("tls",)),
        )
    if mqtt.client_id is None:
        problems.add(
            "preset aws_iot needs `client_id`: the thing's name (AWS IoT policies usually "
            "let a certificate connect only as its thing)",
            "preset",
        )
    elif not AWS_THING_NAME.fullmatch(mqtt.client_id):
        problems.add(
            "an AWS IoT thing name (the client id) is 1 to 128 letters, digits, ':', '_' or '-'",
            "client_id",
        )
    if mqtt.max_message_bytes > AWS_MAX_MESSAGE:
        problems.add(
            f"AWS IoT takes messages of at most 128 KiB ({AWS_MAX_MESSAGE} B)", "max_message_bytes"
        )
    if mqtt.max_inflight > AWS_MAX_INFLIGHT:
        problems.add(
            f"AWS IoT takes at most {AWS_MAX_INFLIGHT} unacknowledged messages from a client",
            "max_inflight",
        )
    prefix = mqtt.topic_prefix
    for key, template in (("topic", mqtt.topic), ("topic_prefix", "{prefix}/status")):
        problem = aws_template_problem(template, prefix)
        if problem is not None:
            problems.add(problem if key == "topic" else f"the status topic: {problem}", key)


def _azure(mqtt: MqttSection, problems: ProblemList) -> None:
    azure = mqtt.azure
    if azure is None:
        problems.add(
            "preset azure_iot_hub needs `azure: {device_id: ..., device_key_file: ...}`",
            "preset",
        )
        return
    if mqtt.protocol != "3.1.1":
        problems.add("Azure IoT Hub speaks MQTT 3.1.1: leave `protocol` out", "protocol")
    if mqtt.client_id != azure.device_id:
        problems.add(
            f"on Azure IoT Hub the client id is the device id ('{azure.device_id}'): "
            "leave `client_id` out",
            "client_id",
        )
    if mqtt.tls is None:
        problems.add("Azure IoT Hub takes only TLS connections: give `tls: {}`", "tls")
    else:
        x509 = mqtt.tls.cert_file is not None
        if x509 and azure.has_key:
            problems.add(
                "give the device's key (a SAS token) or its certificate (X.509), not both",
                "azure",
            )
        if not x509 and not azure.has_key:
            problems.add(
                "the device logs in with a SAS token from its key (`device_key_file`, "
                "`device_key_env` or `device_key_credential`) or with its certificate "
                "(`tls: {cert_file, key_file}`): give one",
                "azure",
            )
    if mqtt.max_message_bytes > AZURE_MAX_MESSAGE:
        problems.add(
            f"Azure IoT Hub takes messages of at most 256 KiB ({AZURE_MAX_MESSAGE} B)",
            "max_message_bytes",
        )
    if mqtt.format in ("homeassistant", "thingsboard"):
        problems.add(
            f"format {mqtt.format} publishes on topics of its own; Azure IoT Hub takes only "
            "devices/<id>/messages/events/: use json, json_batch, cloudevents or influx",
            "format",
        )
