"""Where the control socket is: one rule for the gateway and its clients, read from
real config files, and a server that links it and serves at any path length."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from tests.ops.test_control import running_gateway
from tidegate.config.loader import load_config_text
from tidegate.config.paths import DEFAULT_CONFIG_PATH, DEFAULT_DATA_DIR
from tidegate.config.schema import GatewaySection
from tidegate.errors import ConfigError, ConfigFileMissing
from tidegate.ops.control_client import ControlClient, ControlError
from tidegate.ops.control_server import ControlServer
from tidegate.ops.control_socket import configured_socket, locate_socket, serving_path
from tidegate.ops.status import GatewayMonitor
from tidegate.ops.tap import EventTap


def test_the_client_finds_the_socket_the_gateway_serves(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "tidegate.yaml"
    config.parent.mkdir()
    config.write_text("gateway: {data_dir: ../state}\ndrivers: []\n")
    # What the gateway serves on (the loader resolves paths against the file's folder) ...
    loaded_dir = tmp_path / "state"
    assert serving_path(None, loaded_dir, {}) == loaded_dir / "control.sock"
    # ... is what a client computes from the same file.
    assert configured_socket(config, {}) == loaded_dir / "control.sock"
    # A relative control.socket is relative to the file too; an absolute one is as written.
    config.write_text("control: {socket: run/gw.sock}\n")
    assert configured_socket(config, {}) == tmp_path / "etc" / "run" / "gw.sock"
    config.write_text("control: {socket: /srv/gw/control.sock}\n")
    assert configured_socket(config, {}) == Path("/srv/gw/control.sock")
    # Under systemd (ExecReload has its environment) the runtime directory, unless named.
    config.write_text("gateway: {data_dir: ../state}\n")
    runtime = {"RUNTIME_DIRECTORY": "/run/tidegate"}
    assert configured_socket(config, runtime) == Path("/run/tidegate/control.sock")
    # No data_dir: the default one, which is the schema's.
    config.write_text("gateway: {id: x}\n")
    assert configured_socket(config, {}) == DEFAULT_DATA_DIR / "control.sock"
    assert GatewaySection().data_dir == DEFAULT_DATA_DIR


def test_the_loader_resolves_a_relative_socket_against_the_config_file(tmp_path: Path) -> None:
    text = (
        "control: {socket: run/gw.sock}\n"
        "drivers: [{name: s, type: sim, signals: [{name: n, kind: counter, rate: 1}]}]\n"
    )
    config = load_config_text(text, "test.yaml", base=tmp_path)
    assert config.control.socket == tmp_path / "run" / "gw.sock"


def test_a_file_the_gateway_would_refuse_still_names_its_socket(tmp_path: Path) -> None:
    config = tmp_path / "tidegate.yaml"
    # Invalid for the schema but readable: a reload must still find the gateway to be refused.
    config.write_text("control: {socket: /srv/gw/control.sock}\nbogus_key: 1\n")
    assert configured_socket(config, {}) == Path("/srv/gw/control.sock")
    # Broken YAML, named: refused where it breaks (the defaults are another gateway's).
    config.write_text("control: {socket: /srv/gw/control.sock}\nthis: [is not YAML\n")
    with pytest.raises(ConfigError, match=r"tidegate\.yaml:3:1: YAML syntax error"):
        configured_socket(config, {})
    # The service's own file, not named: its defaults are the service's socket.
    assert configured_socket(config, {}, named=False) == DEFAULT_DATA_DIR / "control.sock"
    config.write_text("control: {enabled: false}\n")
    with pytest.raises(ControlError, match="turns the control API off"):
        configured_socket(config, {})


def test_which_config_a_client_uses(tmp_path: Path) -> None:
    explicit = tmp_path / "x.sock"
    assert locate_socket(explicit, tmp_path / "whatever.yaml", {}).path == explicit
    named = tmp_path / "named.yaml"
    named.write_text("gateway: {data_dir: data}\n")
    env = {"TIDEGATE_CONFIG": str(named)}
    assert locate_socket(None, None, env).path == tmp_path / "data" / "control.sock"
    with pytest.raises(ConfigFileMissing, match="no such config file"):
        locate_socket(None, tmp_path / "missing.yaml", {})
    with pytest.raises(ConfigFileMissing, match="TIDEGATE_CONFIG"):
        locate_socket(None, None, {"TIDEGATE_CONFIG": str(tmp_path / "missing.yaml")})


def test_without_any_config_the_client_talks_to_the_demo(tmp_path: Path) -> None:
    if DEFAULT_CONFIG_PATH.exists():
        pytest.skip(f"{DEFAULT_CONFIG_PATH} exists here: the service's config is the default")
    target = locate_socket(None, None, {"XDG_STATE_HOME": str(tmp_path)})
    assert target.path == tmp_path / "tidegate" / "simulate" / "control.sock"
    assert target.not_running is not None
    assert str(DEFAULT_CONFIG_PATH) in target.not_running
    assert "tidegate simulate" in target.not_running


# -- the server: a link where clients look, and paths of any length ------------------------------


def test_a_socket_elsewhere_is_linked_from_the_data_directory(tmp_path: Path) -> None:
    runtime = tmp_path / "run" / "control.sock"
    link = tmp_path / "state" / "control.sock"
    link.parent.mkdir()
    # What a gateway killed with -9 leaves behind: a socket file nobody listens on.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(link))
    stale.close()

    async def body() -> None:
        async with running_gateway(tmp_path) as gateway:
            server = ControlServer(runtime, GatewayMonitor(gateway), EventTap(), link=link)
            assert await server.start()
            try:
                assert os.readlink(link) == str(runtime)
                doc = await asyncio.to_thread(ControlClient(link).status)
                assert doc["gateway"] == "ctl"
            finally:
                await server.close()
            assert not link.is_symlink() and not runtime.exists()

    asyncio.run(body())


def test_a_path_longer_than_an_af_unix_address_is_served_and_reached(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*(["a-folder-with-a-long-name"] * 5))
    deep.mkdir(parents=True)
    path = deep / "control.sock"
    assert len(os.fsencode(path)) > 107

    async def body() -> None:
        async with running_gateway(tmp_path) as gateway:
            server = ControlServer(path, GatewayMonitor(gateway), EventTap())
            assert await server.start()
            try:
                doc = await asyncio.to_thread(ControlClient(path).status)
                assert doc["gateway"] == "ctl"
            finally:
                await server.close()
            assert not path.exists()

    asyncio.run(body())
