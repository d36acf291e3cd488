"""More of NumPy's and Theano's vocabulary, built from the ops: sort/argsort, one_hot, tile,
repeat, flatten(ndim), dimshuffle, join, specify_shape."""
from __future__ import annotations

import math

import numpy as np

from ..ir.tensor import Tensor
from .build import apply, as_tensor, constant, op_axes, op_error


def argsort(x, axis=-1):
    """Indices that sort x along axis (stable; axis=None: of the flattened x)."""
    x = as_tensor(x)
    if axis is None:
        x, axis = flatten(x), 0
    return apply("argsort", [x], axis=op_axes("argsort", x, axis, one=True))


def sort(x, axis=-1):
    """x sorted along axis (axis=None: flattened); the gradient goes back to where each entry
    came from (a gather by argsort)."""
    from .api_linalg import take_along_axis
    x = as_tensor(x)
    if axis is None:
        x, axis = flatten(x), 0
    ax = op_axes("sort", x, axis, one=True)
    return take_along_axis(x, argsort(x, ax), ax)


def one_hot(y, n, dtype="float64"):
    """y's integer labels as rows of an identity of size n (labels outside [0, n) give a
    row of zeros, as jax.nn.one_hot)."""
    from .api import cast, equal, expand_dims
    from .api_make import arange
    y = as_tensor(y)
    if np.dtype(y.dtype).kind not in "iu":
        raise op_error("one_hot", [y], f"needs integer labels, got {y.type.short()}")
    if isinstance(n, Tensor):  # a class count read at run time
        return cast(equal(expand_dims(y, -1), arange(n)), dtype)
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise op_error("one_hot", [y], f"n must be a non-negative int, got {n!r}")
    return cast(equal(expand_dims(y, -1), arange(int(n), graph=y.graph)), dtype)


def tile(x, reps):
    """np.tile: x repeated `reps` times along each axis (reps: an int or a tuple of ints)."""
    from .api import broadcast_to, reshape
    x = as_tensor(x)
    reps = (reps,) if isinstance(reps, (int, np.integer)) else tuple(reps)
    if not all(isinstance(r, (int, np.integer)) and r >= 0 for r in reps):
        raise op_error("tile", [x], f"reps must be non-negative ints, got {reps!r}")
    n = max(len(reps), x.ndim)
    reps = (1,) * (n - len(reps)) + tuple(int(r) for r in reps)
    shape = (1,) * (n - x.ndim) + tuple(x.shape)  # sizes known only at run time are tensors
    inter = tuple(v for d in shape for v in (1, d))  # (1, d0, 1, d1, ...)
    big = tuple(v for r, d in zip(reps, shape) for v in (r, d))
    y = broadcast_to(reshape(x, inter), big)
    return reshape(y, tuple(r * d for r, d in zip(reps, shape)))


def repeat(x, repeats, axis=None):
    """np.repeat: each entry repeated `repeats` times (an int, or one int per entry) along
    axis (None: of the flattened x)."""
    from .api import expand_dims, take
    x = as_tensor(x)
    if axis is None:
        x, axis = flatten(x), 0
    ax = op_axes("repeat", x, axis, one=True)
    n = x.type.shape[ax]
    if isinstance(repeats, Tensor):
        raise op_error("repeat", [x, repeats], "repeats must be Python ints here")
    reps = np.asarray(repeats)
    if reps.size == 0 and reps.dtype.kind == "f":   # [] for an empty axis, as np.repeat allows
        reps = reps.astype(np.int64)
    if reps.dtype.kind not in "iu" or (reps < 0).any() or reps.ndim > 1:
        raise op_error("repeat", [x], f"repeats must be non-negative ints, got {repeats!r}")
    if reps.ndim == 1 and (n is None or reps.size != n):
        raise op_error("repeat", [x], f"{reps.size} repeats for an axis of size "
                       f"{'unknown' if n is None else n}")
    if n is None:  # one count for every entry of an axis known at run time: a tiled index
        from .api_make import arange
        idx = flatten(tile(expand_dims(arange(x.shape[ax]), 1), (1, int(reps))))
        return take(x, idx, axis=ax)
    idx = np.repeat(np.arange(n), reps)
    return take(x, constant(idx, graph=x.graph), axis=ax)


def flatten(x, ndim=1):
    """Theano's flatten: the first ndim - 1 axes kept, the rest joined into one."""
    from .api import reshape
    x = as_tensor(x)
    if not isinstance(ndim, (int, np.integer)) or not 1 <= ndim <= max(x.ndim, 1):
        raise op_error("flatten", [x], f"ndim must be in 1..{max(x.ndim, 1)}, got {ndim!r}")
    rest = x.type.shape[ndim - 1:]
    tail = math.prod(rest) if None not in rest else -1
    return reshape(x, tuple(x.shape[:ndim - 1]) + (tail,))  # unknown kept sizes: x's own dims


def dimshuffle(x, *pattern):
    """Theano's dimshuffle: a pattern of axis numbers and 'x' (a new axis of size 1); axes left
    out must have size 1 (they are dropped)."""
    from .api import expand_dims, squeeze, transpose
    x = as_tensor(x)
    if len(pattern) == 1 and isinstance(pattern[0], (list, tuple)):
        pattern = tuple(pattern[0])
    axes = [p for p in pattern if p != "x"]
    if any(not isinstance(a, (int, np.integer)) or not 0 <= a < x.ndim for a in axes) or \
            len(set(axes)) != len(axes):
        raise op_error("dimshuffle", [x], f"pattern {pattern!r}: expected distinct axes of "
                       f"0..{x.ndim - 1} and 'x'")
    dropped = [a for a in range(x.ndim) if a not in axes]
    bad = [a for a in dropped if x.type.shape[a] != 1]
    if bad:
        raise op_error("dimshuffle", [x], f"pattern {pattern!r} drops axis {bad[0]} of size "
                       f"{x.type.shape[bad[0]]}; only axes of size 1 can be dropped")
    y = squeeze(x, tuple(dropped)) if dropped else x
    kept = sorted(axes)
    order = [kept.index(a) for a in axes]
    if order != sorted(order):
        y = transpose(y, order)
    new = tuple(i for i, p in enumerate(pattern) if p == "x")
    return expand_dims(y, new) if new else y


def join(axis, *tensors):
    """Theano's join(axis, *tensors): concatenate along an existing axis."""
    from .api import concatenate
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    return concatenate(list(tensors), axis)


def specify_shape(x, shape):
    """x, with its shape checked at run time (None or -1: any size there); the static type
    takes the given sizes."""
    x = as_tensor(x)
    try:
        shape = tuple(None if d is None or d == -1 else int(d) for d in shape)
    except TypeError:
        raise op_error("specify_shape", [x], f"shape must be a tuple of ints and None, got "
                       f"{shape!r}") from None
    return apply("specify_shape", [x], shape=shape)
