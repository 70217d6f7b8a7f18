"""`tidegate service install --root`: the tree it writes, checked with systemd's own tools."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from typer.testing import CliRunner

from tidegate.cli.service import service_app
from tidegate.config.loader import load_config
from tidegate.errors import TidegateError
from tidegate.ops.service import (
    DEFAULT_CONFIG,
    DEFAULT_USER,
    Installer,
    ServiceError,
    ServiceOptions,
    default_exec_start,
    render_unit,
)

REPO = Path(__file__).resolve().parents[2]
UNIT = "etc/systemd/system/tidegate.service"
WANTS = "etc/systemd/system/multi-user.target.wants/tidegate.service"
EXPOSURE_GOAL = 2.0


def systemd_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; ./dev test installs it (apt package systemd)")
    return found


def install(root: Path, *args: str) -> list[str]:
    """Run `tidegate service install --root ROOT ARGS` through the CLI; return its lines."""
    result = CliRunner().invoke(service_app, ["install", "--root", str(root), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output.splitlines()


def tree(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """Every path under root: (content or link target, mode, uid, gid)."""
    out: dict[str, tuple[str, int, int, int]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            what = "-> " + os.readlink(path)
        elif path.is_file():
            what = path.read_bytes().decode(errors="replace")
        else:
            what = "dir"
        out[str(path.relative_to(root))] = (
            what,
            stat.S_IMODE(info.st_mode),
            info.st_uid,
            info.st_gid,
        )
    return out


def passwd_ids(root: Path, database: str, name: str) -> tuple[int, list[str]]:
    for line in (root / "etc" / database).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), fields[3].split(",") if database == "group" else []
    raise AssertionError(f"{name} not in {database}: {(root / 'etc' / database).read_text()}")


def test_install_writes_the_expected_tree(tmp_path: Path) -> None:
    systemd_tool("systemd-sysusers")
    root = tmp_path / "root"
    lines = install(root)
    assert (
        lines[-1]
        == "enabled tidegate.service (/etc/systemd/system/multi-user.target.wants/tidegate.service)"
    )
    files = tree(root)
    expected = {
        UNIT: 0o644,
        "etc/sysusers.d/tidegate.conf": 0o644,
        "etc/tidegate": 0o750,
        "etc/tidegate/credentials": 0o700,
        "etc/tidegate/tidegate.yaml": 0o640,
        "var/lib/tidegate": 0o750,
    }
    for path, mode in expected.items():
        assert path in files, f"{path} missing; tree: {sorted(files)}"
        assert files[path][1] == mode, (path, oct(files[path][1]))
    assert files[WANTS][0] == "-> /etc/systemd/system/tidegate.service"

    uid, _ = passwd_ids(root, "passwd", DEFAULT_USER)
    gid, _ = passwd_ids(root, "group", DEFAULT_USER)
    assert (root / "etc/passwd").read_text().splitlines() == [
        f"tidegate:x:{uid}:{gid}:tidegate gateway:/var/lib/tidegate:/usr/sbin/nologin"
    ]
    for group in ("dialout", "gpio", "i2c"):  # i2c is created where it did not exist
        assert DEFAULT_USER in passwd_ids(root, "group", group)[1], group
    if os.geteuid() == 0:  # ownership needs root; an unprivileged build leaves it to the image
        assert files["var/lib/tidegate"][2:] == (uid, gid)
        assert files["etc/tidegate"][2:] == (0, gid)
        assert files["etc/tidegate/tidegate.yaml"][2:] == (0, gid)
        assert files["etc/tidegate/credentials"][2:] == (0, 0)

    unit = files[UNIT][0]
    assert f"ExecStart={default_exec_start()} run --config /etc/tidegate/tidegate.yaml" in unit
    assert "ExecReload=" in unit and " reload --config /etc/tidegate/tidegate.yaml" in unit
    # An i2c driver can open /dev/i2c-* under DevicePolicy=closed, as a member of i2c.
    assert "\nDeviceAllow=char-i2c rw\n" in unit
    assert "\nSupplementaryGroups=dialout gpio i2c\n" in unit
    # The example config is a working config.
    config = load_config(root / "etc/tidegate/tidegate.yaml")
    assert str(config.gateway.data_dir) == "/var/lib/tidegate"


def test_systemd_analyze_verify_accepts_the_installed_unit(tmp_path: Path) -> None:
    analyze = systemd_tool("systemd-analyze")
    systemd_tool("systemd-sysusers")
    root = tmp_path / "root"
    install(root)
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(root / UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done
    # ...and it is a real check: a unit that starts a missing program is refused.
    broken = tmp_path / "tidegate.service"
    broken.write_text(
        re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/nonexistent/tidegate", (root / UNIT).read_text())
    )
    refused = subprocess.run(
        [analyze, "verify", "--man=no", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0 and "/nonexistent/tidegate" in refused.stderr


def test_install_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    systemd_tool("systemd-sysusers")
    root = tmp_path / "root"
    install(root)
    before = tree(root)
    second = install(root)
    assert tree(root) == before
    assert [line.split(" ")[0] for line in second] == [
        "unchanged",
        "exists",
        "exists",
        "exists",
        "exists",
        "kept",
        "unchanged",
        "enabled",
    ]


def test_an_existing_config_is_kept_and_checked(tmp_path: Path) -> None:
    systemd_tool("systemd-sysusers")
    root = tmp_path / "root"
    config = root / "srv/gw/site.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("drivers: []\n")
    lines = install(root, "--config", "/srv/gw/site.yaml", "--user", "gw")
    assert config.read_text() == "drivers: []\n"
    assert "kept /srv/gw/site.yaml" in lines
    assert any(line.startswith("warning: /srv/gw/site.yaml is invalid") for line in lines)
    assert any("site.yaml:1:10" in line for line in lines), lines
    unit = (root / UNIT).read_text()
    assert "run --config /srv/gw/site.yaml" in unit and "User=gw\n" in unit
    assert not (root / "etc/tidegate/tidegate.yaml").exists()


def test_dry_run_only_says_what_it_would_do(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lines = install(root, "--dry-run")
    assert not root.exists()
    assert lines[:3] == [
        "would write /etc/sysusers.d/tidegate.conf",
        "would create user tidegate",
        "would create /etc/tidegate",
    ]
    assert "would write /etc/systemd/system/tidegate.service" in lines


def test_uninstall_keeps_data_unless_purged(tmp_path: Path) -> None:
    systemd_tool("systemd-sysusers")
    root = tmp_path / "root"
    install(root)
    (root / "var/lib/tidegate/outbox.db").write_bytes(b"undelivered events")
    runner = CliRunner()
    result = runner.invoke(service_app, ["uninstall", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert not (root / UNIT).exists() and not (root / WANTS).is_symlink()
    assert not (root / "etc/sysusers.d/tidegate.conf").exists()
    assert (root / "var/lib/tidegate/outbox.db").exists()
    assert (root / "etc/tidegate/tidegate.yaml").exists()
    assert (
        "kept /var/lib/tidegate (--purge removes it, and the events still in the outbox)"
        in result.output
    )
    again = runner.invoke(service_app, ["uninstall", "--root", str(root), "--purge"])
    assert again.exit_code == 0, again.output
    assert "absent /etc/systemd/system/tidegate.service" in again.output
    assert not (root / "var/lib/tidegate").exists() and not (root / "etc/tidegate").exists()


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="not a valid system user name"):
        Installer(ServiceOptions(root=tmp_path, user="Bad User"), print)
    with pytest.raises(ServiceError, match="must be absolute"):
        Installer(ServiceOptions(root=tmp_path, config=PurePosixPath("tidegate.yaml")), print)
    result = CliRunner().invoke(service_app, ["install", "--root", str(tmp_path), "--user", "x y"])
    assert isinstance(result.exception, TidegateError)
    assert "\n" not in str(result.exception)


def test_a_program_under_home_gets_read_only_home_not_a_hidden_one() -> None:
    assert "ProtectHome=yes\n" in render_unit("/opt/tidegate/bin/tidegate", DEFAULT_CONFIG, "tg")
    relaxed = render_unit("/home/pi/venv/bin/tidegate", DEFAULT_CONFIG, "tg")
    assert "ProtectHome=read-only\n" in relaxed
    quoted = render_unit('"/opt/my tidegate/bin/tidegate"', DEFAULT_CONFIG, "tg")
    assert 'ExecStart="/opt/my tidegate/bin/tidegate" run' in quoted


def test_the_shipped_unit_is_the_rendered_one_and_hardened(tmp_path: Path) -> None:
    shipped = (REPO / "systemd/tidegate.service").read_text()
    assert shipped == render_unit("/opt/tidegate/bin/tidegate", DEFAULT_CONFIG, DEFAULT_USER), (
        "systemd/tidegate.service is out of date: "
        "regenerate it from tidegate.ops.service.render_unit"
    )
    analyze = systemd_tool("systemd-analyze")
    done = subprocess.run(
        [
            analyze,
            "security",
            "--offline=yes",
            "--no-pager",
            str(REPO / "systemd/tidegate.service"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r"Overall exposure level for tidegate\.service: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= EXPOSURE_GOAL, done.stdout
