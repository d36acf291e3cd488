"""Tensors made from sizes given as Python ints: arange, zeros, ones, full, alloc.

Sizes are Python ints here (symbolic shapes are not graph values yet), so these are constants
of the graph, except alloc of a tensor value, which broadcasts it (and its gradient sums back).
"""
from __future__ import annotations

import numpy as np

from ..ir.tensor import Tensor
from .build import as_tensor, axis_tuple, constant, op_error


def _size(op, v):
    if isinstance(v, Tensor):
        raise op_error(op, [v], "sizes must be Python ints here (a size read from a tensor's "
                       "run-time shape is not supported yet)")
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise op_error(op, [], f"expected an int, got {v!r}")
    return int(v)


def _shape(op, shape):
    if isinstance(shape, Tensor):
        _size(op, shape)
    try:
        shape = axis_tuple(shape)
    except Exception:
        raise op_error(op, [], f"shape must be an int or a tuple of ints, got {shape!r}") \
            from None
    if any(d < 0 for d in shape):
        raise op_error(op, [], f"negative dimensions are not allowed, got {shape}")
    return shape


def arange(start, stop=None, step=1, dtype=None, graph=None):
    """np.arange(start, stop, step) as a constant (int64 for int arguments)."""
    for v in (start, stop, step):
        if isinstance(v, Tensor):
            _size("arange", v)
    if step == 0:
        raise op_error("arange", [], "step must not be zero")
    a = np.arange(start, stop, step)
    return constant(a if dtype is None else a.astype(dtype), graph=graph)


def zeros(shape, dtype="float64", graph=None):
    """A constant of zeros."""
    return constant(np.zeros(_shape("zeros", shape), dtype=dtype), graph=graph)


def ones(shape, dtype="float64", graph=None):
    """A constant of ones."""
    return constant(np.ones(_shape("ones", shape), dtype=dtype), graph=graph)


def full(shape, value, dtype=None, graph=None):
    """`value` repeated to `shape`: a constant, or a tensor value broadcast (see alloc)."""
    shape = _shape("full", shape)
    if isinstance(value, Tensor):
        from .api import broadcast_to, cast
        v = value if dtype is None else cast(value, dtype)
        if v.ndim:
            raise op_error("full", [value], f"fill value must be a scalar, got {v.type.short()}")
        return broadcast_to(v, shape)
    return constant(np.full(shape, value, dtype=dtype), graph=graph)


def alloc(value, *shape):
    """Theano's alloc(value, *shape): value broadcast to `shape` (gradient sums it back)."""
    shape = tuple(_size("alloc", d) for d in shape)
    if not isinstance(value, Tensor):
        return constant(np.broadcast_to(np.asarray(value), shape).copy())
    from .api import broadcast_to
    return broadcast_to(as_tensor(value), shape)
