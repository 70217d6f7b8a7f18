"""pydantic without its plugin discovery, and without what that discovery imports.

pydantic looks for plugins (the ``pydantic`` entry-point group) the first time it
builds a validator: ``pydantic.plugin._loader.get_plugins``. tidegate uses no
pydantic plugin, and sets ``PYDANTIC_DISABLE_PLUGINS=__all__`` (``tidegate.config.types``;
a value the user set is kept), so ``get_plugins`` returns nothing without looking.
But the module imports ``importlib.metadata`` at its top: with it ``email``,
``zipfile``, ``csv`` and more: 10 to 20 ms of every ``tidegate check`` and ~2 MB of
every running gateway, for nothing.

``install()`` puts in its place, before pydantic imports it, a module whose
``get_plugins`` answers as pydantic's does when plugins are disabled (``()``),
and, if the environment turns plugins back on later, hands over to pydantic's own
module (imported then). It does so only when the installed pydantic's
``plugin/_loader.py`` is, byte for byte, a file this replacement was written
against (``KNOWN_LOADERS``, by size and CRC-32, whatever pydantic's version
number): any other pydantic keeps its own module, untouched: slower to start,
still correct. tests/config/test_pydantic_plugins.py then reports a skip that
says so, so the change is seen without turning a build red.
"""

from __future__ import annotations

import os
import sys
import types
import zlib
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from importlib import import_module
from importlib.machinery import ModuleSpec, PathFinder
from importlib.util import find_spec
from typing import Any

LOADER = "pydantic.plugin._loader"

DISABLED = ("__all__", "1", "true")
"""The values of PYDANTIC_DISABLE_PLUGINS that make ``get_plugins`` return ``()``
without reading any metadata (pydantic 2.14's ``_loader.py``)."""

KNOWN_LOADERS = frozenset({(2115, 0x5E3346DA)})
"""(size, CRC-32) of each pydantic ``plugin/_loader.py`` read and found to behave as
``_get_plugins`` below assumes (pydantic 2.14.4's; a later pydantic with the same
file is the same)."""


def _disabled() -> bool:
    return os.environ.get("PYDANTIC_DISABLE_PLUGINS") in DISABLED


def _get_plugins() -> Iterable[Any]:
    """pydantic's ``get_plugins``: ``()`` while plugins are disabled; otherwise pydantic's
    own module takes over (and is what pydantic finds from then on)."""
    if _disabled():
        return ()
    if isinstance(sys.modules.get(LOADER), _Replacement):
        del sys.modules[LOADER]
    real: Any = import_module(LOADER)  # found by name again, now pydantic's own file
    plugins: Iterable[Any] = real.get_plugins()
    return plugins


class _Replacement(types.ModuleType):
    """The stand-in for ``pydantic.plugin._loader`` (a type of its own, to be told apart)."""

    get_plugins: Callable[[], Iterable[Any]]
    PYDANTIC_ENTRY_POINT_GROUP: str


def loader_fingerprint(source: bytes) -> tuple[int, int]:
    return len(source), zlib.crc32(source)


def installed_loader_source() -> bytes | None:
    """The bytes of the installed pydantic's ``plugin/_loader.py`` (None: not found)."""
    # Found by path, not by name: by name, a replacement in sys.modules would answer.
    package = find_spec("pydantic.plugin")
    places = package.submodule_search_locations if package is not None else None
    spec = PathFinder.find_spec("_loader", places) if places else None
    if spec is None or spec.origin is None:
        return None
    try:
        with open(spec.origin, "rb") as source:
            return source.read()
    except OSError:
        return None


def is_known_loader(known: AbstractSet[tuple[int, int]] = KNOWN_LOADERS) -> bool:
    """Whether the installed pydantic's loader is one ``_get_plugins`` was written against."""
    source = installed_loader_source()
    return source is not None and loader_fingerprint(source) in known


def install(known: AbstractSet[tuple[int, int]] = KNOWN_LOADERS) -> bool:
    """Stand in for pydantic's plugin loader if it is safe to; whether it was done.

    Not when pydantic's own is imported already, nor when plugins are not disabled,
    nor when the installed loader is not one of ``known``."""
    if LOADER in sys.modules or not _disabled() or not is_known_loader(known):
        return False
    module = _Replacement(LOADER, __doc__)
    module.__spec__ = ModuleSpec(LOADER, None, origin=__file__)
    module.get_plugins = _get_plugins
    module.PYDANTIC_ENTRY_POINT_GROUP = "pydantic"
    sys.modules[LOADER] = module
    return True
