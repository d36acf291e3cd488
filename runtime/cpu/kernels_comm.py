"""NumPy kernels of the collective ops: pack gradients into a bucket, reduce it in place over
the current communicator, read each gradient back as a view."""
from __future__ import annotations

from math import prod

import numpy as np

from .. import comm


def grad_pack(*gs, out=None):
    """Every operand flattened, one after the other, into the flat `out`."""
    if out is None:
        out = np.empty(sum(g.size for g in gs), dtype=gs[0].dtype)
    o = 0
    for g in gs:
        # Assign through a reshaped view: a transposed gradient is read in place, not copied.
        out[o:o + g.size].reshape(g.shape)[...] = g
        o += g.size
    return out


def allreduce(x, op="sum"):
    """x reduced over every process, in place; returns x.

    A "view" kernel: the pass gives it a grad_pack result that nothing else reads, so
    reducing that buffer in place saves a copy of every bucket.
    """
    if not x.flags.c_contiguous:  # a buffer the plan laid out otherwise: reduce a copy
        x = np.ascontiguousarray(x)
    return comm.current().allreduce_(x, op)


def grad_unpack(flat, offset=0, shape=()):
    """The gradient at `offset` of the reduced bucket, as a view."""
    return flat[offset:offset + prod(shape)].reshape(shape)


OUT = {"grad_pack": grad_pack}
VIEW = {"allreduce": allreduce, "grad_unpack": grad_unpack}
