"""The batched constitutive-backend contract (DESIGN.md, "Constitutive backend contract").

All tensors are torch tensors; batches of material points are ``(N, 3, 3)``. A backend
object serves every voxel that uses it during a run and holds no per-voxel state itself:
the state is a dict of tensors returned by :meth:`Backend.setup` and handed back in.

Life cycle per load increment::

    state = backend.setup(points, device, dtype)          # once
    resp = backend.evaluate(F, F_0, dt, state)            # any number of times (pure)
    resp = backend.evaluate(F, F_0, dt, state, start=resp.state)   # may start from an earlier trial
    state = backend.commit(resp.state)                    # once the increment converged

A cutback simply calls ``evaluate`` again with the same committed ``state``.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..schema import Schema
from .parameters import check_phase

State = dict[str, torch.Tensor]


@dataclass
class MaterialPoints:
    """Per-voxel data handed to :meth:`Backend.setup`.

    Attributes
    ----------
    orientations : (N, K, 4) tensor
        Unit quaternions (scalar first, DAMASK's passive convention) of the K constituents
        of every point. Points with fewer constituents are padded with fraction 0.
    fractions : (N, K) tensor
        Volume fractions ``v`` of the constituents; each row sums to 1.
    material_id : (N,) long tensor
        Index into ``material`` of material.yaml, for bookkeeping and output.
    extra : dict
        Backend-specific per-point data (e.g. a microstructure descriptor), each entry a
        tensor whose first axis is N.
    """

    orientations: torch.Tensor
    fractions: torch.Tensor
    material_id: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.orientations.shape[0])

    def subset(self, index: torch.Tensor) -> "MaterialPoints":
        """The points selected by ``index`` (a boolean mask or integer index)."""
        return MaterialPoints(self.orientations[index], self.fractions[index],
                              self.material_id[index], {k: v[index] for k, v in self.extra.items()})


@dataclass
class Response:
    """What :meth:`Backend.evaluate` returns.

    Attributes
    ----------
    P : (N, 3, 3) tensor
        First Piola-Kirchhoff stress at the end of the increment.
    state : dict of tensors
        Trial state; becomes the committed state through :meth:`Backend.commit`.
    failed : (N,) bool tensor
        Points whose update did not converge or produced non-finite numbers. Their P is
        finite (the elastic predictor or zero) so the solver can continue to a cutback.
    """

    P: torch.Tensor
    state: State
    failed: torch.Tensor


def keep_committed(trial: State, state: State, keep: torch.Tensor) -> State:
    """``trial`` with the committed ``state`` at the points where ``keep`` (N,) is true (a tensor the
    trial shares with the committed state stays shared)."""
    return {k: t if t is state[k] else torch.where(keep.reshape((-1,) + (1,) * (t.ndim - 1)), state[k], t)
            for k, t in trial.items()}


class Backend(abc.ABC):
    """A batched constitutive law.

    Parameters
    ----------
    phase : mapping
        The phase entry of material.yaml (``lattice``, ``mechanical: {elastic, plastic}``).
    options : mapping
        Backend options from the run config (``backend_options``), validated against
        :attr:`options_schema` (unknown keys, types and bounds: one-line
        :class:`polyfe2.errors.InputError`).
    source : str
        The material file, for error messages.
    base_dir : path, optional
        Directory of the run config: relative file options start there.
    phase_name : str
        The phase's name in material.yaml, for error messages.
    """

    #: the options this backend accepts (key, type, bounds, default, description)
    options_schema: Schema = Schema("backend_options", {})

    def __init__(self, phase: Mapping[str, Any], options: Mapping[str, Any] | None = None,
                 *, source: str = "material.yaml", base_dir=None, phase_name: str = "NAME"):
        self.options = self.options_schema.validate(options, prefix="backend_options")
        self.plastic = check_phase(phase, file=source, name=phase_name)
        self.phase = phase
        self.phase_name = phase_name
        self.source = source
        self.base_dir = base_dir
        el = phase["mechanical"]["elastic"]
        self.C_11, self.C_12, self.C_44 = (float(el[c]) for c in ("C_11", "C_12", "C_44"))

    name: str = "?"
    #: whether :meth:`evaluate` takes ``start=`` (see there; the solver passes it only then)
    starts_from_trial: bool = False

    def describe(self) -> str:
        """One line for the run log: the backend and how it computes."""
        return self.name

    def point_data(self, material_ids) -> dict[str, torch.Tensor]:
        """Per-point ``extra`` data for :class:`MaterialPoints` (first axis: the points, whose
        material IDs are ``material_ids``, a numpy int array). None by default."""
        return {}

    @abc.abstractmethod
    def setup(self, points: MaterialPoints, device: torch.device, dtype: torch.dtype) -> State:
        """Initial committed state of all points."""

    @abc.abstractmethod
    def evaluate(self, F: torch.Tensor, F_0: torch.Tensor, dt: float, state: State) -> Response:
        """Stress at the end of the increment; pure (never modifies ``state``).

        A backend with ``starts_from_trial = True`` also takes ``start=``, the trial state of an
        earlier evaluation of the same increment (the solver passes its latest one), to start its
        local iteration from; its answer may then change within that iteration's tolerance."""

    def commit(self, trial_state: State) -> State:
        """Make a converged trial state the committed one."""
        return trial_state

    def workspace_bytes(self, state: State) -> int:
        """Bytes of temporaries one :meth:`evaluate` holds beyond its trial state: a fixed amount
        where the update runs in chunks (not per point), for the run's memory estimate; 0 by default."""
        return 0

    def beyond_range(self, state: State) -> tuple[int, float, float] | None:
        """For a learned model: how many points of the committed ``state`` lie beyond the range it
        was trained on, the largest value and the limit (the model extrapolates there); None for a
        backend without such a range."""
        return None

    @abc.abstractmethod
    def stiffness(self, state: State) -> torch.Tensor:
        """(N, 3, 3, 3, 3) lab-frame elastic stiffness dP/dF about the committed state.

        Used for the reference medium of the Green operator and for the compliance that
        corrects the average F under stress boundary conditions.
        """
