"""Kernels of shapes as values (shape, dim) and of ops whose sizes are run-time integer
scalars (reshape_dyn, alloc, arange_dyn), for NumPy and CuPy alike: `table(xp)`."""
from __future__ import annotations

import numpy as np


def _sizes(spec, sizes, x_shape=None):
    """The concrete shape of a size spec: ints, "arg" (next operand), -1, ("dim", k)."""
    out, k = [], 0
    for d in spec:
        if d == "arg":
            d = int(sizes[k])  # on the GPU: one small device-to-host copy
            k += 1
            if d < 0:
                raise ValueError(f"a size read at run time is negative ({d})")
        elif isinstance(d, tuple):
            d = x_shape[d[1]]
        out.append(d)
    return tuple(out)


def table(xp):
    """{kernel name: (function, kind)} on the array module xp."""

    # shape and dim write a small planned buffer: a view kind would keep x's buffer alive
    # as long as the shape is.
    def shape(x, out=None):
        if out is None:
            return xp.asarray(x.shape, dtype=xp.int64)
        out[...] = xp.asarray(x.shape, dtype=xp.int64)
        return out

    def dim(x, axis, out=None):
        if out is None:
            return xp.asarray(x.shape[axis], dtype=xp.int64)
        out.fill(x.shape[axis])
        return out

    def reshape_dyn(x, *sizes, shape):
        want = _sizes(shape, sizes, x.shape)
        try:
            return xp.reshape(x, want)
        except ValueError:
            raise ValueError(f"cannot reshape an array of shape {tuple(x.shape)} "
                             f"({x.size} elements) into {want}") from None

    def alloc(v, *sizes, shape, out=None):
        want = _sizes(shape, sizes)
        if out is None:
            out = xp.empty(want, dtype=v.dtype)
        out[...] = v
        return out

    def arange_dyn(start, stop, step, dtype):
        if step == 0:
            raise ValueError("arange: step must not be zero")
        return xp.arange(start.item(), stop.item(), step.item()).astype(dtype, copy=False)

    return {"shape": (shape, "out"), "dim": (dim, "out"),
            "reshape_dyn": (reshape_dyn, "view"), "alloc": (alloc, "out"),
            "arange_dyn": (arange_dyn, "view")}
