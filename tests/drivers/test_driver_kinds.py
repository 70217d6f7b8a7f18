"""The driver kinds: declared on their configs, listed in ``drivers/builtins.py``, their
runtime imported only when a driver is built."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Literal

import pytest

from tests.drivers.harness import Probe
from tidegate.driver import Driver, DriverConfig, config_models, kind_name
from tidegate.driver_kinds import BUILTIN, DriverKind, driver_types, kind_of
from tidegate.drivers.builtins import BUILTIN_KINDS, load_declared
from tidegate.drivers.serial.config import SerialConfig
from tidegate.drivers.sim.driver import SimDriver

KINDS = sorted(driver_types())


def test_the_builtins_are_the_kinds_of_the_builtin_list() -> None:
    assert KINDS == ["gpio", "i2c", "modbus", "mqtt", "onewire", "serial", "sim"]
    configs = [load_declared(where) for where in BUILTIN_KINDS.values()]
    assert {kind_name(config) for config in configs} == set(KINDS)
    assert all(kind.origin == BUILTIN for kind in driver_types().values())


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_runtime_loads_and_runs_on_the_kind_config(name: str) -> None:
    kind = driver_types()[name]
    runtime = kind.load()
    assert issubclass(runtime, Driver)
    assert runtime.config_type == kind.config_type
    assert f"{runtime.__module__}:{runtime.__qualname__}" == kind.runtime
    for model in kind.models:
        assert kind_name(model) == name
        # A mode may name a class of its own (gpio's output): it runs on that mode.
        own = kind.load(kind.runtime_of(model))
        assert issubclass(own, Driver) and model in config_models(own.config_type)


def test_checking_configs_imports_no_driver_runtime() -> None:
    """What ``tidegate check`` needs of the drivers: every schema, no runtime library."""
    script = textwrap.dedent(
        """
        import json, sys
        from tidegate.driver_kinds import driver_types
        for kind in driver_types().values():
            kind.models
        print(json.dumps(sorted(sys.modules)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    modules = json.loads(result.stdout)
    heavy = {"asyncio", "paho", "aiomqtt", "serial", "gpiod", "numpy", "sqlite_utils", "orjson"}
    assert sorted(m for m in modules if m.split(".")[0] in heavy) == []
    runtimes = [kind.runtime.partition(":")[0] for kind in driver_types().values()]
    assert [m for m in runtimes if m in modules] == []


def test_a_runtime_that_runs_on_another_config_is_refused() -> None:
    wrong = DriverKind("sim", SerialConfig, "tidegate.drivers.sim.driver:SimDriver")
    with pytest.raises(TypeError, match="runs on"):
        wrong.load()
    not_a_driver = DriverKind("sim", SerialConfig, "tidegate.drivers.sim.config:SimConfig")
    with pytest.raises(TypeError, match="is not a Driver class"):
        not_a_driver.load()


def test_a_driver_class_from_an_old_style_plugin_is_a_kind() -> None:
    kind = kind_of(SimDriver, "sim = somewhere:SimDriver")
    assert (kind.name, kind.runtime) == ("sim", "tidegate.drivers.sim.driver:SimDriver")
    assert kind.load() is SimDriver


def test_a_config_must_name_its_runtime_and_one_type() -> None:
    class Nameless(DriverConfig):
        type: Literal["nameless"] = "nameless"

    with pytest.raises(TypeError, match="runtime"):
        kind_of(Nameless)
    with pytest.raises(TypeError, match="module:Class"):

        class Misnamed(DriverConfig, runtime="no-colon"):
            type: Literal["x"] = "x"

    with pytest.raises(TypeError, match="Literal of one string"):
        kind_name(DriverConfig)


def test_a_driver_refuses_a_config_of_another_kind() -> None:
    config = SerialConfig.model_validate(
        {"name": "s", "port": "/dev/null", "parse": {"format": "raw"}}
    )
    with pytest.raises(TypeError, match="runs on"):
        SimDriver(config, Probe().context)  # type: ignore[arg-type]


def test_config_models_of_a_kind_with_modes() -> None:
    gpio = driver_types()["gpio"]
    assert [m.__name__ for m in gpio.models] == [
        "GpioEdgeConfig", "GpioCounterConfig", "GpioLevelConfig", "GpioOutputConfig"
    ]
    assert config_models(SerialConfig) == (SerialConfig,)
