"""``gru``: the microstructure-sensitive GRU surrogate (paper 003) at every voxel.

Every point is one sample of the surrogate: its own 20-grain descriptor (from a descriptor
file indexed by material ID) and its own hidden state, which stays on the run's device.

Per load increment (DESIGN.md, "GRU surrogate"; kernels in :mod:`polyfe2.kernels`):

* once, when the previous increment is committed (:meth:`GRUBackend.commit`, or
  :meth:`GRUBackend.setup` for the first): ``gh_l = W_hh_l h_l + b_hh_l`` and the
  microstructure part of the first layer's input ``W_ih_1 (W_in_m m + b_in) + b_ih_1``;
* per residual evaluation (:meth:`GRUBackend.evaluate`): one GRU step from the committed
  hidden state with only the deformation term, the layer-2 input GEMM and the gates.

Stress (paper 003, section 4): the network gives the deviatoric Cauchy stress for the
isochoric right stretch ``U_iso`` of ``F = R U`` (the training paths are pure stretches), rotated
to the current frame, plus a volumetric part from the bulk modulus ``K = (C_11 + 2 C_12) / 3``::

    sigma = R sigma_dev(U_iso) R^T + K ln(J) / J I,      P = J sigma F^-T.

The reference-medium stiffness is the iso-strain average of the cubic elastic constants over
the descriptor's grains.
"""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
import numpy as np
import torch

from ..errors import InputError
from ..schema import Field, Schema
from ..kernels import GRUPrecomputed
from ..microstructure.descriptor import DESCRIPTOR_LAYOUT, DESCRIPTOR_WIDTH, grain_fractions
from ..mechanics import (average_stiffness, bulk_modulus_cubic, cubic_stiffness, deviatoric, eye3,
                         first_Piola_Kirchhoff, polar_decomposition, voigt_to_tensor)
from .surrogates import is_grain_model, load_surrogate
from . import crystal
from .base import Backend, MaterialPoints, Response, State
from .registry import register

#: the model shipped with the package (used when ``backend_options/model`` is not given): it
#: follows full-field crystal plasticity to ||ln U|| = 0.05 and iso-strain crystal plasticity
#: from there to 1 (the strains of a crack tip), and does not read the seeds' positions.
#: ``gru_aluminium_v6.pt``, also shipped, is the same trained to 0.6; ``gru_aluminium_v5.pt`` is
#: trained to 0.05 only (more accurate there, falling stress beyond); ``gru_aluminium_v4.pt`` is
#: v5 with positions; ``gru_aluminium_v3.pt`` follows the iso-strain (taylor K = 20) labels;
#: ``gru_aluminium_v8.pt`` keeps one GRU state per grain (:mod:`.grain_gru_network`): the most
#: accurate to 0.05, at many times the cost of an evaluation on a CPU; ``gru_aluminium_v8_iso.pt``
#: is its first stage, which follows the iso-strain labels (more closely than v3);
#: ``model: <name>`` selects one by name.
SHIPPED_MODEL = "gru_aluminium_v7.pt"
_SETUP_CHUNK = 32768
#: points per step of the per-grain model (its temporaries scale with chunk x grains x width)
_GRAIN_CHUNK = 4096
#: hidden-state buffers a backend keeps for its trial states: the committed one, the latest
#: trial (the solver's next evaluation may start from it) and the one being written
_POOL_SIZE = 3


def _held_elsewhere(pool: list, i: int) -> bool:
    """Whether anything but ``pool`` holds the tensor ``pool[i]`` or a view of its memory."""
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    if use_count is None:   # cannot tell: never reuse
        return True
    # references: the list's own and getrefcount's argument; storage users: the tensor and
    # the storage object asked
    return sys.getrefcount(pool[i]) > 2 or use_count(pool[i].untyped_storage()._cdata) > 2


def shipped_model_path(name: str = SHIPPED_MODEL) -> Path:
    """A model file shipped with the package (default: the one the backend uses)."""
    return Path(str(resources.files("polyfe2") / "models" / name))


