"""theano.tensor's vocabulary beyond the core math: sizes and shapes, indexing updates,
sorting, rounding, joining, broadcast flags — each the flowc op of the same meaning."""
from __future__ import annotations

import math

import numpy as np

from ... import ops as _ops  # noqa: F401  (registers every op)
from ...ops import api as F
from ...ops import api_index, api_linalg, api_make, api_shape, api_vocab
from ...ops.build import as_tensor, constant as _constant
from ..config import config

__all__ = ["arange", "zeros", "ones", "alloc", "fill", "second", "zeros_like", "ones_like",
           "eye", "identity_like", "outer", "tile", "repeat", "set_subtensor", "inc_subtensor",
           "sort", "argsort", "floor", "ceil", "round", "iround", "int_div", "floor_div", "mod",
           "true_div", "neg", "inv", "pow", "add", "sub", "log2", "log10", "flatten", "join",
           "specify_shape", "shape", "shape_padleft", "shape_padright", "shape_padaxis",
           "addbroadcast", "patternbroadcast", "unbroadcast", "constant",
           "as_tensor_variable", "var", "std", "squeeze", "diag", "dimshuffle", "minimum",
           "maximum", "clip"]  # xlogx is theano.tensor.xlogx.xlogx, as in Theano

arange, tile, sort, argsort, join = (api_make.arange, api_vocab.tile, api_vocab.sort,
                                     api_vocab.argsort, api_vocab.join)
outer, diag, specify_shape = api_linalg.outer, api_linalg.diag, api_vocab.specify_shape
floor, ceil, mod, neg, pow = F.floor, F.ceil, F.mod, F.neg, F.pow
int_div = floor_div = F.floor_divide
true_div, sub, squeeze, dimshuffle = F.div, F.sub, F.squeeze, api_vocab.dimshuffle
minimum, maximum, clip = F.minimum, F.maximum, F.clip
shape = api_shape.shape
set_subtensor = api_index.set_subtensor
inc_subtensor = api_index.inc_subtensor


def _dtype(dtype):
    return config.floatX if dtype is None else dtype


def zeros(shape, dtype=None):
    """Zeros of `shape` (floatX by default; sizes may be symbolic, as x.shape[0])."""
    return api_make.zeros(shape, _dtype(dtype))


def ones(shape, dtype=None):
    """Ones of `shape` (floatX by default)."""
    return api_make.ones(shape, _dtype(dtype))


def alloc(value, *shape):
    """value broadcast to shape (its gradient sums back)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return api_make.alloc(value, *shape)


def fill(model, value):
    """value broadcast to model's shape."""
    model = as_tensor(model)
    v = as_tensor(value, like=model)
    return v + F.zeros_like(model) if v.ndim <= model.ndim else v


second = fill


def zeros_like(x, dtype=None):
    x = as_tensor(x)
    return F.zeros_like(x) if dtype is None else F.cast(F.zeros_like(x), dtype)


def ones_like(x, dtype=None):
    x = as_tensor(x)
    return F.ones_like(x) if dtype is None else F.cast(F.ones_like(x), dtype)


def eye(n, m=None, k=0, dtype=None):
    """Ones on the k-th diagonal (floatX by default; n and m may be symbolic)."""
    return api_linalg.eye(n, m, k, _dtype(dtype))


def identity_like(x):
    x = as_tensor(x)
    return api_linalg.eye(x.shape[0], x.shape[1], 0, x.dtype)


def repeat(x, repeats, axis=None):
    return api_vocab.repeat(x, repeats, axis)


def round(a, mode=None):
    """Theano's round: halves away from zero unless mode="half_to_even" (np.round's)."""
    a = as_tensor(a)
    if mode == "half_to_even":
        return F.round(a)
    if mode not in (None, "half_away_from_zero"):
        raise ValueError(f"round: mode must be 'half_away_from_zero' or 'half_to_even', "
                         f"got {mode!r}")
    return F.sign(a) * F.floor(F.abs(a) + 0.5)


def iround(a, mode=None):
    """round(a) as int64."""
    return F.cast(round(a, mode), "int64")


def inv(x):
    """1 / x."""
    return 1.0 / as_tensor(x)


def add(*xs):
    """The sum of all arguments."""
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def log2(x):
    return F.log(x) / math.log(2.0)


def log10(x):
    return F.log(x) / math.log(10.0)


def flatten(x, ndim=1, outdim=None):
    """The first ndim - 1 axes kept, the rest joined."""
    return api_vocab.flatten(x, outdim if outdim is not None else ndim)


def shape_padleft(t, n_ones=1):
    """t with n_ones new unit axes in front."""
    return F.expand_dims(t, tuple(range(n_ones))) if n_ones else as_tensor(t)


def shape_padright(t, n_ones=1):
    """t with n_ones new unit axes at the end."""
    t = as_tensor(t)
    return F.expand_dims(t, tuple(range(t.ndim, t.ndim + n_ones))) if n_ones else t


def shape_padaxis(t, axis):
    """t with a new unit axis at `axis`."""
    return F.expand_dims(t, axis)


def patternbroadcast(x, broadcastable):
    """x declared to have size 1 where the pattern is True (checked at call time)."""
    x = as_tensor(x)
    if len(broadcastable) != x.ndim:
        raise ValueError(f"patternbroadcast: {len(broadcastable)} flags for {x.ndim} axes")
    if not any(broadcastable):
        return x
    return api_vocab.specify_shape(x, tuple(1 if b else d for b, d in
                                            zip(broadcastable, x.type.shape)))


def addbroadcast(x, *axes):
    """x declared to have size 1 along `axes` (checked at call time)."""
    x = as_tensor(x)
    return patternbroadcast(x, tuple(i in axes or (i - x.ndim) in axes or b
                                     for i, b in enumerate(x.broadcastable)))


def unbroadcast(x, *axes):
    """x unchanged: flowc broadcasts by run-time sizes, so no flag needs clearing."""
    return as_tensor(x)


def constant(x, name=None, ndim=None, dtype=None):
    """A constant tensor (Theano's T.constant)."""
    arr = np.asarray(x, dtype=dtype)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"constant: value has {arr.ndim} dimensions, ndim={ndim} asked")
    return _constant(arr, name=name)


def as_tensor_variable(x, name=None, ndim=None):
    """x as a tensor (a constant for arrays and numbers)."""
    t = as_tensor(x)
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"as_tensor_variable: {t.ndim} dimensions, ndim={ndim} asked")
    return t


def var(input, axis=None, ddof=0, keepdims=False, corrected=False):
    """Theano's T.var; `corrected` (its compensated two-pass sum) changes only rounding:
    flowc's variance is always the two-pass mean of squared deviations."""
    return as_tensor(input).var(axis, keepdims, ddof)


def std(input, axis=None, ddof=0, keepdims=False, corrected=False):
    """Theano's T.std."""
    return as_tensor(input).std(axis, keepdims, ddof)
