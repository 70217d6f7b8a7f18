"""Azure IoT Hub SAS tokens: ours against the ones Microsoft's device SDK makes from the
same key, resource and expiry; a fresh token for each connect and when to renew it; the
device key read like the MQTT password and never shown."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from tests.uplink.fake_hub import sdk_token, token_fields
from tidegate.config.schema import MqttSection
from tidegate.errors import SecretUnreadable
from tidegate.mqtt.credentials import Secret
from tidegate.uplink.presets.azure_iot_hub import AzureIotHub
from tidegate.uplink.presets.base import preset_for
from tidegate.uplink.presets.sas import RENEW_FROM, SasLogin, sas_token

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(hashlib.sha256(b"another device").digest()).decode()


@pytest.mark.parametrize(
    ("resource", "key", "key_name"),
    [
        ("myhub.azure-devices.net/devices/farm-7", KEY, None),
        ("myhub.azure-devices.net/devices/pump.2(east)!=@$'*", OTHER_KEY, None),
        ("other-hub.azure-devices.net/devices/Barn_3:a,b", KEY, "device"),
    ],
)
@pytest.mark.parametrize("expiry", [1_800_000_000, 2_000_000_123])
def test_our_tokens_are_the_azure_sdks(
    resource: str, key: str, key_name: str | None, expiry: int
) -> None:
    ours = sas_token(resource, base64.b64decode(key), expiry, key_name).reveal()
    assert ours == sdk_token(resource, key, expiry, key_name)


def test_a_token_signs_the_encoded_resource_and_its_expiry() -> None:
    """Microsoft's description of the token, spelled out: sr is the URL-encoded resource,
    sig the URL-encoded base64 HMAC-SHA256 of "<sr>\\n<se>" under the decoded key."""
    resource = "myhub.azure-devices.net/devices/farm-7"
    token = sas_token(resource, base64.b64decode(KEY), 1_800_000_000).reveal()
    fields = token_fields(token)
    assert set(fields) == {"sr", "sig", "se"}
    assert fields["sr"] == resource  # parse_qsl decoded it
    assert token.split("sr=", 1)[1].startswith(quote(resource, safe="") + "&")
    mac = hmac.new(
        base64.b64decode(KEY), f"{quote(resource, safe='')}\n1800000000".encode(), "sha256"
    )
    assert (
        unquote(token.split("sig=", 1)[1].split("&")[0]) == base64.b64encode(mac.digest()).decode()
    )


def test_each_connect_gets_a_fresh_token_and_a_renewal_before_it_expires() -> None:
    now = [1_800_000_000.25]
    login = SasLogin(
        "hub/devices/d", Secret(KEY), key_name=None, lifetime=3600, what="key", clock=lambda: now[0]
    )
    first = login.token().reveal()
    assert login.expires == 1_800_003_600  # whole seconds, rounded down: never later
    assert token_fields(first)["se"] == "1800003600"
    assert login.renewal is not None
    start, latest = login.renewal
    # From the (monotonic) moment it was made: at 80% of its 3599.75 s, within 5 s more.
    assert start - time.monotonic() == pytest.approx(RENEW_FROM * 3599.75, abs=1)
    assert latest - start == pytest.approx(5.0)
    now[0] += 10
    second = login.token().reveal()
    assert second != first and login.expires == 1_800_003_610
    assert KEY not in repr(login) and "Secret('***')" in repr(login)


def test_a_short_lifetime_renews_by_its_own_expiry_not_the_nominal_one() -> None:
    login = SasLogin(
        "hub/devices/d", Secret(KEY), key_name=None, lifetime=2, what="key", clock=lambda: 100.9
    )
    login.token()
    assert login.expires == 102  # 1.1 s of validity, not 2
    assert login.renewal is not None
    start, latest = login.renewal
    assert latest - start == pytest.approx(0.05 * 1.1)


def azure(**keys: object) -> MqttSection:
    return MqttSection.model_validate(
        {
            "host": "myhub.azure-devices.net",
            "preset": "azure_iot_hub",
            "azure": {"device_id": "farm-7", **keys},
        }
    )


def test_the_device_key_comes_from_a_file_the_environment_or_a_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    monkeypatch.setenv("TG_AZURE_KEY", KEY)
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "azure-key").write_text(KEY)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    expected = sdk_token("myhub.azure-devices.net/devices/farm-7", KEY, 0)
    for source in (
        {"device_key_file": str(tmp_path / "key")},
        {"device_key_env": "TG_AZURE_KEY"},
        {"device_key_credential": "azure-key"},
    ):
        preset = preset_for(azure(**source), None)
        assert isinstance(preset, AzureIotHub) and preset.login is not None
        token = preset.login.token().reveal()
        se = token_fields(token)["se"]
        assert token == sdk_token("myhub.azure-devices.net/devices/farm-7", KEY, int(se))
    assert expected.startswith("SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2F")


def test_a_key_that_is_missing_or_not_base64_stops_the_start_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("TG_NO_AZURE_KEY", raising=False)
    with pytest.raises(SecretUnreadable, match=r"device key variable \$TG_NO_AZURE_KEY is not"):
        preset_for(azure(device_key_env="TG_NO_AZURE_KEY"), None)
    with pytest.raises(SecretUnreadable, match="cannot read the Azure IoT Hub device key from"):
        preset_for(azure(device_key_file=str(tmp_path / "absent")), None)
    bad = "not-base64-at-all!!" + KEY
    monkeypatch.setenv("TG_BAD_AZURE_KEY", bad)
    with pytest.raises(SecretUnreadable) as caught:
        preset_for(azure(device_key_env="TG_BAD_AZURE_KEY"), None)
    assert "is not a base64 key" in str(caught.value)
    assert bad not in str(caught.value) and KEY not in caplog.text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_x509_needs_no_key_and_sends_no_password(tmp_path: Path) -> None:
    section = MqttSection.model_validate(
        {
            "host": "myhub.azure-devices.net",
            "preset": "azure_iot_hub",
            "tls": {"cert_file": str(tmp_path / "c.pem"), "key_file": str(tmp_path / "k.pem")},
            "azure": {"device_id": "farm-7"},
        }
    )
    preset = preset_for(section, None)
    assert preset.password() is None and preset.renewal() is None
