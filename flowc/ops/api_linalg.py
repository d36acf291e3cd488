"""Public linear-algebra and selection functions: solve, inv, slogdet, eye, diag, outer,
trace, norm, topk, take_along_axis."""
from __future__ import annotations

import numpy as np

from ..ir.tensor import Tensor
from . import api as F
from .build import apply, as_tensor, constant, op_axes, op_error


def solve(a, b):
    """x with a @ x = b; a is (n, n) or a stack (..., n, n); b is (n,) or (..., n, k)."""
    a = as_tensor(a)
    return apply("solve", [a, as_tensor(b, like=a)])


def inv(a):
    """Inverse of a square matrix (or of each in a stack)."""
    return apply("inv", [as_tensor(a)])


def slogdet(a):
    """(sign, log|det|) of a square matrix, like np.linalg.slogdet."""
    a = as_tensor(a)
    return apply("slogdet", [a], part="sign"), apply("slogdet", [a], part="logabsdet")


def eye(n, m=None, k=0, dtype="float64", graph=None):
    """An identity-like matrix (ones on the k-th diagonal): a constant, or built at run time
    where n or m is an integer scalar tensor."""
    if isinstance(n, Tensor) or isinstance(m, Tensor):
        from .api import cast, equal, expand_dims
        from .api_make import arange
        rows, cols = arange(n), arange(n if m is None else m)
        return cast(equal(expand_dims(rows, 1) + k, expand_dims(cols, 0)), dtype)
    return constant(np.eye(n, m, k, dtype=dtype), graph=graph)


def diag(x, k=0):
    """np.diag: a vector becomes a square matrix; a matrix gives its k-th diagonal."""
    x = as_tensor(x)
    if x.ndim == 1:
        return apply("diag_embed", [x], k=int(k))
    if x.ndim == 2:
        return apply("diag_part", [x], k=int(k))
    raise op_error("diag", [x], f"takes a vector or a matrix, got {x.ndim} dimensions")


def outer(a, b):
    """Outer product of the flattened a and b."""
    a, b = as_tensor(a), as_tensor(b)
    return F.expand_dims(F.reshape(a, (-1,)), 1) * F.expand_dims(F.reshape(b, (-1,)), 0)


def trace(x, k=0):
    """Sum of the k-th diagonal of a matrix."""
    x = as_tensor(x)
    if x.ndim != 2:
        raise op_error("trace", [x], f"takes a matrix, got {x.ndim} dimensions")
    return F.sum(apply("diag_part", [x], k=int(k)))


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector norms (ord None/2, 1, inf) and the Frobenius norm (ord None/'fro' on a matrix)."""
    x = as_tensor(x)
    ax = None if axis is None else op_axes("norm", x, axis)
    nax = x.ndim if ax is None else len(ax)
    if ord in (None, "fro") or (ord == 2 and nax == 1):
        if ord == "fro" and nax != 2:
            raise op_error("norm", [x], "ord='fro' needs a matrix (two axes)")
        return apply("norm2", [x], axis=ax, keepdims=bool(keepdims))
    if nax != 1:
        raise op_error("norm", [x], f"ord={ord!r} is supported for vectors only; matrix "
                       "norms other than Frobenius are not available")
    if ord == 1:
        return F.sum(F.abs(x), ax, keepdims)
    if ord in (np.inf, "inf"):
        return F.max(F.abs(x), ax, keepdims)
    raise op_error("norm", [x], f"ord={ord!r} is not supported (use None, 2, 1, inf or "
                   "'fro')")


def topk(x, k, axis=-1, largest=True):
    """(values, indices) of the k largest (or smallest) entries along axis, in order."""
    x = as_tensor(x)
    ax = op_axes("topk", x, axis, one=True)
    idx = apply("topk_indices", [x], k=int(k), axis=ax, largest=bool(largest))
    return take_along_axis(x, idx, ax), idx


def take_along_axis(x, indices, axis=-1):
    """x's entries at integer indices along axis (np.take_along_axis)."""
    x = as_tensor(x)
    idx = as_tensor(indices) if not isinstance(indices, np.ndarray) else constant(indices, graph=x.graph)
    return apply("take_along_axis", [x, idx], axis=op_axes("take_along_axis", x, axis,
                                                                    one=True))
