"""What each command imports: the contract behind a CLI that starts fast and a
gateway that stays small (issue 10), checked by module set, not by a clock.

Each case runs the command as the console script does, in a fresh process,
and lists the top-level packages it imported by the time it exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import wait_until
from tidegate.config.pydantic_plugins import is_known_loader
from tidegate.drivers.builtins import BUILTIN_KINDS

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "simulate.yaml"

HEAVY = {"numpy", "sqlite_utils", "paho", "aiomqtt", "serial", "gpiod", "pymodbus", "smbus2"}
"""Runtime libraries no command imports unless it needs them."""

METADATA = {"importlib.metadata", "email", "zipfile", "csv"} if is_known_loader() else set()
"""What reading installed distributions' metadata imports (pydantic's plugin loader did,
even with plugins disabled: ``tidegate.config.pydantic_plugins``). Kept out only on a
pydantic whose loader tidegate knows: on another, tests/config/test_pydantic_plugins.py
reports a skip that says why."""

PROBE = """
import sys
from pathlib import Path

listing = Path(sys.argv[1])

def dump() -> None:
    listing.write_text("\\n".join(sorted(sys.modules)))

sys.argv = ["tidegate", *sys.argv[2:]]
try:
    from tidegate.cli.main import main
    main()
except SystemExit:
    pass
finally:
    dump()
"""


def modules_of(tmp_path: Path, *args: str) -> set[str]:
    """Every module (dotted names) the command imported."""
    listing = tmp_path / "modules.txt"
    subprocess.run(
        [sys.executable, "-c", PROBE, str(listing), *args],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return set(listing.read_text().split())


def imported_by(tmp_path: Path, *args: str) -> set[str]:
    """The top-level packages the command imported."""
    return {module.split(".")[0] for module in modules_of(tmp_path, *args)}


def test_version_imports_neither_typer_nor_pydantic(tmp_path: Path) -> None:
    modules = imported_by(tmp_path, "--version")
    assert not modules & {"typer", "pydantic", "yaml", *HEAVY}, modules


def test_help_imports_typer_and_nothing_of_the_runtime(tmp_path: Path) -> None:
    modules = imported_by(tmp_path, "--help")
    assert "typer" in modules
    assert not modules & {"pydantic", "yaml", "asyncio", "rich", *HEAVY}, modules


def test_status_imports_the_control_client_only(tmp_path: Path) -> None:
    modules = imported_by(tmp_path, "status", "-c", str(DEMO))
    assert not modules & {"typer", "pydantic", "asyncio", "sqlite3", *HEAVY}, modules


def test_check_imports_the_config_schemas_and_no_runtime(tmp_path: Path) -> None:
    for args in (["check", "-c", str(DEMO)], ["check", str(DEMO)]):
        modules = imported_by(tmp_path, *args)
        assert {"pydantic", "yaml"} <= modules
        assert not modules & {"typer", "asyncio", "sqlite3", *HEAVY}, (args, modules)


DRIVER_SCHEMAS = {where.split(":")[0] for where in BUILTIN_KINDS.values()}
"""Every built-in kind's config module (``tidegate.drivers.<kind>.config``)."""
DRIVER_RUNTIMES = {f"tidegate.drivers.{kind}.driver" for kind in BUILTIN_KINDS}


def demo_kinds() -> set[str]:
    data = yaml.safe_load(DEMO.read_text())
    return {driver["type"] for driver in data["drivers"]}


def test_check_imports_only_the_schemas_a_file_uses(tmp_path: Path) -> None:
    """A sim-only file without rules: the sim schema, no other driver's, no rule engine."""
    config = tmp_path / "small.yaml"
    config.write_text(SMALL_SIM.format(data=tmp_path / "data"))
    modules = modules_of(tmp_path, "check", "-c", str(config))
    assert modules & DRIVER_SCHEMAS == {"tidegate.drivers.sim.config"}
    rule_engine = {"tidegate.rules.config", "tidegate.rules.expr", "tidegate.rules.operators"}
    assert not modules & rule_engine, sorted(modules & rule_engine)
    assert not {m.split(".")[0] for m in modules} & {"typer", "asyncio", *HEAVY}
    # A valid file needs no error translation (nor difflib's suggestions); pydantic's
    # plugin loader is stood in for; topic templates are checked only in an `mqtt:`.
    unneeded = {"tidegate.config.validation_errors", "difflib", *METADATA}
    assert not modules & unneeded, sorted(modules & unneeded)
    assert not [m for m in modules if m.startswith("tidegate.rules")]


