"""Finding driver kinds without a registry.

Built-in drivers are the public modules of ``tidegate.drivers`` that expose
``DRIVER``; third-party drivers register a Driver class under the
``tidegate.drivers`` entry-point group. Adding a driver never edits the core.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from functools import cache
from importlib.metadata import entry_points

import tidegate.drivers
from tidegate.driver import Driver, driver_type_name

log = logging.getLogger(__name__)


def _builtin_drivers() -> list[type[Driver]]:
    found: list[type[Driver]] = []
    for module_info in pkgutil.walk_packages(tidegate.drivers.__path__, "tidegate.drivers."):
        if any(part.startswith("_") for part in module_info.name.split(".")):
            continue
        module = importlib.import_module(module_info.name)
        driver = getattr(module, "DRIVER", None)
        if isinstance(driver, type) and issubclass(driver, Driver):
            found.append(driver)
    return found


def _entry_point_drivers() -> list[type[Driver]]:
    found: list[type[Driver]] = []
    for ep in entry_points(group="tidegate.drivers"):
        try:
            driver = ep.load()
        except Exception as exc:
            log.warning("driver plugin %s failed to load: %s", ep.name, exc)
            continue
        if isinstance(driver, type) and issubclass(driver, Driver):
            found.append(driver)
        else:
            log.warning("driver plugin %s is not a tidegate Driver class; ignored", ep.name)
    return found


@cache
def driver_types() -> dict[str, type[Driver]]:
    """Every driver kind by its ``type:`` name; built-ins win over plugins."""
    kinds: dict[str, type[Driver]] = {}
    for driver in [*_entry_point_drivers(), *_builtin_drivers()]:
        kinds[driver_type_name(driver)] = driver
    return dict(sorted(kinds.items()))
