"""One material model for the whole grid: each phase's cells are served by its backend.

Phases with a ``plastic`` law use the run's backend (``backend`` in the run config, or a
per-phase override in ``backends``); phases with only ``elastic`` (e.g. the soft phase that
stands for voids and free surfaces) use ``elastic``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Backend, MaterialPoints, State


@dataclass
class PhaseGroup:
    name: str
    backend: Backend
    index: torch.Tensor  # flat indices of this phase's cells
    points: MaterialPoints


class MaterialModel:
    """Evaluates P(F) for all N cells by scattering to the phase backends.

    ``state`` is a dict phase-name -> that backend's state; like the backends, every method
    is pure except :meth:`commit`, which only returns its argument's new committed form.
    """

    def __init__(self, groups: list[PhaseGroup], N: int):
        self.groups = groups
        self.N = N

    def setup(self, device, dtype) -> dict[str, State]:
        return {g.name: g.backend.setup(g.points, device, dtype) for g in self.groups}

    def evaluate(self, F: torch.Tensor, F_0: torch.Tensor, dt: float, state: dict[str, State],
                 start: dict[str, State] | None = None):
        """(N,3,3) F → P (N,3,3), trial state, failed (N,) bool; ``start``: the trial state of an
        earlier evaluation of the increment (see :meth:`Backend.evaluate`)."""
        P = torch.empty_like(F)
        failed = torch.zeros(F.shape[0], dtype=torch.bool, device=F.device)
        trial = {}
        for g in self.groups:
            args = (F[g.index], F_0[g.index], dt, state[g.name])
            if start is not None and g.backend.starts_from_trial:   # backends written before `start` work unchanged
                r = g.backend.evaluate(*args, start=start[g.name])
            else:
                r = g.backend.evaluate(*args)
            P[g.index] = r.P
            failed[g.index] = r.failed
            trial[g.name] = r.state
        return P, trial, failed

    def workspace_bytes(self, state: dict[str, State]) -> int:
        """The largest of the groups' update temporaries (the groups are evaluated one after another)."""
        return max((g.backend.workspace_bytes(state[g.name]) for g in self.groups), default=0)

    def commit(self, trial: dict[str, State]) -> dict[str, State]:
        return {g.name: g.backend.commit(trial[g.name]) for g in self.groups}

    def stiffness(self, state: dict[str, State]) -> torch.Tensor:
        """(N,3,3,3,3) elastic stiffness dP/dF of every cell."""
        C = None
        for g in self.groups:
            Cg = g.backend.stiffness(state[g.name])
            if C is None:
                C = Cg.new_empty((self.N, 3, 3, 3, 3))
            C[g.index] = Cg
        return C

    def outputs(self, state: dict[str, State], F: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Per-phase constituent outputs (N_phase, K, ...) of backends that offer
        ``constituent_outputs(state, F)``; ``F`` is the (N,3,3) cell field."""
        out = {}
        for g in self.groups:
            fn = getattr(g.backend, "constituent_outputs", None)
            if fn is not None:
                out[g.name] = fn(state[g.name], F[g.index])
        return out
