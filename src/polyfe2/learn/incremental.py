"""Incremental response of a GRU surrogate beside crystal plasticity.

The spectral solver asks a backend for the stress of many trial steps from one committed state.
Its fixed point exists and is found when that map is monotone: a longer step along a direction
``D`` gives a larger ``sigma_dev : D`` (rate-dependent crystal plasticity always does; its
slope is the elastic-plastic tangent plus the rate sensitivity of the flow stress). A surrogate
learns only the steps of its training paths, so this is checked, not assumed: VEs are pulled
along ``D`` (uniaxial, isochoric) to a committed strain ``s``, and from there steps of
``||Delta ln U|| = alpha`` are taken with the same committed state, for the surrogate and for
``taylor`` (K = 20, the iso-strain reference) on the same VEs.
"""
from __future__ import annotations

import numpy as np
import torch

from ..constitutive.base import MaterialPoints
from ..constitutive.gru_network import GRUSurrogate
from ..constitutive.taylor import TaylorBackend
from ..microstructure.descriptor import grain_fractions
from .datagen import average_sigma_dev, default_phase, sample_descriptor

__all__ = ["incremental_response", "plot_incremental_response"]

#: the unit (Frobenius) uniaxial direction of the log strain
UNIAXIAL = np.diag([1.0, -0.5, -0.5]) / 1.5**0.5
#: sigma_dev (Voigt, STRESS_ORDER xx yy zz yz xz xy) : UNIAXIAL
_PROJECT = np.array([1.0, -0.5, -0.5, 0.0, 0.0, 0.0]) / 1.5**0.5


def _stretch(s: float) -> np.ndarray:
    """F = exp(s D) for the unit direction D (||ln U|| = s)."""
    return np.diag(np.exp(s * np.diag(UNIAXIAL)))


def incremental_response(model: GRUSurrogate, levels=(0.01, 0.02, 0.05, 0.1, 0.2, 0.4), n_ve: int = 16,
                         prestep: float = 0.0025, alphas=None, dt: float = 0.5, seed: int = 9100,
                         reference: bool = True) -> dict:
    """``sigma_dev : D`` (MPa) of steps ``alphas`` from committed states at ``levels`` of
    ``||ln U||`` (reached in steps of ``prestep``), for ``n_ve`` random-texture 20-grain VEs.

    Returns ``levels``, ``alphas``, ``gru`` and (``reference``) ``taylor`` arrays (L, A, n_ve),
    and per level the share of VEs whose response falls somewhere along the steps
    (``falling_gru``, ``falling_taylor``) and the median slope in GPa (``slope_gru_GPa``,
    ``slope_taylor_GPa``)."""
    alphas = np.linspace(0.0, 0.012, 13) if alphas is None else np.asarray(alphas, dtype=float)
    d = np.stack([sample_descriptor(seed, i, 0.0, "random")[0] for i in range(n_ve)])
    v = np.stack([grain_fractions(x) for x in d])
    model = model.float().eval()
    out = {"levels": list(map(float, levels)), "alphas": alphas.tolist(), "gru": _gru(model, d, v, levels, prestep,
                                                                                      alphas, dt)}
    if reference:
        out["taylor"] = _taylor(d, v, levels, prestep, alphas, dt)
    for key in [k for k in ("gru", "taylor") if k in out]:
        r = out[key]
        slope = np.diff(r, axis=1) / np.diff(alphas)[None, :, None] / 1e3   # GPa
        out[f"falling_{key}"] = (slope < 0).any(axis=1).mean(axis=1).tolist()
        out[f"slope_{key}_GPa"] = np.median(slope.reshape(len(levels), -1), axis=1).tolist()
        out[key] = r.tolist()
    return out


def _levels_path(levels, prestep):
    """The committed strains of the pre-path (steps of ``prestep``, hitting every level)."""
    s, path = 0.0, []
    for target in levels:
        n = max(1, int(np.ceil((target - s) / prestep)))
        path += list(np.linspace(s, target, n + 1)[1:])
        s = target
    return path


def _probe(step, state, levels, prestep, alphas):
    """Drive ``step(s1, s0, state) -> (sigma_dev : D in MPa, trial state)`` along the pre-path,
    committing every step, and from each level take the steps ``alphas`` without committing."""
    out, s0, committed = [], 0.0, iter(levels)
    want = next(committed)
    for s in _levels_path(levels, prestep):
        _, state = step(s, s0, state)
        s0 = s
        if abs(s - want) < 1e-12:
            out.append([step(s + a, s, state)[0] for a in alphas])
            want = next(committed, None)
    return np.array(out)


@torch.no_grad()
def _gru(model, d, v, levels, prestep, alphas, dt):
    n = len(d)
    dev = next(model.parameters()).device
    h, m = model.initial_state(torch.as_tensor(d, dtype=torch.float32, device=dev),
                               torch.as_tensor(v, dtype=torch.float32, device=dev))
    F = lambda s: torch.as_tensor(_stretch(s), dtype=torch.float64, device=dev).expand(n, 3, 3)  # noqa: E731

    def step(s1, s0, h):
        sigma, h_new = model.step(F(s1), m, h, F(s0), dt)
        return sigma.double().cpu().numpy() @ _PROJECT / 1e6, h_new

    return _probe(step, h, levels, prestep, alphas)


def _taylor(d, v, levels, prestep, alphas, dt):
    n, dtype = len(d), torch.float64
    backend = TaylorBackend(default_phase(), {"substep_levels": 3})
    points = MaterialPoints(torch.as_tensor(d[..., 3:], dtype=dtype), torch.as_tensor(v, dtype=dtype),
                            torch.zeros(n, dtype=torch.long))
    F = lambda s: torch.as_tensor(_stretch(s), dtype=dtype).expand(n, 3, 3).contiguous()  # noqa: E731

    def step(s1, s0, state):
        r = backend.evaluate(F(s1), F(s0), dt, state)
        return average_sigma_dev(r.P.numpy(), F(s1).numpy()) @ _PROJECT / 1e6, backend.commit(r.state)

    return _probe(step, backend.setup(points, torch.device("cpu"), dtype), levels, prestep, alphas)


def plot_incremental_response(res: dict, path, title: str):
    """One panel per committed strain: the mean response over the VEs against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L = len(res["levels"])
    fig, axes = plt.subplots(1, L, figsize=(2.6 * L, 2.8), sharey=False)
    a = 100 * np.asarray(res["alphas"])
    for k, ax in enumerate(np.atleast_1d(axes)):
        for key, style in (("taylor", "k-"), ("gru", "C0--")):
            if key in res:
                r = np.asarray(res[key][k])
                ax.plot(a, r.mean(1), style, label=f"{key} ({100 * res['falling_' + key][k]:.0f} % falling)")
        ax.set_title(f"committed ||ln U|| = {res['levels'][k]:g}", fontsize=8)
        ax.set_xlabel("step ||Δ ln U|| (%)", fontsize=8)
        ax.legend(fontsize=6)
    np.atleast_1d(axes)[0].set_ylabel("σ_dev : D (MPa)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
