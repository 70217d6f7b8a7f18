"""``mqtt.preset`` at load: what each cloud decides is filled in, what it refuses is
reported at the key to change, as ``FILE:LINE:COL: key.path: message``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tidegate.config.loader import load_config_text
from tidegate.config.schema import GatewayConfig
from tidegate.errors import ConfigError

DRIVERS = """drivers:
  - {name: s, type: sim, signals: [{name: n, kind: counter, rate: 10}]}
"""
AWS_OK = """mqtt:
  host: abc123-ats.iot.eu-west-1.amazonaws.com
  preset: aws_iot
  client_id: farm-7
  tls: {ca_file: ca.pem, cert_file: farm-7.crt, key_file: farm-7.key}
"""
AZURE_OK = """mqtt:
  host: myhub.azure-devices.net
  preset: azure_iot_hub
  azure: {device_id: farm-7, device_key_file: key}
"""


def load(mqtt: str, extra: str = "") -> GatewayConfig:
    return load_config_text("gateway: {id: farm-7}\n" + mqtt + DRIVERS + extra, "gw.yaml")


def problems(mqtt: str, extra: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(mqtt, extra)
    return caught.value.messages


def test_aws_iot_lowers_the_size_and_inflight_limits_and_takes_port_8883() -> None:
    mqtt = load(AWS_OK).mqtt
    assert mqtt is not None
    assert (mqtt.max_message_bytes, mqtt.max_inflight, mqtt.effective_port) == (131072, 100, 8883)
    assert load(AWS_OK).client_id == "farm-7"
    assert load(AWS_OK + "  max_message_bytes: 64KiB\n").mqtt.max_message_bytes == 65536  # type: ignore[union-attr]


def test_aws_iot_refuses_what_aws_would() -> None:
    assert problems("mqtt:\n  host: a.amazonaws.com\n  preset: aws_iot\n") == [
        "gw.yaml:4:11: mqtt.preset: preset aws_iot: AWS IoT takes only TLS with the device's "
        "certificate: give `tls: {ca_file: AmazonRootCA1.pem, cert_file: ..., key_file: ...}`",
        "gw.yaml:4:11: mqtt.preset: preset aws_iot needs `client_id`: the thing's name (AWS IoT "
        "policies usually let a certificate connect only as its thing)",
    ]
    found = problems(
        AWS_OK.replace("client_id: farm-7", "client_id: farm 7/a").replace(
            "cert_file: farm-7.crt, key_file: farm-7.key", ""
        )
        + "  max_message_bytes: 200KiB\n  max_inflight: 500\n"
    )
    assert found == [
        "gw.yaml:5:14: mqtt.client_id: an AWS IoT thing name (the client id) is 1 to 128 "
        "letters, digits, ':', '_' or '-'",
        "gw.yaml:6:3: mqtt.tls: preset aws_iot: AWS IoT takes only TLS with the device's "
        "certificate: give `tls: {ca_file: AmazonRootCA1.pem, cert_file: ..., key_file: ...}`",
        "gw.yaml:7:22: mqtt.max_message_bytes: AWS IoT takes messages of at most 128 KiB "
        "(131072 B)",
        "gw.yaml:8:17: mqtt.max_inflight: AWS IoT takes at most 100 unacknowledged messages "
        "from a client",
    ]


def test_aws_iot_checks_the_topic_templates_fixed_parts_at_load() -> None:
    (deep,) = problems(AWS_OK + "  topic: '{prefix}/a/b/c/d/e/{source}/{name}'\n")
    assert deep == (
        "gw.yaml:7:10: mqtt.topic: topics of the template "
        "'tidegate/{gateway}/a/b/c/d/e/{source}/{name}' have 8 slashes; AWS IoT takes at most 7"
    )
    (prefix,) = problems(
        AWS_OK + "  topic_prefix: 'x/y/z/u/v/w/q/{gateway}'\n  topic: 'x/{name}'\n"
    )
    assert prefix.startswith("gw.yaml:7:17: mqtt.topic_prefix: the status topic: ")
    assert "have 8 slashes" in prefix
    (long,) = problems(AWS_OK + f"  topic: '{'t' * 251}/{{source}}/{{name}}/xyz'\n")
    assert "mqtt.topic: topics of the template" in long and "are at least 257 bytes" in long
    rules = """rules:
  - name: fine
    match: {name: n}
    publish: {topic: "site/{gateway}/{source}", continue: true}
  - name: deep
    match: {name: n}
    publish: {topic: "site/{gateway}/a/b/c/d/e/f/{source}"}
