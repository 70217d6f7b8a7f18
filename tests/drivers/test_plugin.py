"""A third-party driver, installed with pip, is found through the ``tidegate.drivers``
entry-point group: ``tidegate check`` accepts its ``type:`` and refuses a wrong key
in it with the key's position, and a gateway builds and runs it.

The plugin (``tests/drivers/plugin``: a pyproject, a config module, a runtime
module) is a real distribution: it is built and installed by pip into a temporary
directory, which the tidegate processes here get on their ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed plugin (code and its dist-info)."""
    source = tmp_path_factory.mktemp("plugin-source")
    # Built from a copy: a build leaves its egg-info beside the sources.
    shutil.copytree(PLUGIN, source, dirs_exist_ok=True)
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    return target


def tidegate(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


CONFIG = """\
drivers:
  - name: parrot
    type: echo
    words: [hello, world]
    every: 10ms
"""


def test_check_accepts_the_plugin_type(site: Path, tmp_path: Path) -> None:
    config = tmp_path / "echo.yaml"
    config.write_text(CONFIG)
    result = tidegate(site, "-m", "tidegate", "check", "-c", str(config))
    assert result.returncode == 0, result.stderr


def test_check_refuses_a_wrong_key_of_the_plugin_at_its_position(
    site: Path, tmp_path: Path
) -> None:
    config = tmp_path / "echo.yaml"
    config.write_text(CONFIG.replace("    every: 10ms", "    evry: 10ms"))
    result = tidegate(site, "-m", "tidegate", "check", "-c", str(config))
    assert result.returncode == 2
    assert f"{config}:5:5: drivers[0].evry: unknown key 'evry'" in result.stderr, result.stderr


def test_without_the_plugin_the_type_is_unknown(tmp_path: Path) -> None:
    config = tmp_path / "echo.yaml"
    config.write_text(CONFIG)
    result = tidegate(tmp_path, "-m", "tidegate", "check", "-c", str(config))
    assert result.returncode == 2
    assert "unknown driver type 'echo'" in result.stderr, result.stderr


RUN = textwrap.dedent(
    """
    import asyncio, json, sys
    from tidegate.config.loader import load_config_text
    from tidegate.driver import DriverContext
    from tidegate.driver_kinds import driver_types

    kind = driver_types()["echo"]
    (config,) = load_config_text(sys.argv[1], "echo.yaml").drivers
    loaded_by_checking = "tidegate_echo.driver" in sys.modules
    driver = kind(config, DriverContext("gw", lambda raw, reason: None))
    words = []

    class Enough(Exception):
        pass

    async def emit(batch):
        words.extend(event.value for event in batch)
        if len(words) >= 3:
            raise Enough

    async def main():
        try:
            await driver.run(emit)
        except Enough:
            pass

    asyncio.run(main())
    print(json.dumps({"origin": kind.origin, "loaded_by_checking": loaded_by_checking,
                      "words": words, "events": driver.health.events}))
    """
)


def test_a_gateway_builds_and_runs_the_plugin_driver(site: Path) -> None:
    result = tidegate(site, "-c", RUN, CONFIG)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {
        "origin": "echo = tidegate_echo.config:EchoConfig",
        "loaded_by_checking": False,  # the runtime is imported when a driver is built
        "words": ["hello", "world", "hello"],
        "events": 2,
    }