def test_check_of_the_demo_imports_the_schemas_of_its_kinds(tmp_path: Path) -> None:
    """The demo has drivers of several kinds and rules: those kinds' schemas, no other
    kind's, and no driver runtime."""
    modules = modules_of(tmp_path, "check", "-c", str(DEMO))
    used = {f"tidegate.drivers.{kind}.config" for kind in demo_kinds()}
    assert len(used) > 1
    assert modules & DRIVER_SCHEMAS == used
    assert "tidegate.rules.config" in modules
    assert not modules & DRIVER_RUNTIMES, sorted(modules & DRIVER_RUNTIMES)
    assert not {m.split(".")[0] for m in modules} & HEAVY
    assert not modules & {"tidegate.config.validation_errors", *METADATA}


def test_only_the_buffer_commands_import_sqlite_utils(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.db")
    assert "sqlite_utils" in imported_by(tmp_path, "buffer", "stats", "--db", missing)
    assert "sqlite_utils" not in imported_by(tmp_path, "rules", "--help")


SMALL_SIM = """
gateway: {{id: small, data_dir: {data}}}
drivers:
  - name: room
    type: sim
    signals: [{{name: temperature, kind: sine, rate: 5}}]
"""


def run_listing(tmp_path: Path, text: str) -> set[str]:
    """Every module (dotted names) a gateway on ``text`` imported once it was up."""
    config = tmp_path / "small.yaml"
    config.write_text(text)
    listing = tmp_path / "modules.txt"
    gateway = subprocess.Popen(
        [sys.executable, "-c", PROBE, str(listing), "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    socket = tmp_path / "data" / "control.sock"
    try:
        wait_until(lambda: socket.exists() or gateway.poll() is not None, 60, "the gateway")
    finally:
        gateway.send_signal(signal.SIGTERM)
        _, errors = gateway.communicate(timeout=30)
    assert gateway.returncode == 0, errors
    return set(listing.read_text().split())


@pytest.mark.parametrize("broker", [False, True], ids=["no broker", "broker"])
def test_a_small_gateway_imports_what_its_config_needs(tmp_path: Path, broker: bool) -> None:
    text = SMALL_SIM.format(data=tmp_path / "data")
    if broker:  # nobody listens there: the publisher only has to exist
        text += "mqtt: {host: 127.0.0.1, port: 9}\n"
    dotted = run_listing(tmp_path, text)
    modules = {module.split(".")[0] for module in dotted}
    assert "asyncio" in modules
    # The uplink speaks MQTT itself (tidegate.mqtt.wire): paho is for the mqtt driver only.
    assert not modules & {"typer", "sqlite_utils", "aiomqtt", "paho", "serial", "gpiod", "numpy"}, (
        modules
    )
    assert ("tidegate.mqtt.wire.client" in dotted) == broker
    assert not dotted & METADATA, sorted(dotted & METADATA)
    # No rules: the rule schemas, the operators and the expression language stay out of memory.
    assert not dotted & {
        "tidegate.rules.config",
        "tidegate.rules.operators.builtins",
        "tidegate.rules.expr.parser",
        "tidegate.rules.expr.compiler",
    }


MQTT_DRIVER = """
  - name: devices
    type: mqtt
    port: 9
    subscriptions: [{{topic: "tele/#", qos: {qos}, parse: {{format: raw}}}}]
"""


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_the_mqtt_driver_needs_paho_only_for_a_qos2_subscription(tmp_path: Path, qos: int) -> None:
    """QoS 0 and 1 are received by tidegate's own MQTT code (tidegate.mqtt.wire.subscriber)."""
    text = SMALL_SIM.format(data=tmp_path / "data") + MQTT_DRIVER.format(qos=qos)
    dotted = run_listing(tmp_path, text)
    assert ("paho" in {module.split(".")[0] for module in dotted}) == (qos == 2)
    assert qos == 2 or "tidegate.mqtt.wire.subscriber" in dotted
