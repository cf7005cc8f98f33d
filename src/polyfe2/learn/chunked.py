"""Data sets computed in independent chunks, written to one HDF5 file as they finish.

The file's attributes record what is being generated; reopening it with the same attributes
resumes (chunks marked in ``chunk_done`` are kept), with other attributes it is a one-line error.
Chunks run in worker processes (``concurrent.futures``) with a progress bar; every chunk is
deterministic on its own, so the result does not depend on the number of workers or on
interruptions.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..errors import InputError

__all__ = ["open_chunked", "run_chunks", "done_rows", "open_to_read"]


def open_chunked(path: Path, attrs: Mapping, datasets: Mapping[str, tuple], n_chunks: int):
    """Open ``path`` to resume with the same ``attrs``, or create it with ``datasets``
    ``{name: (shape, dtype[, fillvalue])}`` and a ``chunk_done`` flag per chunk."""
    import h5py

    path = Path(path)
    attrs = {k: ("" if v is None else v) for k, v in attrs.items()}
    if path.exists():
        try:
            f = h5py.File(path, "a")
        except OSError:
            raise InputError("exists and is not a writable HDF5 file; choose another --out", file=path) from None
        diff = [k for k in attrs if str(f.attrs.get(k)) != str(attrs[k])]
        if diff or "chunk_done" not in f:
            f.close()
            raise InputError(f"exists with other settings {diff}; choose another --out or the same "
                             "options to resume", file=path, key=diff[0] if diff else "chunk_done")
        return f
    path.parent.mkdir(parents=True, exist_ok=True)
    f = h5py.File(path, "w")
    f.attrs.update(attrs)
    for name, (shape, dtype, *fill) in datasets.items():
        f.create_dataset(name, shape, dtype=dtype, fillvalue=fill[0] if fill else None)
    f.create_dataset("chunk_done", (n_chunks,), dtype=bool)
    return f


def run_chunks(f, compute: Callable[[int], dict], rows: Callable[[int], slice], workers: int = 1,
               progress: bool = True, desc: str = "chunks", postfix: Callable[[], str] | None = None) -> list[int]:
    """Compute the chunks not yet done and store each result ``{dataset: array}`` at ``rows(c)``.

    ``compute`` must be picklable when ``workers > 1`` (a module-level function or a
    ``functools.partial`` of one). Returns the chunks computed now.
    """
    from tqdm import tqdm

    n_chunks = f["chunk_done"].shape[0]
    todo = [c for c in range(n_chunks) if not f["chunk_done"][c]]
    bar = tqdm(total=n_chunks, initial=n_chunks - len(todo), unit="chunk", desc=desc, disable=not progress,
               dynamic_ncols=True)

    def store(c, result):
        sl = rows(c)
        for k, v in result.items():
            f[k][sl] = v
        f["chunk_done"][c] = True
        f.flush()
        if postfix is not None:
            bar.set_postfix_str(postfix(), refresh=False)
        bar.update(1)

    try:
        if workers <= 1 or len(todo) <= 1:
            for c in todo:
                store(c, compute(c))
        else:
            with ProcessPoolExecutor(min(workers, len(todo))) as pool:
                futures = {c: pool.submit(compute, c) for c in todo}
                for c in todo:
                    store(c, futures[c].result())
    finally:
        bar.close()
    return todo


def done_rows(f, rows_per_chunk: int, n: int) -> np.ndarray:
    """(n,) bool: the rows of the chunks already computed."""
    return np.repeat(f["chunk_done"][:], rows_per_chunk)[:n]


def open_to_read(path: Path, fmt: str, made_by: str):
    """``path`` opened read-only after checking that it is a ``fmt`` file (a one-line error
    naming ``made_by``, the command that writes such files, otherwise)."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError):
        raise InputError("not a readable HDF5 file", file=path) from None
    if f.attrs.get("format") != fmt:
        f.close()
        raise InputError(f"expected a {fmt} file ({made_by})", file=path, key="format")
    return f
