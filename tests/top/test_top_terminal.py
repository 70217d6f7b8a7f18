"""`tidegate top` as a person uses it: in a real 80x24 terminal (tmux), against a
real gateway process, keys sent and the screen read back."""

from __future__ import annotations

from pathlib import Path

from tests.ops.test_control_cli import process_config, wait_for_socket
from tests.support import TIDEGATE, GatewayProcess, tidegate, write_config
from tests.top.terminal import Terminal


def rows_naming(screen: str, word: str) -> list[str]:
    return [line for line in screen.splitlines() if word in line]


def test_top_in_80_by_24_against_a_running_gateway(tmp_path: Path) -> None:
    config = write_config(tmp_path / "tidegate.yaml", process_config(tmp_path))
    gateway = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        wait_for_socket(gateway, tmp_path / "control.sock")
        with Terminal([*TIDEGATE, "top", "-c", str(config)], tmp_path) as term:
            screen = term.wait_for(
                lambda s: "tidegate proc" in s and "alpha  running" in s and "beta/t" in s,
                "the header, a running driver and a value",
            )
            assert "[1 overview]" in screen and "q quit" in screen.splitlines()[-1]
            assert all(len(line) <= 80 for line in term.screen())

            term.keys("2")
            screen = term.wait_for(lambda s: "[2 drivers]" in s and "n = " in s, "drivers view")
            assert "EV/S" in screen and "RATE" in screen
            term.keys("3")
            term.wait_for(lambda s: "[3 outbox]" in s and "dead letters" in s, "outbox view")
            term.keys("4")
            term.wait_for(lambda s: "[4 actions]" in s and "commands: not enabled" in s)
            term.keys("Tab")
            term.wait_for("[1 overview]")

            # The filter: only the sources matching the glob are left.
            term.keys("/")
            term.wait_for("filter source (glob")
            term.keys("be*", literal=True)
            term.keys("Enter")
            screen = term.wait_for(
                lambda s: "filter: be*" in s and "1 hidden" in s, "the filter applied"
            )
            assert rows_naming(screen, "beta") and not rows_naming(screen, "alpha")

            term.keys("p")
            term.wait_for("PAUSED")
            term.keys("?")
            term.wait_for("filter by source (a glob")
            term.keys("?")
            term.wait_for(lambda s: "filter by source" not in s and "beta" in s)
            assert all(len(line) <= 80 for line in term.screen())

            term.keys("q")
            assert term.exit_status() == 0
    finally:
        assert gateway.stop() == 0, gateway.output()


def test_without_a_gateway_it_says_so_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "tidegate.yaml", process_config(tmp_path))
    with Terminal([*TIDEGATE, "top", "-c", str(config)], tmp_path) as term:
        assert term.exit_status() == 1
        said = [line for line in term.screen() if line.strip()]
        assert said[0].startswith("tidegate: error: no gateway is running"), said
        assert said[1] == "[exit 1]"


def test_without_a_terminal_it_says_so_and_exits_2(tmp_path: Path) -> None:
    done = tidegate("top", "--socket", str(tmp_path / "control.sock"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "tidegate: error: tidegate top needs a terminal (stdin and stdout); "
        "`tidegate status` prints once"
    ]


def test_a_failing_driver_shows_as_reconnecting_and_in_the_last_warnings(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "tidegate.yaml",
        process_config(tmp_path)
        + f"""  - name: station
    type: serial
    port: {tmp_path / "no-such-tty"}
    parse: {{format: json, unlisted: include}}
""",
    )
    gateway = GatewayProcess(config, tmp_path / "gw.log").start()
    try:
        wait_for_socket(gateway, tmp_path / "control.sock")
        with Terminal([*TIDEGATE, "top", "-c", str(config)], tmp_path) as term:
            term.wait_for("station  reconnecting")
            term.keys("4")
            screen = term.wait_for(
                lambda s: "last warnings" in s and "warning station: cannot open" in s,
                "the driver's warning",
            )
            assert "driver station reconnecting: cannot open" in screen
            assert all(len(line) <= 80 for line in term.screen())
            term.keys("q")
            assert term.exit_status() == 0
    finally:
        assert gateway.stop() == 0, gateway.output()
