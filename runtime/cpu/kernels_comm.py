"""Kernels of the collective ops, for NumPy and CuPy alike: pack gradients into a bucket,
reduce it in place over the current communicator, read each gradient back as a view."""
from __future__ import annotations

from math import prod

from .. import comm


def table(xp):
    """{op: (kernel, kind)} for array module xp."""

    def grad_pack(*gs, mean=False, out=None):
        """Every operand flattened, one after the other, into the flat `out`; mean=True: each
        divided by the number of processes on the way (then a sum allreduce is the mean, with
        no pass of its own over the bucket)."""
        if out is None:
            out = xp.empty(sum(g.size for g in gs), dtype=gs[0].dtype)
        size = comm.current().size if mean else 1
        o = 0
        for g in gs:
            # Write through a reshaped view: a transposed gradient is read in place.
            view = out[o:o + g.size].reshape(g.shape)
            if size == 1:
                view[...] = g
            else:
                xp.divide(g, size, out=view)
            o += g.size
        return out

    def allreduce(x, op="sum"):
        """x reduced over every process, in place; returns x.

        A "view" kernel: the pass gives it a grad_pack result nothing else reads, so
        reducing that buffer in place saves a copy of every bucket per step.
        """
        if not x.flags.c_contiguous:  # a buffer laid out otherwise: reduce a copy
            x = xp.ascontiguousarray(x)
        c = comm.current()
        if c.size == 1:
            return x
        if xp.__name__ == "numpy":
            return c.allreduce_(x, op)
        # The pip MPI wheels are not CUDA-aware: CuPy memory goes through NCCL, never MPI.
        return comm.device_comm().device_allreduce_(x, op)

    def grad_unpack(flat, offset=0, shape=()):
        """The gradient at `offset` of the reduced bucket, as a view."""
        return flat[offset:offset + prod(shape)].reshape(shape)

    return {"grad_pack": (grad_pack, "out"), "allreduce": (allreduce, "view"),
            "grad_unpack": (grad_unpack, "view")}