"""
    (rule,) = problems(AWS_OK, rules)
    assert rule.startswith("gw.yaml:15:22: rules[1].publish.topic: topics of the template")
    assert "'site/{gateway}/a/b/c/d/e/f/{source}' have 8 slashes" in rule
    load(AWS_OK + "  topic: '{prefix}/a/b/c/d/{source}/{name}'\n")  # 7: fine


def test_azure_iot_hub_fills_in_what_the_hub_decides() -> None:
    config = load(AZURE_OK)
    mqtt = config.mqtt
    assert mqtt is not None and mqtt.azure is not None
    assert config.client_id == "farm-7"
    assert mqtt.username == "myhub.azure-devices.net/farm-7/?api-version=2021-04-12"
    assert mqtt.protocol == "3.1.1" and mqtt.tls is not None and mqtt.effective_port == 8883
    assert mqtt.max_message_bytes == 256 * 1024
    assert mqtt.azure.sas_token_lifetime == 3600
    assert str(mqtt.azure.device_key_file).endswith("/key")  # relative to the file
    other = load(AZURE_OK.replace("farm-7,", "farm-7, hub: h2.azure-devices.net,")).mqtt
    assert (
        other is not None
        and other.username == "h2.azure-devices.net/farm-7/?api-version=2021-04-12"
    )


def test_azure_iot_hub_refuses_what_the_hub_would() -> None:
    assert problems(AZURE_OK + "  username: me\n  password_env: PW\n") == [
        "gw.yaml:6:3: mqtt.username: preset azure_iot_hub makes the user name itself "
        "(<hub>/<device id>/?api-version=2021-04-12): leave it out",
        "gw.yaml:7:3: mqtt.password_env: with preset azure_iot_hub the password is a SAS token "
        "made from the device key (`azure.device_key_file`, `_env` or `_credential`): leave it out",
    ]
    found = problems(
        AZURE_OK
        + "  protocol: '5'\n  client_id: other\n  max_message_bytes: 1MiB\n  format: thingsboard\n"
    )
    assert [m.split(": ", 2)[:2] for m in found] == [
        ["gw.yaml:6:13", "mqtt.protocol"],
        ["gw.yaml:7:14", "mqtt.client_id"],
        ["gw.yaml:8:22", "mqtt.max_message_bytes"],
        ["gw.yaml:9:11", "mqtt.format"],
    ]
    assert "Azure IoT Hub speaks MQTT 3.1.1" in found[0]
    assert "the client id is the device id ('farm-7')" in found[1]
    (neither,) = problems(AZURE_OK.replace(", device_key_file: key", ""))
    assert neither.startswith("gw.yaml:5:3: mqtt.azure: the device logs in with a SAS token")
    (both,) = problems(AZURE_OK + "  tls: {cert_file: c.pem, key_file: k.pem}\n")
    assert "not both" in both
    (missing,) = problems("mqtt:\n  host: h.azure-devices.net\n  preset: azure_iot_hub\n")
    assert missing.startswith("gw.yaml:4:11: mqtt.preset: preset azure_iot_hub needs `azure:")


@pytest.mark.parametrize(
    ("azure", "where", "message"),
    [
        (
            "{device_id: 'farm 7', device_key_env: K}",
            "mqtt.azure.device_id",
            "device id is at most",
        ),
        ("{device_id: d, hub: 'not a host', device_key_env: K}", "mqtt.azure.hub", "host name"),
        ("{device_id: d, device_key_env: K, device_key_file: f}", "mqtt.azure", "one way"),
        (
            "{device_id: d, device_key_env: K, sas_token_lifetime: 1s}",
            "mqtt.azure.sas_token_lifetime",
            "2",
        ),
        ("{device_id: d, device_key: abc}", "mqtt.azure.device_key", "did you mean"),
    ],
)
def test_the_azure_section_is_checked_key_by_key(azure: str, where: str, message: str) -> None:
    (found,) = problems(
        f"mqtt:\n  host: h.azure-devices.net\n  preset: azure_iot_hub\n  azure: {azure}\n"
    )
    assert f": {where}" in found and message in found, found


def test_the_azure_section_goes_with_its_preset() -> None:
    (found,) = problems("mqtt:\n  host: b\n  azure: {device_id: d}\n")
    assert found.startswith("gw.yaml:4:3: mqtt.azure: `azure:` goes with `preset: azure_iot_hub`")


def test_fallbacks_are_refused_with_a_preset() -> None:
    (found,) = problems(AWS_OK + "  fallbacks: [{host: other.amazonaws.com}]\n")
    assert found.startswith("gw.yaml:7:3: mqtt.fallbacks: fallbacks are not for preset aws_iot")


def test_the_readmes_preset_examples_load_as_they_are() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Cloud presets", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    presets = [load_config_text(block, "README.md").mqtt for block in blocks]
    assert [m.preset for m in presets if m is not None] == ["aws_iot", "azure_iot_hub"]
