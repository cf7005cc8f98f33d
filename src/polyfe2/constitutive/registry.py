"""Backends by name: the built-ins and third-party ones from the entry-point group
``polyfe2.backends`` (``[project.entry-points."polyfe2.backends"] mylaw = "pkg.mod:MyLaw"``).

Names are known without importing any backend (and so without torch): a backend's module is
imported when :func:`get` asks for its class.
"""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from ..errors import InputError

ENTRY_POINT_GROUP = "polyfe2.backends"
#: built-in name -> module (below polyfe2.constitutive) whose import registers it
BUILTIN_MODULES = {"elastic": "elastic", "gru": "gru", "odmn": "odmn", "taylor": "taylor"}
_CLASSES: dict[str, type] = {}


def register(name: str):
    """Class decorator registering a built-in backend under ``name`` (one of
    :data:`BUILTIN_MODULES`); a name registered twice is an error."""

    def deco(cls):
        if name in _CLASSES:
            raise ValueError(f"backend name '{name}' is registered twice")
        cls.name = name
        _CLASSES[name] = cls
        return cls

    return deco


def _third_party() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """Name -> where it comes from ('built-in' or the entry point's value)."""
    names = {n: "built-in" for n in BUILTIN_MODULES}
    for n, ep in _third_party().items():
        names.setdefault(n, ep.value)
    return dict(sorted(names.items()))


def check_name(name, *, file=None, key="backend") -> str:
    """``name`` if a backend of that name exists; else a one-line :class:`InputError`."""
    if not isinstance(name, str) or name not in available():
        raise InputError(f"unknown backend {name!r}; available: {', '.join(available())}", file=file, key=key)
    return name


def get(name: str):
    """The backend class registered as ``name`` (imports its module)."""
    check_name(name)
    if name in BUILTIN_MODULES:
        import_module(f"{__package__}.{BUILTIN_MODULES[name]}")
        return _CLASSES[name]
    from .base import Backend  # the contract, for checking a third-party class

    ep = _third_party()[name]
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise InputError(f"entry point '{name}' ({ep.value}) is not a polyfe2 Backend subclass", key="backend")
    cls.name = name
    return cls
