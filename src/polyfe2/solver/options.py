"""Numerical options of the spectral solver (DAMASK's names and defaults where DAMASK has them).

Kept apart from :mod:`.spectral` so that checking these options needs neither torch nor PETSc.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..errors import InputError
from ..schema import Field, Schema, document

#: measured with benchmarks/bench_solver.py (32³ elastic with a void, 32³ taylor, the demo plate):
#: m = 8 with approxfunc (one residual evaluation per iteration) needs 0.6-0.7× the evaluations
#: of PETSc's default N-GMRES (m = 30, two per iteration) and 0.33-0.5× those of the fixed point
DEFAULT_PETSC_OPTIONS = "-snes_type ngmres -snes_ngmres_m 8 -snes_ngmres_approxfunc"


#: reference media of the Green operator, see :class:`SolverOptions` and
#: :func:`polyfe2.solver.spectral.reference_stiffness`
REFERENCE_MEDIA = ("componentwise", "minmax", "max", "mean")


SOLVER = document(Schema("run config: solver", {
    "eps_div_rel": Field("number", "equilibrium: RMS(Div P) < max(eps_div_rel max|P̄|, eps_div_abs) "
                         "(DAMASK eps_rel_div(P))", default=5e-4, low=0, open_low=True),
    "eps_div_abs": Field("number", "absolute floor of the equilibrium tolerance (DAMASK eps_abs_div(P))",
                         default=1e-4, unit="Pa", low=0, open_low=True),
    "eps_stress_rel": Field("number", "stress BC: error < max(eps_stress_rel max|P̄|, eps_stress_abs) "
                            "(DAMASK eps_rel_P)", default=1e-3, low=0, open_low=True),
    "eps_stress_abs": Field("number", "absolute floor of the stress-BC tolerance (DAMASK eps_abs_P)",
                            default=1e3, unit="Pa", low=0, open_low=True),
    "N_iter_min": Field("integer", "iterations before convergence is accepted", default=1, low=0),
    "N_iter_max": Field("integer", "iterations before the increment is cut back", default=100, low=1),
    "N_cutback_max": Field("integer", "halvings of the increment before the run stops", default=3, low=0),
    "petsc_options": Field("any", "PETSc SNES options, a string or a mapping {option: value}",
                           default=DEFAULT_PETSC_OPTIONS),
    "reference": Field("choice", "reference medium of the Green operator (componentwise: mean of the "
                       "component-wise extremes; minmax: DAMASK's C_minMaxAvg; max; mean)", default="componentwise",
                       choices=REFERENCE_MEDIA),
    "derivative": Field("choice", "Fourier derivative: rotated (Willot's finite difference) or continuous "
                        "(DAMASK's default)", default="rotated", choices=("rotated", "continuous")),
    "initial_guess": Field("choice", "first iterate of the run's first increment: homogeneous (DAMASK's) or "
                           "elastic (the equilibrium of the same increment with every phase elastic, solved "
                           "first: far fewer costly evaluations at high contrast)", default="homogeneous",
                           choices=("homogeneous", "elastic")),
}))


@dataclass
class SolverOptions:
    """Numerical parameters (DAMASK's defaults where DAMASK has them), see :data:`SOLVER`.

    ``reference`` picks the reference medium C⁰ of the Green operator from the cells' elastic
    stiffness at the start of the run (:func:`reference_stiffness`; it changes the iterations,
    not the converged answer):

    * ``componentwise`` (default) -- the mean of the component-wise largest and smallest C_ijkl
      over the cells (called ``minmax`` in polyfe2 before that name followed DAMASK).
    * ``minmax`` -- DAMASK's ``C_minMaxAvg``: the mean of the whole stiffness tensors of the cell
      with the largest and the cell with the smallest Frobenius norm. The Frobenius norm does
      not change under rotation, so in a single-phase polycrystal rounding picks the two grains.
    * ``max`` -- the component-wise largest C_ijkl: the stiff medium the plain fixed point
      (``-snes_type nrichardson``) needs to converge on anisotropic grains.
    * ``mean`` -- the volume average (Voigt).

    Why ``componentwise`` is the default (N-GMRES iterations with the default PETSc options,
    componentwise vs minmax, rotated / continuous derivative): DAMASK's 16³ full-field case
    (40 increments) 99 vs 98 / 142 vs 141; the void case of benchmarks/bench_solver.py (16³,
    1e6 contrast, 3 increments) 15 vs 15 / 73 vs 79; a soft free-surface layer on a plastic
    polycrystal (12³, 3 increments) 33 vs 34 / 171 vs 175; the bench's 16³ taylor case, stiff
    particles (contrast 10) and iso-strain with K = 8 equal. Never more than one iteration
    worse, up to 8 % better at high contrast, and independent of rounding.
    """

    eps_div_rel: float = 5e-4
    eps_div_abs: float = 1e-4
    eps_stress_rel: float = 1e-3
    eps_stress_abs: float = 1e3
    N_iter_min: int = 1
    N_iter_max: int = 100
    N_cutback_max: int = 3
    petsc_options: str = DEFAULT_PETSC_OPTIONS
    reference: str = "componentwise"
    derivative: str = "rotated"
    initial_guess: str = "homogeneous"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, file=None, prefix: str = "solver") -> "SolverOptions":
        """Validated options from a mapping (the run config's ``solver``)."""
        out = SOLVER.validate(data, file=file, prefix=prefix)
        v = out["petsc_options"]
        if isinstance(v, dict):  # {snes_type: ngmres, snes_ngmres_m: 8}
            v = " ".join(f"-{str(o).lstrip('-')} {'' if w is None else w}".strip() for o, w in v.items())
        if not isinstance(v, str):
            raise InputError(f"expected a string of PETSc options, got {v!r}", file=file, key=f"{prefix}/petsc_options")
        out["petsc_options"] = v
        parse_petsc_options(v, file=file)
        if out["N_iter_min"] > out["N_iter_max"]:
            raise InputError(f"N_iter_min {out['N_iter_min']} exceeds N_iter_max {out['N_iter_max']}", file=file,
                             key=f"{prefix}/N_iter_min")
        return cls(**out)

    def to_mapping(self) -> dict:
        """The options that differ from the defaults (for a run config)."""
        default = SolverOptions()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}


def parse_petsc_options(option_string: str, *, file=None) -> list[tuple[str, str | None]]:
    """``"-snes_type ngmres -snes_ngmres_approxfunc"`` -> [("snes_type", "ngmres"),
    ("snes_ngmres_approxfunc", None)]; :class:`InputError` for a word that is not an option."""
    try:
        args = shlex.split(option_string)
    except ValueError as e:
        raise InputError(f"cannot split the PETSc options: {e}", file=file, key="solver/petsc_options") from None
    pairs, i = [], 0
    while i < len(args):
        if not args[i].startswith("-") or args[i] == "-":
            raise InputError(f"expected a PETSc option starting with '-', got {args[i]!r}", file=file,
                             key="solver/petsc_options")
        value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else None
        pairs.append((args[i].lstrip("-"), value))
        i += 2 if value is not None else 1
    return pairs
