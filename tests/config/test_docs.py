"""The README and the reference are part of the product: they must be true."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tidegate.config.annotations import models_in
from tidegate.config.docgen import GROUPS, Reference, anchor, reference
from tidegate.config.loader import config_model, load_config_text
from tidegate.config.types import Section
from tidegate.drivers.modbus.config import ModbusConfig

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REFERENCE = ROOT / "docs" / "reference.md"
DOCS = sorted(p for p in (ROOT / "docs").glob("*.md") if p != REFERENCE)


def _headings(markdown: str) -> list[str]:
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return re.findall(r"^#+ (.+)$", text, re.M)


def _links(markdown: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", markdown)


def test_reference_matches_the_code() -> None:
    assert REFERENCE.read_text() == reference(), "docs/reference.md is stale: run ./dev docs"


def test_every_heading_of_the_reference_is_there_once() -> None:
    anchors = [anchor(h) for h in _headings(reference())]
    assert len(anchors) == len(set(anchors)), sorted(a for a in anchors if anchors.count(a) > 1)


def _anchors(path: Path) -> set[str]:
    text = reference() if path == REFERENCE else path.read_text()
    return {anchor(h) for h in _headings(text)}


def test_links_in_the_readme_and_docs_lead_somewhere() -> None:
    """Every relative link names a file that exists and, with a #fragment, a heading
    in it (GitHub's anchors), so moving a section cannot strand a link."""
    broken = []
    for page in [README, REFERENCE, *DOCS]:
        text = reference() if page == REFERENCE else page.read_text()
        for link in _links(text):
            if link.startswith(("http://", "https://")):
                continue
            target, _, fragment = link.partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.exists() or (fragment and fragment not in _anchors(path)):
                broken.append(f"{page.name}: {link}")
    assert broken == []


def _models(root: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model reachable from the file's root model."""
    found: set[type[BaseModel]] = set()
    pending = [root]
    while pending:
        model = pending.pop()
        for info in model.model_fields.values():
            for sub in models_in(info.annotation):
                if sub not in found:
                    found.add(sub)
                    pending.append(sub)
    return found


def test_every_section_of_the_file_is_in_the_reference_once() -> None:
    """Each model is documented by exactly one table, whatever uses it (no section found
    only under another driver's heading, no table repeated per use)."""
    ref = Reference(config_model())
    documented = [model for node in ref.nodes.values() for _, model in node.members()]
    assert len(documented) == len(set(documented))
    assert set(documented) == _models(config_model())
    text = reference()
    for key, title in GROUPS.items():
        assert f"\n## {title} (`{key}:`)\n" in text


def test_each_driver_parser_and_framing_kind_has_one_heading() -> None:
    headings = _headings(reference())
    for key in ("type", "format"):
        kinds = [h for h in headings if re.fullmatch(rf"`{key}: [\w.-]+`", h)]
        assert kinds, key
        assert len(kinds) == len(set(kinds))
    for kind in ("serial", "gpio", "mqtt", "sim", "line", "binary"):
        assert f"`type: {kind}`" in headings
    for fmt in ("json", "csv", "kv", "regex", "struct", "raw"):
        assert f"`format: {fmt}`" in headings


class _Tls(Section):
    ca_file: str | None = Field(None, description="CA bundle.")


class _Field(Section):
    unit: str | None = Field(None, description="Unit.")


class _Json(Section):
    format: Literal["json"] = "json"
    fields: dict[str, _Field] = Field(default_factory=dict)


class _Kv(Section):
    format: Literal["kv"] = "kv"
    fields: dict[str, _Field] = Field(default_factory=dict)
    separator: str = "="


_Parse = Annotated[_Json | _Kv, Field(discriminator="format")]


class _Line(Section):
    type: Literal["line"] = "line"


class _Binary(Section):
    type: Literal["binary"] = "binary"
    start: str


class _Serial(Section):
    name: str
    type: Literal["serial"] = "serial"
    framing: _Line | _Binary = Field(default_factory=_Line)  # kinds found without a discriminator
    parse: _Parse


class _Net(Section):
    name: str
    type: Literal["net"] = "net"
    tls: _Tls | None = None
    parse: _Parse


class _Uplink(Section):
    tls: _Tls | None = None


class _File(Section):
    uplink: _Uplink | None = None
    drivers: list[Annotated[_Serial | _Net, Field(discriminator="type")]]


def test_docgen_places_any_schema_by_its_shape() -> None:
    """Kinds, chapters and shared sections come from the models' shape, not their names."""
    text = Reference(_File).render()
    assert _headings(text)[1:] == [
        "Contents",
        "Top level",
        "`uplink`",
        "Drivers (`drivers:`)",
        "`type: serial`",
        "`type: net`",
        "Framing (`framing:`)",
        "`type: line`",
        "`type: binary`",
        "Parsers (`parse:`)",
        "`format: json`",
        "`format: kv`",
        "`parse.fields`",
        "Shared sections",
        "`tls`",
    ]
    assert "Used by [`uplink`](#uplink), [`type: net`](#type-net)." in text
    assert "| `framing` | mapping, by `type`: [`line`](#type-line), [`binary`](#type-binary) |" in (
        text
    )
    assert "| `fields` | mapping, see [`parse.fields`](#parsefields) | empty |" in text


def test_readme_links_to_the_reference_from_configuration() -> None:
    section = README.read_text().split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    assert "(docs/reference.md)" in section


def test_quick_start_is_exactly_two_commands() -> None:
    text = README.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["./dev simulate", "./dev test"]


SIM_DRIVER = """
drivers:
  - {name: s, type: sim, signals: [{name: temperature, kind: sine, rate: 1}]}
"""


def test_yaml_configuration_examples_validate() -> None:
    """Every YAML example that is a config file (it starts with a top-level key) is valid;
    one without `drivers:` gets a sim driver, the one section a file must have."""
    text = "".join(page.read_text() for page in [README, *DOCS])
    sections = "|".join(config_model().model_fields)
    examples = [
        block if re.search(r"^drivers:", block, re.M) else block + SIM_DRIVER
        for block in re.findall(r"```yaml\n(.*?)```", text, re.S)
        if re.match(rf"({sections}):", block)
    ]
    assert len(examples) >= 4
    for example in examples:
        load_config_text(example, "README.md example")


def test_the_modbus_sim_block_of_the_devices_page_fits_its_example() -> None:
    """docs/devices.md shows a Modbus example and, below it, a `sim:` block for it: with
    `port: sim` (what a laptop user sets) the two together are one valid driver."""
    page = (ROOT / "docs" / "devices.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", page, re.S)
    (example,) = [b for b in blocks if "type: modbus" in b]
    (sim,) = [b for b in blocks if b.lstrip().startswith("sim:")]
    simulated = re.sub(r"(?m)^(    port:) \S+.*$", r"\1 sim", example, count=1)
    assert "port: sim" in simulated
    gateway = "gateway: {id: docs, data_dir: data}\n"
    config = load_config_text(gateway + simulated + sim, "docs/devices.md example")
    (driver,) = config.drivers
    assert isinstance(driver, ModbusConfig) and driver.sim is not None
