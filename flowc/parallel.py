"""Data-parallel helpers for the Python API: the world, shards of a global batch, rank 0's
parameters broadcast, outputs gathered on rank 0, and the whole job ended on any rank's error.

The gradient exchange itself is graph ops (`fc.function(..., data_parallel=True)`, see
flowc/passes/data_parallel.py); these helpers are what a training loop adds around it.
With one process every helper is a no-op and MPI is never imported.
"""
from __future__ import annotations

import sys

import numpy as np

from flowc_runtime import comm as _comm

from .ir.errors import FlowcError

LAUNCH_HINT = ("launch it with `flowc launch -n N train ...` or "
               "`mpiexec -n N python -m mpi4py -m flowc train ...`")


def world():
    """This process's communicator (rank, size): MPI under an MPI launcher, else one process."""
    return _comm.current()


def require_world(what="--data-parallel"):
    """The communicator, or a FlowcError saying how to launch when there is one process."""
    w = world()
    if w.size < 2:
        raise FlowcError(f"{what} needs several processes, but this is a world of one: "
                         + LAUNCH_HINT)
    return w


def shard(rows, rank, size, what="the global batch"):
    """The slice of `rows` rows that `rank` of `size` processes takes (contiguous, equal)."""
    if rows % size:
        raise FlowcError(f"{what} has {rows} rows, which {size} processes cannot share "
                         f"equally; use a batch size that is a multiple of {size} (and a data "
                         f"set whose last batch is one too), or another number of processes")
    k = rows // size
    return slice(rank * k, (rank + 1) * k)


def broadcast_params(params, w=None):
    """Give every process rank 0's values of `params` (flowc param tensors), in place."""
    w = world() if w is None else w
    if w.size < 2:
        return
    for p in params:
        v = np.array(p.get_value(), order="C")   # a copy; ascontiguousarray makes a 0-d param 1-d
        w.bcast_(v, root=0)
        p.set_value(v)


def gather_rows(array, w=None):
    """Each process's rows, concatenated in rank order on rank 0 (None on the others)."""
    w = world() if w is None else w
    if w.size < 2:
        return array
    parts = w.gather(np.asarray(array), root=0)
    return None if parts is None else np.concatenate(parts)


def abort_on_exception(w=None):
    """Make an uncaught exception on this rank end the whole job (MPI would otherwise wait
    forever in the other ranks' next collective), naming the rank and the error."""
    w = world() if w is None else w
    if w.size < 2 or getattr(sys.excepthook, "_flowc_abort", False):
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        print(f"flowc: rank {w.rank} of {w.size} failed with {kind.__name__}: {value}; "
              "aborting the job", file=sys.stderr, flush=True)
        w.abort(1)
    hook._flowc_abort = True
    sys.excepthook = hook


def mark_done(w=None):
    """Tell `flowc launch` this rank finished (call last; a script launched by it must)."""
    from .launch import mark_done as _mark
    _mark((world() if w is None else w).rank)
