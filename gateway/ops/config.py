"""Config sections of the service side: the control socket, metrics and logging.

```yaml
control:
  socket: ./control.sock               # default: <data_dir>/control.sock (see below)
metrics:
  interval: 60s                        # a message on <prefix>/metrics this often
  prometheus: {listen: "127.0.0.1:9108"}   # optional; absent or null: off
logging:
  level: info
  rate_limit: {burst: 5, per: 1h}      # null: log every repeated line
```
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from tidegate.config.types import Duration, Section


class ControlSection(Section):
    enabled: bool = Field(
        True, description="Serve the control API that `tidegate status|tail|reload` talk to."
    )
    socket: Path | None = Field(
        None,
        description="The control API's Unix socket (owner and group access only); relative to "
        "the config file. Default: `$RUNTIME_DIRECTORY/control.sock` under systemd (with a link "
        "to it at `<data_dir>/control.sock`), else `<data_dir>/control.sock`, so each gateway "
        "on a machine has its own. An explicit path that cannot be bound stops the start; the "
        "default only logs a warning.",
    )

    tail_buffer: int = Field(
        1000,
        ge=10,
        le=100_000,
        description="Events queued for each `tidegate tail` client; a client that reads slower "
        "loses the rest (counted and shown to it), the pipeline never waits for it.",
    )


def split_host_port(value: str) -> tuple[str, int]:
    """``127.0.0.1:9108`` / ``[::1]:9108`` / ``localhost:9108`` → (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"'{value}' is not host:port (e.g. 127.0.0.1:9108)")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # raises ValueError with its own message
    return host, port


class PrometheusSection(Section):
    listen: str = Field(
        "127.0.0.1:9108",
        description="host:port of the Prometheus text endpoint (`GET /metrics`). It has no "
        "authentication: keep it on loopback unless a firewall guards the port.",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @property
    def host(self) -> str:
        return split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.listen)[1]


class MetricsSection(Section):
    interval: Duration = Field(
        60.0,
        ge=1,
        le=86400,
        description="Publish a metrics message (the `tidegate status --json` document) on "
        "`<prefix>/metrics` this often, while the broker is connected.",
    )
    publish: bool = Field(True, description="Publish metrics messages to the broker at all.")
    prometheus: PrometheusSection | None = Field(
        None, description="Serve metrics in Prometheus text format; absent or null: off."
    )


class RateLimitSection(Section):
    burst: int = Field(
        5,
        ge=1,
        le=10_000,
        description="Lines one repeated message (same place in the code, same text apart from "
        "numbers) may write per `per`; the rest are counted, and the count is written later.",
    )
    per: Duration = Field(3600.0, gt=0, le=7 * 86400, description="The window `burst` counts in.")


class LoggingSection(Section):
    level: Literal["debug", "info", "warning", "error"] | None = Field(
        None, description="Least severe level written. Default: `gateway.log_level` (info)."
    )
    rate_limit: RateLimitSection | None = Field(
        default_factory=RateLimitSection,
        description="Limit repeated lines (a broker down for a day, a sensor unplugged for a "
        "week) so they do not fill the SD card; null: write every line.",
    )
