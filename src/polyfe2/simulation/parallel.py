"""The MPI side of a run: which rank holds what, agreeing on errors, gathering slabs.

A run on K ranks (``mpiexec -n K polyfe2 run CONFIG.yaml``) splits the grid into K z-slabs
(:func:`polyfe2.solver.fft.z_slabs`). Every rank builds only its slab's material points and
state; rank 0 writes the files, from slabs gathered to it (h5py here is not built with MPI, so
no parallel HDF5). With one rank nothing here communicates.

Errors: a step that can fail on some ranks only (reading inputs, building the material points,
creating the outputs) runs under :func:`agree`, so that every rank raises the same error and
rank 0 alone reports it. Anything else that escapes on one rank while the others wait in a
collective call is handled by the command line, which calls ``MPI_Abort`` (every rank stops
within seconds, never a hang).
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import InputError, SolverError


def world():
    """MPI's world communicator, or None when the run has one rank (mpi4py is then not needed)."""
    if not any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")):
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def rank(comm) -> int:
    return 0 if comm is None else comm.Get_rank()


def local_rank(comm) -> int:
    """This rank's index among the ranks on its node (picks its GPU: one GPU per rank)."""
    if comm is None:
        return 0
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_rank()
    finally:
        node.Free()


class AgreedError(Exception):
    """Marks an error every rank raised together (the command line reports it on rank 0 only)."""


def agree(_comm, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on every rank of ``_comm``; when it raised an :class:`InputError` or
    :class:`SolverError` on any rank, every rank raises that error (the lowest failing
    rank's). Other exceptions propagate on the rank where they happened."""
    error = None
    try:
        result = fn(*args, **kwargs)
    except (InputError, SolverError) as e:
        error, result = e, None
    comm = _comm
    if comm is None:
        if error is not None:
            raise error
        return result
    errors = comm.allgather(None if error is None else (type(error).__name__, str(error)))
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        if error is not None and str(error) == first[1]:
            error.agreed = True
            raise error
        cls = InputError if first[0] == "InputError" else SolverError
        agreed = cls(first[1])
        agreed.agreed = True
        raise agreed
    return result


def gather_slabs(comm, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Each rank's (Nx,Ny,nz,...) arrays → on rank 0 the whole-grid arrays (joined along z, in
    rank order), None on the other ranks. One rank: the arrays themselves."""
    if comm is None:
        return fields
    gathered = comm.gather(fields, root=0)
    if comm.Get_rank() != 0:
        return None
    return {name: np.concatenate([g[name] for g in gathered], axis=2) for name in fields}
