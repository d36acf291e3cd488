"""Jacobians, Hessians and Hessian-vector products as single batched graphs."""
from __future__ import annotations

import math

import numpy as np

from ..ir.errors import GradError
from ..ir.tensor import Tensor
from ..ir.types import TensorType
from ..ops import api as F
from ..ops.build import apply, leaf
from .batching import batch
from .forward import jvp, vjp
from .reverse import _prune, grad


def _size(t):
    return None if None in t.type.shape else math.prod(t.type.shape)


def _basis(t):
    """The standard basis of t's shape, stacked on a leading axis: (t.size,) + t.shape.

    A constant when the shape is known; otherwise the `basis` op builds it at run time.
    """
    n = _size(t)
    if n is None:
        return apply("basis", [t])
    return F.constant(np.eye(n, dtype=t.dtype).reshape((n,) + tuple(t.type.shape)), graph=t.graph)


def _shaped(r, y, t):
    """r reshaped to y.shape + t.shape (already so when only its leading axis was unknown);
    sizes known only at run time are read from y and t as values."""
    shape = y.type.shape + t.type.shape
    if r.ndim == len(shape) and all(a is None or b is None or a == b for a, b in zip(r.type.shape, shape)):
        return r
    if None in shape:
        return F.reshape(r, tuple(y.shape) + tuple(t.shape))
    return F.reshape(r, shape)


def jacobian(y, x, mode="auto"):
    """d y / d x with shape y.shape + x.shape (a list of them for a list of x).

    One batched graph whose size does not grow with the number of outputs: reverse mode
    batches one vjp over the basis of y's cotangents, forward mode batches one jvp over
    the basis of x's tangents. mode="auto" picks reverse when y has fewer elements than x.
    """
    single = isinstance(x, Tensor)
    xs = [x] if single else list(x)
    if mode not in ("auto", "rev", "fwd"):
        raise GradError(f"mode must be 'auto', 'rev' or 'fwd', got {mode!r}")
    m, ns = _size(y), [_size(t) for t in xs]
    if mode == "auto":  # unknown sizes: reverse mode, as Theano's jacobian
        mode = "rev" if m is None or None in ns or m <= sum(ns) else "fwd"
    graph = y.graph
    first_new = graph._next_id
    with graph.emitting("backward", origin=y.id):
        if mode == "rev":
            ct = leaf("input", TensorType(y.dtype, y.type.shape), name="cotangent", graph=graph)
            gs = vjp(y, xs, ct)
            rows = batch(gs, {ct: _basis(y)})
            out = [_shaped(r, y, t) for r, t in zip(rows, xs)]
        else:
            out = []
            for t in xs:
                tan = leaf("input", TensorType(t.dtype, t.type.shape), name="tangent", graph=graph)
                cols = batch(jvp(y, t, tan), {tan: _basis(t)})
                perm = tuple(range(1, y.ndim + 1)) + (0,)
                out.append(_shaped(F.transpose(cols, perm), y, t))
    _prune(graph, first_new, [t.id for t in out])
    return out[0] if single else out


def hessian(cost, x):
    """Second derivatives of a scalar cost: shape x.shape + x.shape (forward over reverse)."""
    single = isinstance(x, Tensor)
    xs = [x] if single else list(x)
    hs = [jacobian(grad(cost, t), t, mode="fwd") for t in xs]
    return hs[0] if single else hs


def hvp(cost, x, v):
    """Hessian-vector product H(cost, x) @ v, shaped like x (forward over reverse)."""
    return jvp(grad(cost, x), x, v)
