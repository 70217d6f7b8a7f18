"""What `tidegate service install` writes: the unit, the sysusers.d file, an example config.

The texts and the paths of the installed system, apart from the steps that
write them (``tidegate.ops.service``), so that the CLI can name the defaults
without importing the installer.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path, PurePosixPath

from tidegate.config.paths import DEFAULT_DATA_DIR

UNIT_NAME = "tidegate.service"
DEFAULT_USER = "tidegate"
CONFIG_DIR = PurePosixPath("/etc/tidegate")
DEFAULT_CONFIG = CONFIG_DIR / "tidegate.yaml"
CREDENTIALS_DIR = CONFIG_DIR / "credentials"
STATE_DIR = PurePosixPath(DEFAULT_DATA_DIR)
UNIT_DIR = PurePosixPath("/etc/systemd/system")
WANTS_DIR = UNIT_DIR / "multi-user.target.wants"
SYSUSERS_FILE = PurePosixPath("/etc/sysusers.d/tidegate.conf")
DEVICE_GROUPS = ("dialout", "gpio", "i2c")
"""Groups of serial ports (Debian, Raspberry Pi OS), GPIO chips and I²C buses
(Raspberry Pi OS; hardware/ has the udev rules that give other boards' devices to
``gpio`` and ``i2c``). A group that does not exist yet is created by the install."""
HOME_TREES = ("/home/", "/root/", "/run/user/")
"""ProtectHome=yes hides these; a program or config inside needs ProtectHome=read-only."""

UNIT_TEMPLATE = """\
# tidegate: IoT edge event gateway. Written by `tidegate service install`;
# change it with a drop-in (`systemctl edit tidegate`), not here: a new install
# overwrites this file. Why each setting is here: systemd/README.md.
[Unit]
Description=tidegate IoT edge event gateway
# network.target, not network-online.target: events are buffered while the
# broker is unreachable, so waiting for the network would only lose sensor data.
After=network.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start} run --config {config}
ExecReload={exec_start} reload --config {config}
Restart=on-failure
RestartSec=5s
# Exit code 2 is a configuration error: restarting cannot fix it.
RestartPreventExitStatus=2
# Exit code 75 asks for a restart (a remote config update, or its roll-back): a clean
# stop, then the same start again.
SuccessExitStatus=75
RestartForceExitStatus=75
WatchdogSec=30s
TimeoutStartSec=2min
TimeoutStopSec=20s

User={user}
Group={user}
SupplementaryGroups={groups}
StateDirectory=tidegate
StateDirectoryMode=0750
ConfigurationDirectory=tidegate
ConfigurationDirectoryMode=0750
RuntimeDirectory=tidegate
RuntimeDirectoryMode=0750
# Every file in {credentials} becomes the credential mqtt_<file name>, e.g.
# password -> mqtt_password (`password_credential: mqtt_password` in the config).
LoadCredential=mqtt:{credentials}
UMask=0077

# Hardening. Device access is the one thing a sensor gateway cannot give up:
# serial ports, GPIO chips and I²C buses are allowed by device group, nothing else.
DevicePolicy=closed
DeviceAllow=char-ttyS rw
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-ttyACM rw
DeviceAllow=char-ttyAMA rw
DeviceAllow=char-gpiochip rw
DeviceAllow=char-i2c rw
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome={protect_home}
PrivateTmp=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""

SYSUSERS_TEMPLATE = """\
# tidegate's service user, and the groups that own serial ports, GPIO chips and I²C buses.
# Written by `tidegate service install`; applied by systemd-sysusers at boot.
u {user} - "tidegate gateway" {state}
{memberships}
"""

EXAMPLE_CONFIG = """\
# tidegate configuration, written by `tidegate service install` as a start.
# Check it with `tidegate check -c {config}`; every key is documented in
# `tidegate check --schema`. After editing: `sudo systemctl reload tidegate`
# applies rules; other sections need `sudo systemctl restart tidegate`.
gateway:
  data_dir: {state}   # the service's StateDirectory: the outbox lives here

# mqtt:
#   host: broker.example.net
#   tls: {{}}
#   username: gateway-1
#   # Put the password in {credentials}/password (root, mode 0600):
#   # systemd hands it to the service as the credential mqtt_password.
#   password_credential: mqtt_password

drivers:
  - name: heartbeat
    type: sim
    signals:
      - {{name: alive, kind: counter, interval: 1m}}
"""


def _systemd_quote(word: str) -> str:
    """A word for a unit file's command line: specifiers and variables escaped."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", escaped):
        return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped


def default_exec_start() -> str:
    """How the service should start this installation of tidegate."""
    script = Path(sys.executable).parent / "tidegate"
    if script.is_file() and os.access(script, os.X_OK):
        return _systemd_quote(str(script))
    found = shutil.which("tidegate")
    if found:
        return _systemd_quote(str(Path(found).resolve()))
    return f"{_systemd_quote(sys.executable)} -m tidegate"


def render_unit(exec_start: str, config: PurePosixPath, user: str) -> str:
    inside_home = any(p.startswith(HOME_TREES) for p in (exec_start.strip('"'), str(config)))
    return UNIT_TEMPLATE.format(
        exec_start=exec_start,
        config=_systemd_quote(str(config)),
        user=user,
        groups=" ".join(DEVICE_GROUPS),
        credentials=CREDENTIALS_DIR,
        protect_home="read-only" if inside_home else "yes",
    )


def render_sysusers(user: str) -> str:
    memberships = "\n".join(f"m {user} {group}" for group in DEVICE_GROUPS)
    return SYSUSERS_TEMPLATE.format(user=user, state=STATE_DIR, memberships=memberships)


def example_config(config: PurePosixPath) -> str:
    return EXAMPLE_CONFIG.format(config=config, state=STATE_DIR, credentials=CREDENTIALS_DIR)
