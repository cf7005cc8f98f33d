"""Mixed boundary conditions on the volume average (DAMASK ``load.yaml`` semantics).

Every component ij of the average is controlled either by deformation (``F`` target or
``dot_F`` rate) or by stress (``P`` target or ``dot_P`` rate). In load.yaml the uncontrolled
components of each tensor are written ``x``. Targets are reached linearly over the load step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


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
    """Compliance S (3,3,3,3) that maps a stress error on the stress-controlled components
    to the correction of the corresponding average-F components, all other F fixed.

    Inverts the stress-controlled block of C in 9×9 form (DAMASK's ``utilities_maskedCompliance``).
    """
    m = stress_mask.reshape(9)
    S = np.zeros((9, 9))
    if m.any():
        C99 = C.reshape(9, 9)
        S[np.ix_(m, m)] = np.linalg.inv(C99[np.ix_(m, m)])
    return S.reshape(3, 3, 3, 3)


def parse_tensor_with_mask(value, *, file, key) -> tuple[np.ndarray, np.ndarray]:
    """A 3×3 list whose entries are numbers or ``x`` → (values with 0 at x, mask of numbers)."""
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
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(f"entry [{i}][{j}] is {v!r}; expected a number or 'x'", file=file, key=key)
            values[i, j] = float(v)
            mask[i, j] = True
    return values, mask


def make_load_step(entry: dict, *, file, index: int) -> LoadStep:
    """Validate one ``loadstep`` entry of load.yaml and build a :class:`LoadStep`."""
    where = f"loadstep[{index}]"
    if not isinstance(entry, dict):
        raise InputError(f"expected a mapping, got {type(entry).__name__}", file=file, key=where)
    known = {"boundary_conditions", "discretization", "f_out", "f_restart", "estimate_rate"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise InputError(f"unknown key(s) {unknown}; expected some of {sorted(known)}", file=file, key=where)
    bc = entry.get("boundary_conditions", {})
    mech = bc.get("mechanical") if isinstance(bc, dict) else None
    if not isinstance(mech, dict):
        raise InputError("missing 'mechanical' boundary conditions", file=file, key=f"{where}/boundary_conditions")
    unknown = sorted(set(mech) - {"F", "dot_F", "P", "dot_P"})
    if unknown:
        raise InputError(f"unsupported mechanical boundary condition(s) {unknown}; expected one of F/dot_F "
                         f"and one of P/dot_P", file=file, key=f"{where}/boundary_conditions/mechanical")
    kmech = f"{where}/boundary_conditions/mechanical"
    def_keys = [k for k in ("F", "dot_F") if k in mech]
    str_keys = [k for k in ("P", "dot_P") if k in mech]
    if len(def_keys) != 1 or len(str_keys) != 1:
        raise InputError("expected exactly one of F/dot_F and exactly one of P/dot_P", file=file, key=kmech)
    dval, dmask = parse_tensor_with_mask(mech[def_keys[0]], file=file, key=f"{kmech}/{def_keys[0]}")
    sval, smask = parse_tensor_with_mask(mech[str_keys[0]], file=file, key=f"{kmech}/{str_keys[0]}")
    if np.any(dmask == smask):
        i, j = np.argwhere(dmask == smask)[0]
        raise InputError(f"component [{i}][{j}] must be given in exactly one of {def_keys[0]} and "
                         f"{str_keys[0]} (the other 'x')", file=file, key=kmech)
    offdiag_pairs = smask & smask.T & ~np.eye(3, dtype=bool)
    if offdiag_pairs.any():
        i, j = np.argwhere(offdiag_pairs)[0]
        raise InputError(f"stress prescribed on both [{i}][{j}] and [{j}][{i}] leaves the rotation free; "
                         f"prescribe deformation on one of them", file=file, key=kmech)
    disc = entry.get("discretization")
    if not isinstance(disc, dict) or "t" not in disc or "N" not in disc:
        raise InputError("expected 'discretization: {t: <time>, N: <increments>}'", file=file, key=where)
    unknown = sorted(set(disc) - {"t", "N", "r"})
    if unknown:
        raise InputError(f"unknown key(s) {unknown}; expected t, N, r", file=file, key=f"{where}/discretization")
    t, N, r = disc["t"], disc["N"], disc.get("r", 1.0)
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0:
        raise InputError(f"expected a positive time, got {t!r}", file=file, key=f"{where}/discretization/t")
    if not isinstance(N, int) or isinstance(N, bool) or N < 1:
        raise InputError(f"expected a positive integer, got {N!r}", file=file, key=f"{where}/discretization/N")
    if not isinstance(r, (int, float)) or r <= 0:
        raise InputError(f"expected a positive ratio, got {r!r}", file=file, key=f"{where}/discretization/r")
    f_out = entry.get("f_out", 1)
    if not isinstance(f_out, int) or isinstance(f_out, bool) or f_out < 1:
        raise InputError(f"expected a positive integer, got {f_out!r}", file=file, key=f"{where}/f_out")
    estimate_rate = entry.get("estimate_rate", True)
    if not isinstance(estimate_rate, bool):
        raise InputError(f"expected true or false, got {estimate_rate!r}", file=file, key=f"{where}/estimate_rate")
    return LoadStep(deformation_mask=dmask, deformation=dval, deformation_is_rate=def_keys[0] == "dot_F",
                    stress_mask=smask, stress=sval, stress_is_rate=str_keys[0] == "dot_P",
                    t=float(t), N=N, r=float(r), f_out=f_out, estimate_rate=estimate_rate)
