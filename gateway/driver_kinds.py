"""The driver kinds: built-in ones and plugins, by their ``type:`` name.

Built-ins are listed by name in ``tidegate.drivers.builtins`` (one line per kind,
like Telegraf's ``plugins/inputs/all``), with where their config is; a kind's
config module is imported the first time that kind is asked for, so checking a
file imports the schemas of the kinds it uses and no others. A third-party
distribution registers its config class under the ``tidegate.drivers``
entry-point group::

    [project.entry-points."tidegate.drivers"]
    modbus = "tidegate_modbus.config:ModbusConfig"

(a ``Driver`` class is accepted there too, at the price of importing its runtime
whenever a config is checked). Entry points are read only when a name is not a
built-in one, or when every kind is wanted. A kind holds its schema; its runtime
class is imported when the first driver of that kind is built, so ``tidegate
check`` reads schemas without importing pyserial, paho or asyncio.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from tidegate.driver import Driver, DriverConfig, DriverContext, config_models, kind_name
from tidegate.drivers.builtins import BUILTIN_KINDS, load_declared

log = logging.getLogger(__name__)

BUILTIN = "tidegate"
"""The origin of the built-in kinds."""


@dataclass(frozen=True)
class DriverKind:
    """One ``type:`` of driver: its schema and where its runtime class is."""

    name: str
    config_type: Any
    """The schema: a DriverConfig class, or a union of one per mode."""
    runtime: str
    """``"module:Class"``."""
    origin: str = BUILTIN
    """``tidegate`` or the entry point that brought it."""

    @property
    def models(self) -> tuple[type[DriverConfig], ...]:
        """The config classes of the schema (one, or one per mode)."""
        return config_models(self.config_type)

    def runtime_of(self, model: type[DriverConfig]) -> str:
        """Where the runtime of one of the kind's configs is: its own ``runtime=``
        (a mode run by a class of its own: gpio's ``output``), else the kind's."""
        return model.runtime or self.runtime

    def load(self, runtime: str | None = None) -> type[Driver]:
        """Import a runtime class of the kind (default: the kind's own); check that it
        runs on configs of this kind's schema."""
        where = runtime or self.runtime
        found = load_declared(where)
        if not (isinstance(found, type) and issubclass(found, Driver)):
            raise TypeError(f"driver kind {self.name!r}: {where} is not a Driver class")
        if not set(config_models(found.config_type)) <= set(self.models):
            raise TypeError(
                f"driver kind {self.name!r}: {where} runs on {found.config_type!r}, "
                f"not on the kind's config {self.config_type!r}"
            )
        return found

    def __call__(self, config: DriverConfig, context: DriverContext) -> Driver:
        """A driver of this kind (no I/O: ``run`` opens the device), of the class its
        config's mode names."""
        return self.load(self.runtime_of(type(config)))(config, context)


def kind_of(declared: Any, origin: str = BUILTIN) -> DriverKind:
    """The kind a config class (or union of mode configs) declares, or, for an old
    style plugin, the kind of a Driver class."""
    if isinstance(declared, type) and issubclass(declared, Driver):
        return DriverKind(
            kind_name(declared.config_type),
            declared.config_type,
            f"{declared.__module__}:{declared.__qualname__}",
            origin,
        )
    models = config_models(declared)
    if any(model.runtime is None for model in models):
        raise TypeError(f"{declared!r} must name its runtime class (`runtime=` on its config)")
    # The kind's runtime is its first config's; a mode may name a class of its own.
    return DriverKind(kind_name(declared), declared, str(models[0].runtime), origin)


@cache
def builtin_kind(name: str) -> DriverKind | None:
    """The built-in kind ``name`` (importing its config module only), or None."""
    where = BUILTIN_KINDS.get(name)
    if where is None:
        return None
    kind = kind_of(load_declared(where))
    if kind.name != name:
        raise TypeError(f"tidegate.drivers.builtins lists {where} as {name!r}; it is {kind.name!r}")
    return kind


@cache
def _plugin_kinds() -> tuple[DriverKind, ...]:
    # importlib.metadata scans every installed distribution: only when a plugin is asked for.
    from importlib.metadata import entry_points  # noqa: PLC0415

    found: list[DriverKind] = []
    for ep in entry_points(group="tidegate.drivers"):
        origin = f"{ep.name} = {ep.value}"
        try:
            found.append(kind_of(ep.load(), origin))
        except Exception as exc:
            log.warning("driver plugin %s failed to load: %s", origin, exc)
    return tuple(found)


@cache
def _every_kind() -> dict[str, DriverKind]:
    kinds: dict[str, DriverKind] = {}
    builtins = [kind for name in BUILTIN_KINDS if (kind := builtin_kind(name)) is not None]
    for kind in [*_plugin_kinds(), *builtins]:
        previous = kinds.get(kind.name)
        if previous is not None and previous.origin != BUILTIN:
            log.warning(
                "driver kind %r of %s is shadowed by %s", kind.name, previous.origin, kind.origin
            )
        kinds[kind.name] = kind
    return dict(sorted(kinds.items()))


class DriverKinds(Mapping[str, DriverKind]):
    """Every driver kind by its ``type:`` name; built-ins win over plugins.

    Looking up one built-in name imports that kind's config only; any other look-up
    reads the entry points, and listing the kinds imports every schema.
    """

    def __getitem__(self, name: str) -> DriverKind:
        kind = builtin_kind(name)
        if kind is None:
            kind = _every_kind()[name]
        return kind

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in BUILTIN_KINDS or name in _every_kind())

    def __iter__(self) -> Iterator[str]:
        return iter(_every_kind())

    def __len__(self) -> int:
        return len(_every_kind())


@cache
def driver_types() -> DriverKinds:
    """Every driver kind by its ``type:`` name; built-ins win over plugins."""
    return DriverKinds()
