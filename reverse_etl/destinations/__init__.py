"""Destinations as plug-ins: one folder each, found by discovery.

A destination folder holds `destination.py` (one or more `Destination` subclasses with a `name`,
typed options, the API calls) and, for the tests and the demo only, `emulator.py` (an `Emulator`
of the API: a real local server). The runtime imports `destination.py` and never the emulator.
Folders are looked for in this package and in every folder listed in CDP_DESTINATIONS_PATH
(separated like PATH), so a destination can live outside the project.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType

from reverse_etl.destinations.base import (
    Destination,
    DestinationSettings,
    HttpDestination,
    HttpOptions,
    Options,
    Outcome,
    Record,
)

__all__ = [
    "Destination",
    "DestinationSettings",
    "HttpDestination",
    "HttpOptions",
    "Options",
    "Outcome",
    "Record",
    "destination_names",
    "emulator_class",
    "get_destination",
]

PATH_ENV = "CDP_DESTINATIONS_PATH"
_BUILTIN = Path(__file__).resolve().parent

# name -> (class, folder); filled once per value of CDP_DESTINATIONS_PATH
_registry: dict[str, tuple[type[Destination], Path]] = {}
_registry_path: str | None = None


def _folders() -> list[Path]:
    extra = [Path(p) for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    found = []
    for root in [_BUILTIN, *extra]:
        if root.is_dir():
            found += sorted(f for f in root.iterdir() if (f / "destination.py").is_file())
    return found


def _import(folder: Path, module: str) -> ModuleType:
    """`destination` or `emulator` of a folder: as a package module for the built-in folders,
    else from its file under a name of its own."""
    if folder.parent == _BUILTIN:
        return importlib.import_module(f"{__name__}.{folder.name}.{module}")
    name = f"cdp_destination_{folder.name}_{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def _defined_in(module: ModuleType, base: type) -> list[type]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, base)
        and cls.__module__ == module.__name__
        and not inspect.isabstract(cls)
    ]


def _discover() -> dict[str, tuple[type[Destination], Path]]:
    global _registry_path
    path = os.environ.get(PATH_ENV, "")
    if _registry_path == path:
        return _registry
    found: dict[str, tuple[type[Destination], Path]] = {}
    for folder in _folders():
        for cls in _defined_in(_import(folder, "destination"), Destination):
            if cls.name in found:
                raise ValueError(
                    f"destination {cls.name!r} is defined twice: in {found[cls.name][1]} "
                    f"and in {folder}"
                )
            found[cls.name] = (cls, folder)
    _registry.clear()
    _registry.update(found)
    _registry_path = path
    return _registry


def get_destination(name: str) -> type[Destination]:
    try:
        return _discover()[name][0]
    except KeyError:
        raise KeyError(f"unknown destination {name!r}; known: {destination_names()}") from None


def destination_names() -> list[str]:
    return sorted(_discover())


def emulator_class(name: str) -> type | None:
    """The emulator in the destination's folder (None where it has none). For tests and the
    demo: the runtime never calls this."""
    from cdp.core.emulator import LocalTarget

    get_destination(name)
    folder = _discover()[name][1]
    if not (folder / "emulator.py").is_file():
        return None
    classes = _defined_in(_import(folder, "emulator"), LocalTarget)
    return classes[0] if classes else None
