"""The material parameters polyfe2 reads from a DAMASK ``material.yaml`` phase, as schemas.

A phase is ``{lattice, mechanical: {output, elastic, plastic}}``. polyfe2 honours the cubic
``Hooke`` elasticity and fcc ``phenopowerlaw`` slip plasticity of DAMASK 3; every other key
(twinning, temperature dependence, other plasticity types) stops the run with a one-line error
instead of being ignored. :func:`check_phase` validates a phase entry against these tables.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import InputError
from ..schema import Field, Schema, document

#: DAMASK 3's fcc slip-slip interaction has seven types (``h_sl-sl``, crystal.f90)
N_FCC_SLIP_TYPES = 7

PHASE = document(Schema("material.yaml: phase/NAME", {
    "lattice": Field("choice", "crystal lattice: cubic (taylor: face-centred only)", choices=("cF", "cI")),
    "rho": Field("number", "mass density (read, not used by the mechanics)", default=None, unit="kg/m³",
                 low=0.0),
    "references": Field("any", "bibliographic references (not read)", default=None),
    "mechanical": Field("mapping", "elastic and plastic behaviour (below)"),
}))

MECHANICAL = document(Schema("material.yaml: phase/NAME/mechanical", {
    "output": Field("any", "DAMASK's output list: the constituent fields written (F and P always); "
                    "without any list in the phase, every field of the backend", default=None),
    "elastic": Field("mapping", "elasticity: type Hooke (below)"),
    "plastic": Field("mapping", "plasticity: type phenopowerlaw or none; absent for an elastic phase",
                     default=None),
}))

HOOKE = document(Schema("material.yaml: phase/NAME/mechanical/elastic", {
    "type": Field("choice", "linear elasticity, St Venant-Kirchhoff at finite strain", choices=("Hooke",)),
    "C_11": Field("number", "cubic stiffness C_1111", unit="Pa", low=0.0, open_low=True),
    "C_12": Field("number", "cubic stiffness C_1122", unit="Pa"),
    "C_44": Field("number", "cubic stiffness C_2323", unit="Pa", low=0.0, open_low=True),
    "references": Field("any", "bibliographic references (not read)", default=None),
}))

PHENOPOWERLAW = document(Schema("material.yaml: phase/NAME/mechanical/plastic (type phenopowerlaw)", {
    "type": Field("choice", "DAMASK's phenomenological power law", choices=("phenopowerlaw",)),
    "N_sl": Field("numbers", "slip systems per family: all 12 fcc {111}<110> systems", length=1, low=12,
                  high=12),
    "N_tw": Field("numbers", "twin systems per family; twinning is not implemented", default=None, length=1,
                  low=0, high=0),
    "dot_gamma_0_sl": Field("number", "reference shear rate", unit="1/s", low=0.0, open_low=True,
                            one_element_list=True),
    "n_sl": Field("number", "stress exponent", low=0.0, open_low=True, one_element_list=True),
    "a_sl": Field("number", "hardening exponent", low=0.0, open_low=True, one_element_list=True),
    "h_0_sl-sl": Field("number", "initial hardening modulus", unit="Pa", low=0.0, one_element_list=True),
    "xi_0_sl": Field("number", "initial critical resolved shear stress", unit="Pa", low=0.0, open_low=True,
                     one_element_list=True),
    "xi_inf_sl": Field("number", "saturation critical resolved shear stress", unit="Pa", low=0.0,
                       open_low=True, one_element_list=True),
    "h_sl-sl": Field("numbers", "latent hardening coefficients of the seven fcc interaction types",
                     min_length=N_FCC_SLIP_TYPES),
    "h_int": Field("number", "hardening offset (not a DAMASK 3 key: paper 000's AA6022-T4 set gives 0)",
                   default=0.0, unit="Pa", one_element_list=True),
    "atol_xi": Field("number", "absolute tolerance of the state integration of xi", default=1.0, unit="Pa",
                     low=0.0, open_low=True),
    "atol_gamma": Field("number", "absolute tolerance of the state integration of gamma", default=1.0e-6,
                        low=0.0, open_low=True),
    "output": Field("any", "DAMASK's output list of the plastic fields written (xi_sl, gamma_sl)", default=None),
    "references": Field("any", "bibliographic references (not read)", default=None),
}))

PLASTIC_TYPES = ("phenopowerlaw", "none")


def check_phase(phase: Any, *, file=None, name: str = "NAME") -> dict:
    """Validate one phase entry of material.yaml; returns the checked plastic parameters
    (with defaults) or ``None`` for a purely elastic phase."""
    prefix = f"phase/{name}"
    p = PHASE.validate(phase, file=file, prefix=prefix)
    mech = MECHANICAL.validate(p["mechanical"], file=file, prefix=f"{prefix}/mechanical")
    el = HOOKE.validate(mech["elastic"], file=file, prefix=f"{prefix}/mechanical/elastic")
    c11, c12 = el["C_11"], el["C_12"]
    if not (c11 > abs(c12) and c11 + 2.0 * c12 > 0.0):
        raise InputError(f"cubic stiffness not positive definite (need C_11 > |C_12| and C_11 + 2 C_12 > 0), "
                         f"got C_11={c11!r}, C_12={c12!r}", file=file, key=f"{prefix}/mechanical/elastic/C_12")
    pl = mech["plastic"]
    if pl is None:
        return None
    kind = pl.get("type") if isinstance(pl, Mapping) else None
    if kind not in PLASTIC_TYPES:
        raise InputError(f"expected one of {', '.join(PLASTIC_TYPES)}, got {kind!r}", file=file,
                         key=f"{prefix}/mechanical/plastic/type")
    if kind == "none":
        if set(pl) - {"type", "output", "references"}:
            raise InputError(f"unknown key(s) {sorted(set(pl) - {'type', 'output', 'references'})} of plastic type none",
                             file=file, key=f"{prefix}/mechanical/plastic")
        return None
    return PHENOPOWERLAW.validate(pl, file=file, prefix=f"{prefix}/mechanical/plastic")


def has_plasticity(phase: Mapping[str, Any]) -> bool:
    """Whether a (valid) phase has a plastic law other than ``none``."""
    return (phase["mechanical"].get("plastic") or {}).get("type", "none") != "none"
