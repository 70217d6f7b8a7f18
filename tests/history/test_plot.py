"""`tidegate plot`: PNG and SVG files, the terminal chart, and its errors."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.history.data import write_day
from tests.support import tidegate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.db"
    write_day(path, time.time()).close()
    return path


def test_png(day: Path, tmp_path: Path) -> None:
    out = tmp_path / "day.png"
    done = tidegate(
        "plot", "greenhouse/temperature", "workshop/*", "--db", str(day), "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert 20_000 < len(data) < 2_000_000


def test_svg_has_axis_labels_and_legend(day: Path, tmp_path: Path) -> None:
    out = tmp_path / "day.svg"
    done = tidegate("plot", "greenhouse/temperature", "--db", str(day), "-o", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "</svg>" in text
    assert 10_000 < len(text) < 5_000_000
    # matplotlib writes text as paths by default, each with the text in a comment.
    for label in ("greenhouse/temperature", "°C", "local time", "alarm raised", "no data"):
        assert label in text, label


@pytest.mark.parametrize("columns", [60, 100, 160])
def test_terminal_chart_fills_the_width(day: Path, columns: int) -> None:
    done = tidegate(
        "plot", "greenhouse/temperature", "--db", str(day), env={"COLUMNS": str(columns)}
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("greenhouse/temperature (°C)")
    assert "1 gap(s)" in lines[0]
    chart = [line for line in lines if "│" in line or "└" in line]
    assert {len(line) for line in chart} == {columns}
    assert any(line.lstrip().startswith("alarm│▀") or "▀" in line for line in chart)


def test_gaps_are_breaks_not_lines(day: Path) -> None:
    done = tidegate(
        "plot",
        "greenhouse/temperature",
        "--db",
        str(day),
        "--height",
        "6",
        env={"COLUMNS": "106"},
    )
    rows = [line.split("│", 1)[1] for line in done.stdout.splitlines()[1:7]]
    # The two silent hours (9 h to 11 h into the day) are ~8 of the 96 columns: empty.
    start, end = int(96 * 9.3 / 24), int(96 * 10.7 / 24)
    assert all(row[column] == " " for row in rows for column in range(start, end))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["greenhouse/nothing"], 1, "no data for greenhouse/nothing"),
        (["greenhouse/temperature", "--last", "soon"], 2, "--last"),
        (["greenhouse/temperature", "--last", "0"], 2, "positive"),
        (["greenhouse/temperature", "-o", "x.gif"], 2, ".png or an .svg"),
    ],
)
def test_errors_are_one_line(day: Path, args: list[str], code: int, message: str) -> None:
    done = tidegate("plot", *args, "--db", str(day))
    assert done.returncode == code
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_no_history_file(tmp_path: Path) -> None:
    done = tidegate("plot", "a/b", "--db", str(tmp_path / "none.db"))
    assert done.returncode == 1
    assert "no history at" in done.stderr


def test_a_file_without_matplotlib_says_how_to_get_it(day: Path, tmp_path: Path) -> None:
    # As on a gateway installed without the `plot` extra: matplotlib cannot be imported.
    script = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from tidegate.cli.main import main; sys.argv = sys.argv[1:]; main()"
    )
    out = tmp_path / "day.png"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "tidegate",
            "plot",
            "greenhouse/temperature",
            "--db",
            str(day),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tidegate: error: a PNG or SVG needs matplotlib: pip install 'tidegate[plot]' "
        "(without -o, the chart is drawn in the terminal)"
    ]
    assert not out.exists()
