"""Mixed boundary conditions on the volume average (DAMASK ``load.yaml`` semantics).

Every component ij of the average is controlled either by deformation (``F`` target or
``dot_F`` rate) or by stress (``P`` target or ``dot_P`` rate). In load.yaml the uncontrolled
components of each tensor are written ``x``. Targets are reached linearly over the load step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..schema import Field, Schema, document


@dataclass
class LoadStep:
    """One entry of ``loadstep`` in load.yaml.

    Attributes
    ----------
    deformation_mask : (3, 3) bool
        True where the average F is prescribed.
    deformation : (3, 3) float
        ``F`` target or ``dot_F`` rate on the masked components (0 elsewhere).
    deformation_is_rate : bool
    stress_mask : (3, 3) bool
        The complement of ``deformation_mask``.
    stress : (3, 3) float
        ``P`` target or ``dot_P`` rate (Pa, Pa/s) on the masked components.
    stress_is_rate : bool
    t, N, r : total time, number of increments and geometric ratio of the increments.
    f_out : write results every f_out increments.
    estimate_rate : start each increment from the previous increment's rate.
    f_restart : write a restart point every f_restart increments (``polyfe2 run --restart INC``).
    """

    deformation_mask: np.ndarray
    deformation: np.ndarray
    deformation_is_rate: bool
    stress_mask: np.ndarray
    stress: np.ndarray
    stress_is_rate: bool
    t: float
    N: int
    r: float = 1.0
    f_out: int = 1
    estimate_rate: bool = True
    f_restart: int | None = None

    def to_mapping(self) -> dict:
        """The load.yaml entry of this step."""
        mech = {"dot_F" if self.deformation_is_rate else "F": _tensor_with_x(self.deformation, self.deformation_mask)}
        if self.stress_mask.any():
            mech["dot_P" if self.stress_is_rate else "P"] = _tensor_with_x(self.stress, self.stress_mask)
        out = {"boundary_conditions": {"mechanical": mech},
               "discretization": {"t": float(self.t), "N": int(self.N), **({"r": float(self.r)} if self.r != 1 else {})},
               "f_out": int(self.f_out)}
        if not self.estimate_rate:
            out["estimate_rate"] = False
        if self.f_restart is not None:
            out["f_restart"] = int(self.f_restart)
        return out

    def increments(self) -> np.ndarray:
        """Durations of the N increments (geometric with ratio r, summing to t)."""
        if self.r == 1.0:
            return np.full(self.N, self.t / self.N)
        w = self.r ** np.arange(self.N)
        return self.t * w / w.sum()

    def deformation_aim(self, F_start: np.ndarray, F_now: np.ndarray, dt: float, fraction: float) -> np.ndarray:
        """The average F aimed at after a sub-increment ``dt`` ending at ``fraction`` of the step.

        Stress-controlled components keep ``F_now`` (they are solved for).
        """
        if self.deformation_is_rate:
            target = F_now + self.deformation * dt
        else:
            target = F_start + (self.deformation - F_start) * fraction
        return np.where(self.deformation_mask, target, F_now)

    def stress_aim(self, P_start: np.ndarray, P_now: np.ndarray, dt: float, fraction: float) -> np.ndarray:
        if self.stress_is_rate:
            target = P_now + self.stress * dt
        else:
            target = P_start + (self.stress - P_start) * fraction
        return np.where(self.stress_mask, target, 0.0)


def masked_compliance(C: np.ndarray, stress_mask: np.ndarray) -> np.ndarray:
    """Compliance (3,3,3,3) that maps a stress error on the stress-controlled components
    to the correction of the corresponding average-F components, all other F fixed.

    Inverts the stress-controlled block of C in 9×9 form (DAMASK's ``utilities_maskedCompliance``).
    """
    m = stress_mask.reshape(9)
    compliance = np.zeros((9, 9))
    if m.any():
        C99 = C.reshape(9, 9)
        compliance[np.ix_(m, m)] = np.linalg.inv(C99[np.ix_(m, m)])
    return compliance.reshape(3, 3, 3, 3)


LOADSTEP = document(Schema("load.yaml: loadstep[i]", {
    "boundary_conditions": Field("mapping", "mechanical: {F or dot_F, P or dot_P} (below)"),
    "discretization": Field("mapping", "t, N, r (below)"),
    "f_out": Field("integer", "write results every f_out increments (and at the end of the step)", default=1,
                   low=1),
    "f_restart": Field("integer", "write a restart point every f_restart increments of the step (polyfe2 run --restart INC)",
                       default=None, low=1),
    "estimate_rate": Field("boolean", "start each increment from the previous increment's rate", default=True),
}))

DISCRETIZATION = document(Schema("load.yaml: loadstep[i]/discretization", {
    "t": Field("number", "duration of the load step", unit="s", low=0.0, open_low=True),
    "N": Field("integer", "number of increments", low=1),
    "r": Field("number", "ratio of consecutive increment durations (geometric)", default=1.0, low=0.0,
               open_low=True),
}))

MECHANICAL_BC = document(Schema("load.yaml: loadstep[i]/boundary_conditions/mechanical", {
    "F": Field("any", "target average deformation gradient at the end of the step: 3x3, 'x' where free",
               default=None),
    "dot_F": Field("any", "rate of the average deformation gradient: 3x3 (1/s), 'x' where free", default=None),
    "P": Field("any", "target average 1st Piola-Kirchhoff stress: 3x3 (Pa), 'x' where deformation-controlled",
               default=None),
    "dot_P": Field("any", "rate of the average stress: 3x3 (Pa/s), 'x' where deformation-controlled",
                   default=None),
}))


def parse_tensor_with_mask(value, *, file, key) -> tuple[np.ndarray, np.ndarray]:
    """A 3×3 list whose entries are finite numbers or ``x`` → (values with 0 at x, mask of numbers)."""
    rows = value
    if not (isinstance(rows, (list, tuple)) and len(rows) == 3
            and all(isinstance(r, (list, tuple)) and len(r) == 3 for r in rows)):
        raise InputError(f"expected a 3x3 list of numbers or 'x', got {value!r}", file=file, key=key)
    values = np.zeros((3, 3))
    mask = np.zeros((3, 3), dtype=bool)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if isinstance(v, str) and v.strip().lower() == "x":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise InputError(f"entry [{i}][{j}] is {v!r}; expected a finite number or 'x'", file=file, key=key)
            values[i, j] = float(v)
            mask[i, j] = True
    return values, mask


def make_load_step(entry: dict, *, file, index: int) -> LoadStep:
    """Validate one ``loadstep`` entry of load.yaml and build a :class:`LoadStep`.

    As in DAMASK, a step without ``P``/``dot_P`` is fully deformation-controlled, and one
    without ``F``/``dot_F`` fully stress-controlled (not allowed: the rotation would be free).
    """
    where = f"loadstep[{index}]"
    step = LOADSTEP.validate(entry, file=file, prefix=where)
    kmech = f"{where}/boundary_conditions/mechanical"
    bc = step["boundary_conditions"]
    if set(bc) - {"mechanical"}:
        raise InputError(f"unsupported boundary condition(s) {sorted(set(bc) - {'mechanical'})}; polyfe2 solves "
                         "mechanics only (expected 'mechanical')", file=file, key=f"{where}/boundary_conditions")
    if "mechanical" not in bc:
        raise InputError("missing 'mechanical' boundary conditions", file=file, key=f"{where}/boundary_conditions")
    if isinstance(bc["mechanical"], dict) and "R" in bc["mechanical"]:
        raise InputError("a rotated load frame ('R') is not implemented; expected F/dot_F and P/dot_P in the "
                         "lab frame", file=file, key=f"{kmech}/R")
    mech = {k: v for k, v in MECHANICAL_BC.validate(bc["mechanical"], file=file, prefix=kmech).items()
            if v is not None}
    def_keys = [k for k in ("F", "dot_F") if k in mech]
    str_keys = [k for k in ("P", "dot_P") if k in mech]
    if len(def_keys) != 1 or len(str_keys) > 1:
        raise InputError("expected exactly one of F/dot_F and at most one of P/dot_P", file=file, key=kmech)
    dval, dmask = parse_tensor_with_mask(mech[def_keys[0]], file=file, key=f"{kmech}/{def_keys[0]}")
    if str_keys:
        sval, smask = parse_tensor_with_mask(mech[str_keys[0]], file=file, key=f"{kmech}/{str_keys[0]}")
        stress_is_rate = str_keys[0] == "dot_P"
    else:   # DAMASK: no stress given means every component is deformation-controlled
        sval, smask, stress_is_rate = np.zeros((3, 3)), np.zeros((3, 3), dtype=bool), False
        if not dmask.all():
            raise InputError(f"without P or dot_P every component of {def_keys[0]} must be a number", file=file,
                             key=f"{kmech}/{def_keys[0]}")
    if np.any(dmask == smask):
        i, j = np.argwhere(dmask == smask)[0]
        raise InputError(f"component [{i}][{j}] must be given in exactly one of {def_keys[0]} and "
                         f"{str_keys[0]} (the other 'x')", file=file, key=kmech)
    offdiag_pairs = smask & smask.T & ~np.eye(3, dtype=bool)
    if offdiag_pairs.any():
        i, j = np.argwhere(offdiag_pairs)[0]
        raise InputError(f"stress prescribed on both [{i}][{j}] and [{j}][{i}] leaves the rotation free; "
                         f"prescribe deformation on one of them", file=file, key=kmech)
    if def_keys[0] == "F" and dmask.all() and np.linalg.det(dval) <= 0:
        raise InputError(f"det F = {np.linalg.det(dval):.6g}; expected a deformation gradient with det F > 0",
                         file=file, key=f"{kmech}/F")
    disc = DISCRETIZATION.validate(step["discretization"], file=file, prefix=f"{where}/discretization")
    return LoadStep(deformation_mask=dmask, deformation=dval, deformation_is_rate=def_keys[0] == "dot_F",
                    stress_mask=smask, stress=sval, stress_is_rate=stress_is_rate,
                    t=disc["t"], N=disc["N"], r=disc["r"], f_out=step["f_out"], estimate_rate=step["estimate_rate"],
                    f_restart=step["f_restart"])


def check_load_path(steps: list[LoadStep], *, file) -> None:
    """det F > 0 along the prescribed average deformation.

    The average F is known where a step and those before it prescribe every component by
    deformation; there it must have a positive determinant at the end of every increment (F moves
    linearly within a step, so det F can pass through zero between the start and the end). A NaN,
    an infinity or det F <= 0 would otherwise only show later as an increment that does not
    converge.
    """
    F = np.eye(3)
    known = True
    for i, s in enumerate(steps):
        known = s.deformation_mask.all() and (known or not s.deformation_is_rate)
        if not known:
            continue
        end = F + s.deformation * s.t if s.deformation_is_rate else s.deformation
        fractions = np.cumsum(s.increments()) / s.t
        path = F + (end - F) * fractions[:, None, None]
        det = np.linalg.det(path)
        bad = ~np.isfinite(path).all(axis=(1, 2)) | (det <= 0)
        if bad.any():
            n = int(np.argmax(bad))
            raise InputError(f"the average F at the end of increment {n + 1} of this step has det F = {det[n]:.6g}; "
                             "expected det F > 0", file=file, key=f"loadstep[{i}]")
        F = end


def _tensor_with_x(values: np.ndarray, mask: np.ndarray) -> list:
    return [[float(values[i, j]) if mask[i, j] else "x" for j in range(3)] for i in range(3)]
