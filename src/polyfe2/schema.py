"""Declarative input schemas: every key a user can write, with its type, unit, bounds, default
and description, in one place.

A :class:`Schema` is a table of :class:`Field` objects. It validates a mapping read from a file
(unknown keys, missing keys, types, bounds, finiteness), fills in the defaults, and raises one
:class:`~polyfe2.errors.InputError` line naming the file, the key path and the expected value.
The same tables render the input reference (``docs/inputs.md``, :func:`markdown`).

Schemas are declared next to the code that uses the values (the run config in
:mod:`polyfe2.simulation.config`, solver numerics in :mod:`polyfe2.solver.options`, material
parameters in :mod:`polyfe2.constitutive.parameters`, a backend's options on its class) and
listed for the documentation with :func:`document`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import InputError

__all__ = ["REQUIRED", "Field", "Schema", "document", "documented", "markdown"]


class _Required:
    def __repr__(self) -> str:
        return "required"


#: the default of a field that must be given
REQUIRED = _Required()

_KINDS = ("number", "integer", "boolean", "string", "file", "files", "choice", "numbers", "mapping", "any")


@dataclass(frozen=True)
class Field:
    """One input key.

    Parameters
    ----------
    kind : str
        ``number`` (finite real), ``integer``, ``boolean``, ``string``, ``file`` (a path, relative
        to the file that names it), ``files`` (a non-empty mapping of names to such paths),
        ``choice`` (one of
        ``choices``), ``numbers`` (a list of finite reals, ``length`` long when given),
        ``mapping`` or ``any`` (checked by the code that uses it).
    description : str
        One line for the documentation.
    default : any
        Value when the key is absent; :data:`REQUIRED` when it must be given.
    unit : str
        Physical unit (SI), for the documentation and the error message.
    low, high : float, optional
        Bounds; inclusive unless ``open_low``/``open_high``.
    choices : tuple
        Accepted values of a ``choice``.
    length : int, optional
        Exact length of a ``numbers`` list (``min_length`` for at least).
    one_element_list : bool
        Also accept DAMASK's one-element lists (``n_sl: [20]``) for a ``number``.
    """

    kind: str
    description: str
    default: Any = REQUIRED
    unit: str = ""
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple = ()
    length: int | None = None
    min_length: int | None = None
    one_element_list: bool = False

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}")

    # ------------------------------------------------------------------------------------------
    def expected(self) -> str:
        """What a valid value looks like, in words."""
        if self.kind == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices)
        base = {"number": "a number", "integer": "an integer", "boolean": "true or false",
                "string": "a string", "file": "a file name", "mapping": "a mapping",
                "files": "a mapping of names to file names", "any": "a value"}.get(self.kind)
        if self.kind == "numbers":
            n = (f"{self.length} " if self.length else f"at least {self.min_length} " if self.min_length else "")
            base = "a list of one number" if self.length == 1 else f"a list of {n}numbers"
        bounds = []
        if self.low is not None and self.low == self.high:
            bounds.append(f"= {self.low:g}")
        elif self.low is not None:
            bounds.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None and self.low != self.high:
            bounds.append(f"{'<' if self.open_high else '<='} {self.high:g}")
        text = base + (" " + " and ".join(bounds) if bounds else "")
        return text + (f" ({self.unit})" if self.unit else "")

    def _in_bounds(self, x: float) -> bool:
        if self.low is not None and (x <= self.low if self.open_low else x < self.low):
            return False
        if self.high is not None and (x >= self.high if self.open_high else x > self.high):
            return False
        return True

    def check(self, value: Any, *, file=None, key: str | None = None) -> Any:
        """The value, converted (``float`` for numbers); :class:`InputError` if invalid."""
        def bad():
            return InputError(f"expected {self.expected()}, got {value!r}", file=file, key=key)

        k = self.kind
        if k == "any":
            return value
        if k == "mapping":
            if not isinstance(value, Mapping):
                raise bad()
            return dict(value)
        if k == "boolean":
            if not isinstance(value, bool):
                raise bad()
            return value
        if k == "files":
            if not isinstance(value, Mapping) or not value \
                    or not all(isinstance(f, str) and f for f in value.values()):
                raise bad()
            return {str(name): f for name, f in value.items()}
        if k in ("string", "file"):
            if not isinstance(value, str) or not value:
                raise bad()
            return value
        if k == "choice":
            if isinstance(value, bool) or value not in self.choices:
                raise bad()
            return value
        if k == "numbers":
            if not isinstance(value, (list, tuple)) or (self.length and len(value) != self.length) \
                    or (self.min_length and len(value) < self.min_length):
                raise bad()
            out = [_real(v) for v in value]
            if any(v is None or not self._in_bounds(v) for v in out):
                raise bad()
            return out
        v = value
        if self.one_element_list and isinstance(v, (list, tuple)):
            if len(v) != 1:
                raise bad()
            v = v[0]
        if k == "integer":
            if isinstance(v, bool) or not isinstance(v, int) or not self._in_bounds(v):
                raise bad()
            return int(v)
        x = _real(v)   # number
        if x is None or not self._in_bounds(x):
            raise bad()
        return x


def _real(v) -> float | None:
    """A finite float from an int or float (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    x = float(v)
    return x if math.isfinite(x) else None


class Schema:
    """A table of fields: the accepted keys of one mapping of an input file.

    Parameters
    ----------
    title : str
        Heading in the documentation, e.g. ``run config (run.yaml)``.
    fields : mapping
        Key -> :class:`Field`.
    doc : str
        A paragraph for the documentation.
    """

    def __init__(self, title: str, fields: Mapping[str, Field], doc: str = ""):
        self.title = title
        self.fields = dict(fields)
        self.doc = doc

    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def defaults(self) -> dict:
        return {k: f.default for k, f in self.fields.items() if f.default is not REQUIRED}

    def validate(self, data: Any, *, file=None, prefix: str = "") -> dict:
        """Check ``data`` against the table; return it with the defaults filled in.

        ``prefix`` is the key path of ``data`` inside its file (``solver``,
        ``loadstep[2]/discretization``) for the error message.
        """
        where = prefix or None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InputError(f"expected a mapping with keys among {sorted(self.fields)}, got {data!r}",
                             file=file, key=where)
        unknown = sorted(str(k) for k in set(data) - set(self.fields))
        if unknown:
            raise InputError(f"unknown key(s) {unknown}; accepted: {sorted(self.fields)}", file=file, key=where)
        out = {}
        for name, f in self.fields.items():
            key = f"{prefix}/{name}" if prefix else name
            if name in data:
                out[name] = f.check(data[name], file=file, key=key)
            elif f.default is REQUIRED:
                raise InputError(f"missing; expected {f.expected()}", file=file, key=key)
            else:
                out[name] = f.default
        return out

    def markdown(self) -> str:
        """The table in Markdown (key, type and bounds, default, description)."""
        lines = [f"### {self.title}", ""]
        if self.doc:
            lines += [self.doc, ""]
        lines += ["| key | expected | default | description |", "| --- | --- | --- | --- |"]
        for name, f in self.fields.items():
            default = "required" if f.default is REQUIRED else f"`{f.default!r}`"
            lines.append(f"| `{name}` | {f.expected()} | {default} | {f.description} |")
        return "\n".join(lines) + "\n"


_DOCUMENTED: list[Schema] = []


def document(schema: Schema) -> Schema:
    """Add ``schema`` to the input reference; returns it (use at module level)."""
    if all(s.title != schema.title for s in _DOCUMENTED):
        _DOCUMENTED.append(schema)
    return schema


def documented() -> list[Schema]:
    """Every schema passed to :func:`document` by the modules imported so far."""
    return list(_DOCUMENTED)


def markdown(schemas: list[Schema]) -> str:
    """The input reference (``docs/inputs.md``, written by ``polyfe2 inputs``)."""
    head = ("# Input reference\n\nGenerated from the schemas in the code by `polyfe2 inputs > docs/inputs.md`: "
            "every key polyfe2 reads, with its type, unit, bounds and default. A value outside these stops "
            "the run before it starts, with one line naming the file and the key.\n\n")
    return head + "\n".join(s.markdown() for s in schemas)
