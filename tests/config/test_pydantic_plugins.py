"""tidegate stands in for pydantic's plugin loader (``tidegate.config.pydantic_plugins``)
only on a pydantic whose loader it knows, answers as that loader does, and hands
over to it when plugins are turned back on. Each case runs in a fresh process:
what matters is what gets imported, and in which order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic.version import VERSION

from tidegate.config.pydantic_plugins import (
    DISABLED,
    KNOWN_LOADERS,
    installed_loader_source,
    is_known_loader,
    loader_fingerprint,
)

SMALL_SIM = """\
gateway: {id: plugins, data_dir: data}
drivers:
  - name: room
    type: sim
    signals: [{name: temperature, kind: sine, rate: 1}]
"""


def run_fresh(code: str, tmp_path: Path, plugins: str | None = "__all__") -> dict[str, Any]:
    """Run ``code`` in a new interpreter (PYDANTIC_DISABLE_PLUGINS set to ``plugins``,
    or unset); what it printed last, as JSON."""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if plugins is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = plugins
    config = tmp_path / "small.yaml"
    config.write_text(SMALL_SIM)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


KNOWN = is_known_loader()
UNKNOWN_LOADER = (
    f"pydantic {VERSION} has a plugin/_loader.py tidegate does not know, so it is left alone "
    "(every command ~15 ms slower, still correct): read the file; if get_plugins still returns "
    "() without reading metadata for the DISABLED values, add its loader_fingerprint to "
    "KNOWN_LOADERS, else change _get_plugins"
)
known_loader_only = pytest.mark.skipif(not KNOWN, reason=UNKNOWN_LOADER)


def test_the_installed_pydantic_has_a_plugin_loader_we_know() -> None:
    """A skip with the reason after a pydantic upgrade that changed the loader."""
    source = installed_loader_source()
    assert source is not None
    if not KNOWN:
        pytest.skip(f"{UNKNOWN_LOADER} (fingerprint {loader_fingerprint(source)})")
    assert loader_fingerprint(source) in KNOWN_LOADERS


CHECK_A_FILE = """
    import json, sys
    from pathlib import Path
    from tidegate.config.loader import load_config
    config = load_config(Path(sys.argv[1]))
    loader = sys.modules["pydantic.plugin._loader"]
    print(json.dumps({
        "drivers": len(config.drivers),
        "replaced": type(loader).__name__ == "_Replacement",
        "metadata": "importlib.metadata" in sys.modules,
        "plugins": list(loader.get_plugins()),
    }))
"""


@known_loader_only
@pytest.mark.parametrize("value", DISABLED)
def test_with_plugins_disabled_loading_a_config_reads_no_metadata(
    tmp_path: Path, value: str
) -> None:
    result = run_fresh(CHECK_A_FILE, tmp_path, value)
    assert result == {"drivers": 1, "replaced": True, "metadata": False, "plugins": []}


@known_loader_only
def test_unset_it_is_disabled_by_tidegate_and_replaced(tmp_path: Path) -> None:
    result = run_fresh(CHECK_A_FILE, tmp_path, None)
    assert result == {"drivers": 1, "replaced": True, "metadata": False, "plugins": []}


def test_plugins_the_user_turned_on_are_pydantics_business(tmp_path: Path) -> None:
    """A value that disables nothing: pydantic's own loader, which reads the metadata."""
    result = run_fresh(CHECK_A_FILE, tmp_path, "none")
    assert result["replaced"] is False
    assert result["metadata"] is True
    assert result["drivers"] == 1


def test_a_loader_we_do_not_know_is_left_alone(tmp_path: Path) -> None:
    """An unknown loader (here: no known one at all) is left alone."""
    code = """
        import json, sys
        from tidegate.config.pydantic_plugins import install
        done = install(frozenset())
        from pydantic import BaseModel
        class M(BaseModel):
            x: int
        M(x=1)
        loader = sys.modules["pydantic.plugin._loader"]
        print(json.dumps({"installed": done, "replaced": type(loader).__name__ == "_Replacement",
                          "metadata": "importlib.metadata" in sys.modules}))
    """
    result = run_fresh(code, tmp_path)
    assert result == {"installed": False, "replaced": False, "metadata": True}


@known_loader_only
def test_turning_plugins_back_on_hands_over_to_pydantics_loader(tmp_path: Path) -> None:
    """After the replacement answered once, plugins are enabled: pydantic's own module
    is imported, answers, and is what pydantic uses from then on."""
    code = """
        import json, os, sys
        from tidegate.config.loader import load_config
        from pathlib import Path
        load_config(Path(sys.argv[1]))
        before = type(sys.modules["pydantic.plugin._loader"]).__name__
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = "none"
        from pydantic import BaseModel
        class M(BaseModel):
            x: int
        M(x=1)
        loader = sys.modules["pydantic.plugin._loader"]
        from importlib.metadata import entry_points
        print(json.dumps({
            "before": before,
            "after": type(loader).__name__,
            "real": hasattr(loader, "entry_points"),
            "plugins": sorted(map(repr, loader.get_plugins())),
            "expected": sorted(repr(e.load()) for e in entry_points(group="pydantic")),
        }))
    """
    result = run_fresh(code, tmp_path)
    assert result["before"] == "_Replacement"
    assert result["after"] == "module"
    assert result["real"] is True
    assert result["plugins"] == result["expected"]
