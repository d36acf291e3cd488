"""Tensors made from sizes: arange, zeros, ones, full, alloc.

Sizes that are Python ints make constants; a size that is an integer scalar tensor (y.shape[0],
an input n) is read at run time (the alloc and arange_dyn ops). alloc of a tensor value
broadcasts it, and its gradient sums back.
"""
from __future__ import annotations

import numpy as np

from ..ir.tensor import Tensor
from .api_shape import size_entries
from .build import apply, as_tensor, constant, op_error


def _shape(op, shape):
    """(entries, operands) of a shape argument (see size_entries), ints checked >= 0."""
    return size_entries(op, shape)


def _scalar_operand(op, v, graph):
    if isinstance(v, Tensor):
        if v.ndim != 0:
            raise op_error(op, [v], f"expected a scalar, got {v.type.short()}")
        return v
    return constant(v, graph=graph)


def arange(start, stop=None, step=1, dtype=None, graph=None):
    """np.arange(start, stop, step): a constant (int64 for int arguments), or, where a bound
    is a tensor (y.shape[0]), computed at run time."""
    if stop is None:
        start, stop = 0, start
    if any(isinstance(v, Tensor) for v in (start, stop, step)):
        if isinstance(step, Tensor) is False and step == 0:
            raise op_error("arange", [], "step must not be zero")
        g = next(v.graph for v in (start, stop, step) if isinstance(v, Tensor))
        ops = [_scalar_operand("arange", v, g) for v in (start, stop, step)]
        if dtype is None:  # NumPy's: int64 for int bounds, else the bounds' float type
            dtype = np.result_type(*[np.dtype(o.dtype) for o in ops]).name
        return apply("arange_dyn", ops, dtype=np.dtype(dtype).name)
    if step == 0:
        raise op_error("arange", [], "step must not be zero")
    a = np.arange(start, stop, step)
    return constant(a if dtype is None else a.astype(dtype), graph=graph)


def _filled(op, shape, value, dtype, graph):
    """`value` (a Python number) filled into `shape`: a constant, or alloc for run-time sizes."""
    entries, operands = _shape(op, shape)
    if operands:
        v = constant(np.array(value, dtype=dtype), graph=operands[0].graph)
        return apply("alloc", [v] + operands, shape=entries)
    return constant(np.full(entries, value, dtype=dtype), graph=graph)


def zeros(shape, dtype="float64", graph=None):
    """Zeros of `shape` (sizes may be integer scalar tensors)."""
    return _filled("zeros", shape, 0, dtype, graph)


def ones(shape, dtype="float64", graph=None):
    """Ones of `shape` (sizes may be integer scalar tensors)."""
    return _filled("ones", shape, 1, dtype, graph)


def full(shape, value, dtype=None, graph=None):
    """`value` repeated to `shape`: a constant, or a tensor value broadcast (see alloc)."""
    if isinstance(value, Tensor):
        from .api import cast
        v = value if dtype is None else cast(value, dtype)
        if v.ndim:
            raise op_error("full", [value], f"fill value must be a scalar, got {v.type.short()}")
        return alloc(v, *(shape if isinstance(shape, (tuple, list)) else (shape,)))
    return _filled("full", shape, value, np.asarray(value).dtype if dtype is None else dtype,
                   graph)


def alloc(value, *shape):
    """Theano's alloc(value, *shape): value broadcast to `shape` (gradient sums it back);
    sizes may be integer scalar tensors."""
    entries, operands = _shape("alloc", shape)
    if not isinstance(value, Tensor) and not operands:
        return constant(np.broadcast_to(np.asarray(value), entries).copy())
    g = operands[0].graph if operands else value.graph
    v = as_tensor(value, graph=g)
    if not operands:
        from .api import broadcast_to
        return broadcast_to(v, entries)
    return apply("alloc", [v] + operands, shape=entries)