@register("gru")
class GRUBackend(Backend):
    """GRU surrogate of a 20-grain VE's deviatoric stress response, one sample per voxel.

    Parameters
    ----------
    phase : mapping
        material.yaml phase; ``mechanical/elastic`` (``C_11``, ``C_12``, ``C_44``) gives the bulk
        modulus and the reference stiffness. ``plastic`` is what the model was trained for.
    options : mapping, optional
        ``model`` -- model file (.pt, relative to the run config, or the name of a shipped model);
        default the shipped model;
        ``descriptors`` -- HDF5 file with a dataset ``descriptor`` (n_materials, G, 7), rows
        ``[x, y, z, q0..q3]`` (:data:`polyfe2.microstructure.descriptor.DESCRIPTOR_LAYOUT`), the sample of every
        material ID, and optionally ``fractions`` (n_materials, G), the grains' volume fractions
        (for a model with volume pooling they are otherwise measured on the VE's 16^3 Voronoi
        grid, about 7 ms per material); required;
        ``kernels`` -- ``auto`` (compiled kernels when built), ``reference`` (the split step in
        torch) or ``torch`` (``nn.GRU`` from the committed state every evaluation, nothing
        precomputed);
        ``math`` -- ``fp32`` (default), ``tf32`` or ``bf16`` (CUDA kernels only).

    State keys
    ----------
    ``h`` (L, N, H) float32 committed hidden state; ``m`` (N, m) microstructure vector; ``U``
    (N, 3, 3) committed stretch in the run's precision (the start of the increment, for the
    increment features);
    ``gh`` (L, N, 3H) and ``gx_const`` (N, 3H) the once-per-increment terms (empty with
    ``kernels: torch``); ``C`` (N, 3, 3, 3, 3) reference stiffness.
    """

    options_schema = Schema("backend_options (gru)", {
        "descriptors": Field("file", "HDF5 file with dataset 'descriptor' (n_materials, 20, 7) and optionally "
                             "'fractions' (n_materials, 20), relative to the run config"),
        "model": Field("file", "model file (.pt), relative to the run config, or a shipped model's name "
                       "(gru_aluminium_v8.pt, gru_aluminium_v8_iso.pt, gru_aluminium_v7.pt, gru_aluminium_v6.pt, "
                       "gru_aluminium_v5.pt, gru_aluminium_v4.pt, gru_aluminium_v3.pt); default: gru_aluminium_v7.pt",
                       default=None),
        "kernels": Field("choice", "compiled kernels when built (auto), the split step in torch (reference) "
                         "or nn.GRU every evaluation (torch); a per-grain model always steps in torch",
                         default="auto", choices=("auto", "reference", "torch")),
        "math": Field("choice", "arithmetic of the CUDA kernels", default="fp32", choices=("fp32", "tf32", "bf16")),
    })

    def __init__(self, phase, options=None, *, source="material.yaml", base_dir=None, phase_name="NAME"):
        super().__init__(phase, options, source=source, base_dir=base_dir, phase_name=phase_name)
        self.bulk = bulk_modulus_cubic(self.C_11, self.C_12)
        self._measured_fractions = 0   # materials whose grain fractions point_data had to measure
        o = self.options
        base = Path(base_dir) if base_dir is not None else Path(".")
        self.descriptor_file = base / str(o["descriptors"])
        self.model_file = base / str(o["model"]) if o["model"] else shipped_model_path()
        bare = o["model"] and Path(str(o["model"])).name == str(o["model"])
        if bare and not self.model_file.exists() and shipped_model_path(str(o["model"])).exists():
            self.model_file = shipped_model_path(str(o["model"]))   # a shipped model by its file name
        self.model = load_surrogate(self.model_file).float().eval()
        self.per_grain = is_grain_model(self.model)
        if self.model.arch["descriptor_width"] != DESCRIPTOR_WIDTH:
            raise InputError(f"the model takes microstructure fingerprints of width {self.model.arch['descriptor_width']}; "
                             f"the gru backend gives it grain descriptors of width {DESCRIPTOR_WIDTH}",
                             file=self.model_file, key="arch.descriptor_width")
        self._fused = None
        self._h_pool: list[torch.Tensor] = []

    def describe(self) -> str:
        impl = {"torch": "nn.GRU step per evaluation", "reference": "split step in torch"}.get(
            self.options["kernels"], self._fused.backend_info() if self._fused is not None else "not set up")
        if self.per_grain:
            impl = f"one GRU state per grain, {self.model.hidden} wide, step in torch in chunks of {_GRAIN_CHUNK} points"
        measured = self._measured_fractions
        note = f", grain fractions measured for {measured} materials (none in the descriptor file)" if measured else ""
        return f"gru (model {self.model_file.name}, {impl}{note})"

    # ------------------------------------------------------------------------------------------
    def point_data(self, material_ids: np.ndarray) -> dict[str, torch.Tensor]:
        """Per-point descriptors (and grain volume fractions, for a model that pools by volume) from
        the descriptor file (``material_ids`` index its rows)."""
        import h5py

        f = self.descriptor_file
        try:
            with h5py.File(f, "r") as h:
                if "descriptor" not in h:
                    raise InputError("no dataset 'descriptor'", file=f, key="descriptor")
                layout = h["descriptor"].attrs.get("layout", DESCRIPTOR_LAYOUT)
                d = h["descriptor"][:]
                v = h["fractions"][:] if "fractions" in h else None
        except OSError:
            raise InputError("descriptor file not found or not HDF5", file=f, key="backend_options/descriptors") from None
        if str(layout) != DESCRIPTOR_LAYOUT:
            raise InputError(f"layout {layout!r}, expected {DESCRIPTOR_LAYOUT!r}", file=f, key="descriptor")
        if d.ndim != 3 or d.shape[2] != DESCRIPTOR_WIDTH or not np.isfinite(d).all():
            raise InputError(f"expected finite (n_materials, G, {DESCRIPTOR_WIDTH}), got shape {d.shape}",
                             file=f, key="descriptor")
        if material_ids.size and material_ids.max() >= d.shape[0]:
            raise InputError(f"{d.shape[0]} descriptors but material ID {int(material_ids.max())} is used",
                             file=f, key="descriptor")
        out = {"descriptor": torch.as_tensor(d[material_ids])}
        if self.model.pooling == "volume":
            if v is None:   # measured once per material that is used
                used = np.unique(material_ids)
                v = np.zeros(d.shape[:2])
                v[used] = [grain_fractions(d[i]) for i in used]
                self._measured_fractions = len(used)
            elif v.shape != d.shape[:2] or not np.isfinite(v).all() or (v < 0).any() or (v.sum(1) <= 0).any():
                raise InputError(f"expected finite non-negative (n_materials, G) = {d.shape[:2]} with positive "
                                 f"row sums, got shape {v.shape}", file=f, key="fractions")
            out["fractions"] = torch.as_tensor(v[material_ids])
        return out

    def setup(self, points: MaterialPoints, device, dtype) -> State:
        if "descriptor" not in points.extra:
            raise InputError("points carry no descriptors", file=self.descriptor_file, key="descriptor")
        d = points.extra["descriptor"].to(device=device, dtype=torch.float32)
        v_all = points.extra.get("fractions")
        if self.model.pooling == "volume" and v_all is None:
            raise InputError("points carry no grain volume fractions", file=self.descriptor_file, key="fractions")
        self.model.to(device)
        if self.options["kernels"] != "torch" and not self.per_grain:   # the split-step kernels fit the voxel model
            self._fused = self.model.fused(device=device, math=self.options["math"],
                                           backend="reference" if self.options["kernels"] == "reference" else "auto")
        with torch.no_grad():   # in chunks: the per-grain MLPs hold (n, 20, width) activations
            vs = (v_all.to(device=device, dtype=torch.float32).split(_SETUP_CHUNK) if self.model.pooling == "volume"
                  else [None] * len(d.split(_SETUP_CHUNK)))
            parts = [self.model.initial_state(c, w) for c, w in zip(d.split(_SETUP_CHUNK), vs)]
            h = torch.cat([p[0] for p in parts], dim=1)
            m = torch.cat([p[1] for p in parts], dim=0)
        q = d[..., 3:].to(torch.float64)
        v = torch.full(q.shape[:2], 1.0 / q.shape[1], dtype=torch.float64)
        R = crystal.orientation_matrices(q, v, device=device, dtype=dtype)
        C = average_stiffness(cubic_stiffness(self.C_11, self.C_12, self.C_44, device=device,
                                                              dtype=dtype), R, v.to(device=device, dtype=dtype))
        U = torch.eye(3, dtype=dtype, device=device).expand(d.shape[0], 3, 3).contiguous()
        return self.commit({"h": h.contiguous(), "m": m.contiguous(), "C": C, "U": U})

    def commit(self, trial_state: State) -> State:
        """Committed state plus the once-per-increment terms of the next increment's step."""
        state = {k: trial_state[k] for k in ("h", "m", "C", "U")}
        if self._fused is not None:
            pre = self._fused.precompute(state["h"], state["m"])
            state["gh"], state["gx_const"] = pre.gh, pre.gx_const
        return state

    def stiffness(self, state: State) -> torch.Tensor:
        return state["C"]

    def beyond_range(self, state: State) -> tuple[int, float, float] | None:
        """Points whose committed isochoric log stretch ||dev ln U|| exceeds the largest of the
        training paths (the model file's ``meta.max_strain``)."""
        limit = self.model.meta.get("max_strain")
        if not limit or "U" not in state:   # a model file without it: no range to check
            return None
        if state["U"].shape[0] == 0:
            return 0, 0.0, float(limit)
        ln_U = torch.log(torch.linalg.eigvalsh(state["U"].double()))
        size = (ln_U - ln_U.mean(-1, keepdim=True)).norm(dim=-1)
        return int((size > limit).sum()), float(size.max()), float(limit)

    def _trial_h(self, h: torch.Tensor) -> torch.Tensor:
        """Memory for a trial hidden state like ``h``: a buffer of an earlier trial state that
        nothing holds any more, else a new one. Fresh memory costs a page fault per 4 kB on every
        evaluation (0.7 GB of hidden state at the 151x151x15 plate); reused memory does not, and
        an evaluation stays pure: a buffer still held by a state is never written."""
        pool = self._h_pool
        pool[:] = [b for b in pool if (b.shape, b.dtype, b.device) == (h.shape, h.dtype, h.device)]
        for i in range(len(pool)):
            if not _held_elsewhere(pool, i):
                return pool[i]
        buf = torch.empty_like(h)
        if len(pool) < _POOL_SIZE:
            pool.append(buf)
        return buf

    def _grain_step(self, U, U_0, dt, state):
        """The per-grain model's step in chunks of points: its temporaries hold (chunk x G, width)
        activations, not the whole grid's."""
        h = state["h"]
        h_new = self._trial_h(h)
        s_dev = torch.empty(U.shape[0], 6, dtype=torch.float32, device=U.device)
        for i in range(0, U.shape[0], _GRAIN_CHUNK):
            j = slice(i, i + _GRAIN_CHUNK)
            s_dev[j], h_new[:, j] = self.model.step(U[j], state["m"][j], h[:, j], U_0[j], dt)
        return s_dev, h_new

    def workspace_bytes(self, state: State) -> int:
        """The per-grain model's chunk temporaries: about 16 floats of width per grain and layer."""
        if not self.per_grain or "m" not in state:
            return 0
        G = state["m"].shape[1] // 10
        m = self.model
        return 4 * _GRAIN_CHUNK * G * (16 * m.hidden * m.layers + 4 * m.width + 64)

    @torch.no_grad()
    def evaluate(self, F: torch.Tensor, F_0: torch.Tensor, dt: float, state: State) -> Response:
        J = torch.linalg.det(F)
        ok = torch.isfinite(F).flatten(1).all(1) & (J > 0)
        I = eye3(F)
        Fs = torch.where(ok[:, None, None], F, I.expand_as(F))
        J = torch.where(ok, J, torch.ones_like(J))
        R, U = polar_decomposition(Fs)
        if "U" not in state:   # a restart point written before the committed stretch was kept
            state = dict(state, U=polar_decomposition(F_0)[1])
        # the step features (stretch and its increment) are formed and standardised in F's precision
        # and only then rounded to the network's float32: an increment of 1e-4 formed from float32
        # stretches keeps about 3 digits, and P would jump by up to kPa at steps of F of 1e-8
        U_0 = state["U"].to(U.dtype)
        if self.per_grain:
            s_dev, h_new = self._grain_step(U, U_0, dt, state)
        elif self._fused is None:
            s_dev, h_new = self.model.step(U, state["m"], state["h"], U_0, dt)
        else:
            f = self.model.step_features(U, U_0, dt).to(torch.float32)
            h_new, y = self._fused.step(f.contiguous(), state["h"], GRUPrecomputed(state["gh"], state["gx_const"]),
                                        out_h=self._trial_h(state["h"]))
            s_dev = self.model.unscale_stress(y)
        s = deviatoric(voigt_to_tensor(s_dev.to(F.dtype)))   # keep it deviatoric
        sigma = R @ s @ R.transpose(-1, -2) + (self.bulk * torch.log(J) / J)[:, None, None] * I
        P = first_Piola_Kirchhoff(sigma, Fs)
        ok = ok & torch.isfinite(P).flatten(1).all(1)
        P = torch.where(ok[:, None, None], P, torch.zeros_like(P))
        return Response(P=P, state={"h": h_new, "m": state["m"], "C": state["C"], "U": U}, failed=~ok)
