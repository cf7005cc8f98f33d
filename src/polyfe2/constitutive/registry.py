"""Backends by name: the built-ins and third-party ones from the entry-point group
``polyfe2.backends`` (``[project.entry-points."polyfe2.backends"] mylaw = "pkg.mod:MyLaw"``)."""
from __future__ import annotations

from importlib.metadata import entry_points

from ..errors import InputError
from .base import Backend

_BUILTIN: dict[str, type[Backend]] = {}
ENTRY_POINT_GROUP = "polyfe2.backends"


def register(name: str):
    """Class decorator registering a built-in backend under ``name``."""

    def deco(cls: type[Backend]) -> type[Backend]:
        if name in _BUILTIN:
            raise ValueError(f"backend name '{name}' is registered twice")
        cls.name = name
        _BUILTIN[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    from . import elastic, gru, taylor  # noqa: F401  (registration by import)


def _third_party() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """Name -> where it comes from ('built-in' or the entry point's value)."""
    _load_builtins()
    names = {n: "built-in" for n in _BUILTIN}
    for n, ep in _third_party().items():
        names.setdefault(n, ep.value)
    return dict(sorted(names.items()))


def get(name: str) -> type[Backend]:
    """The backend class registered as ``name``."""
    _load_builtins()
    if name in _BUILTIN:
        return _BUILTIN[name]
    eps = _third_party()
    if name in eps:
        cls = eps[name].load()
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise InputError(f"entry point '{name}' ({eps[name].value}) is not a polyfe2 Backend subclass",
                             key="backend")
        cls.name = name
        return cls
    raise InputError(f"unknown backend '{name}'; available: {', '.join(available())}", key="backend")
