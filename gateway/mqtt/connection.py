"""The broker connection section that the uplink (`mqtt:`) and the ``mqtt``
driver share: where the broker is, how to log in, TLS, keep-alive and how to
reconnect.

```yaml
host: broker.example.com
port: 8883                       # default 1883, or 8883 with tls
protocol: "5"                    # or "3.1.1"
keepalive: 30s
tls: {ca_file: /etc/tidegate/ca.pem}
username: gw1
password_file: /etc/tidegate/mqtt-password
connect_timeout: 10s
reconnect: {initial_delay: 500ms, max_delay: 30s}
```

A component derives its own section from ``MqttConnection`` and adds its own
keys; where its defaults differ (the ``mqtt`` driver talks to the broker on
the gateway, in MQTT 3.1.1), it re-declares the field with
``MqttConnection.default_for``, which keeps the field's type, bounds and
description. Schema only: paho and ssl are imported by the runtime modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.fields import FieldInfo

from tidegate.backoff import ReconnectSection
from tidegate.config.types import Duration, Section
from tidegate.mqtt.credentials import MqttCredentials


class TlsSection(Section):
    ca_file: Path | None = Field(
        None, description="CA bundle that signed the broker's certificate; default: system CAs."
    )
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(None, description="Client private key (PEM) for mutual TLS.")
    verify: bool = Field(
        True,
        description="Verify the broker's certificate and host name. Turn off only for testing.",
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class _Broker(Section):
    # Apart from MqttConnection only so that the reference lists the broker's
    # keys before the credentials (pydantic orders fields by the bases, last first).
    host: str = Field(description="Broker host name or address.", min_length=1)
    port: int | None = Field(
        None, ge=1, le=65535, description="Broker port; default 1883, or 8883 with `tls`."
    )
    protocol: Literal["3.1.1", "5"] = Field("5", description="MQTT protocol version.")
    client_id: str | None = Field(
        None, max_length=128, description="MQTT client id; default `tidegate-<gateway id>`."
    )
    keepalive: Duration = Field(30.0, ge=5, le=3600, description="Keep-alive interval.")
    tls: TlsSection | None = Field(None, description="Use TLS; present (even `{}`) turns it on.")


class MqttConnection(MqttCredentials, _Broker):
    """One connection to an MQTT broker."""

    connect_timeout: Duration = Field(10.0, gt=0, description="Give up a connection attempt.")
    reconnect: ReconnectSection = Field(
        default_factory=ReconnectSection,
        description="Waits between connection attempts (backoff with jitter).",
    )

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883

    @classmethod
    def default_for(cls, key: str, default: Any, *, description: str | None = None) -> Any:
        """The field ``key`` with another default, for a subclass to re-declare.

        A plain re-declaration (``host: str = "127.0.0.1"``) would drop the
        field's bounds and description; this keeps them::

            class MqttInputConfig(DriverConfig, MqttConnection):
                host: str = MqttConnection.default_for("host", "127.0.0.1")
        """
        # The new default replaces a default_factory too (pydantic allows one of them).
        changes: dict[str, Any] = {"default": default, "default_factory": None}
        if description is not None:
            changes["description"] = description
        return FieldInfo.merge_field_infos(cls.model_fields[key], **changes)
