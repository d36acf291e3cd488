"""NumPy kernels, keyed by op name. Kind "out" kernels take an `out=` buffer; "view" kernels
return views or small fresh arrays and never take one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from math import prod as _prod

from .kernels_index import index_tuple


@dataclass(frozen=True)
class Kernel:
    """A runtime implementation of one op: fn(*operands, **attrs[, out=buffer]).

    Kernels with `prepare` are built per instruction instead: prepare(**attrs) returns the
    function to call (fused groups compile their expression once, at link time).
    """

    fn: Optional[Callable]
    kind: str  # "out" or "view"
    prepare: Optional[Callable] = None
    inplace: bool = False  # out= may be the same array as an operand of the same shape


SMALL = 4096  # below this many elements, fewer ufunc calls beat vectorized inner loops
# (hot, in a loop, the four vectorized passes win above ~200 elements on an Intel Xeon,
# where logaddexp has no SIMD loop; inside a training step, right after a product has
# flushed the cache, fewer calls win: W1 ran 3 % faster with 4096 than with 256)


def _floating(x):
    return x if x.dtype.kind == "f" else x.astype(np.result_type(x.dtype, np.float16))


def _sigmoid(x, out=None):
    x = _floating(x)
    if x.size < SMALL:
        # exp(-log(1 + exp(-x))): three calls, stable, and tiny results keep their digits.
        # A fresh buffer when none is given: on a 0-d x the ufuncs would return scalars.
        t = np.logaddexp(0.0, np.negative(x), out=np.empty_like(x) if out is None else out)
        np.negative(t, out=t)
        return np.exp(t, out=t)
    # Large arrays: 1 / (1 + exp(-x)) with exp's vectorized loop, four unmasked passes (a
    # where= mask made the multiply 6x slower). It keeps relative precision for negative x
    # (sigmoid(-40) = 4.2e-18); past exp's overflow (x < -709, or -88 in float32) it gives 0,
    # below the smallest normal number anyway.
    t = np.negative(x)
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    np.add(t, 1.0, out=t)
    return np.divide(1.0, t, out=out if out is not None else t)


def _softplus(x, out=None):
    x = _floating(x)
    if x.size < SMALL:
        return np.logaddexp(np.zeros((), dtype=x.dtype), x, out=out)
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), with vectorized exp / log1p loops.
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.log1p(e, out=e)
    return np.add(np.maximum(x, 0), e, out=out)


def _relu(x, out=None):
    return np.maximum(x, 0, out=out)


def _red(fn, ufunc=None):
    # The ufunc's reduce skips the wrapper layers of np.sum & co (microseconds on small
    # arrays); small ints and bools keep np.sum's promotion to the platform integer.
    def k(x, axis=None, keepdims=False, out=None):
        if ufunc is not None and x.dtype.kind == "f":
            return ufunc.reduce(x, axis=axis, keepdims=keepdims, out=out)
        return fn(x, axis=axis, keepdims=keepdims, out=out)
    return k


def _mean(x, axis=None, keepdims=False, out=None):
    if x.dtype.kind != "f":
        return np.mean(x, axis=axis, keepdims=keepdims, out=out)
    n = x.size if axis is None else _prod(x.shape[a] for a in axis)
    s = np.add.reduce(x, axis=axis, keepdims=keepdims, out=out)
    return np.true_divide(s, n, out=s if isinstance(s, np.ndarray) else None)


def _shift(x, axis):
    """The max over `axis` (keepdims) that softmax and logsumexp subtract; 0 over nothing,
    where max has no identity (a sum of nothing is 0 and its log -inf, as NumPy gives)."""
    return np.max(x, axis=axis, keepdims=True) if x.size else np.sum(x, axis=axis, keepdims=True)


def _finite_shift(x, axis):
    """_shift, with 0 where the max is infinite: logsumexp and log_softmax (= x - logsumexp)
    then give inf - inf = nan only at the infinite entries and -inf at the finite ones (JAX's
    rule), instead of nan everywhere from subtracting an infinite max."""
    m = _shift(x, axis)
    return np.where(np.isfinite(m), m, 0)


def _logsumexp(x, axis=None, keepdims=False, out=None):
    m = _finite_shift(x, axis)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        s = np.squeeze(s, axis=axis) if axis is not None else s.reshape(())
    if out is None:
        return np.asarray(s, dtype=np.result_type(x.dtype, np.float16))
    np.copyto(out, s)
    return out


def _softmax(x, axis=-1, out=None):
    e = np.exp(x - _shift(x, axis))
    return np.divide(e, np.sum(e, axis=axis, keepdims=True), out=out)


def _log_softmax(x, axis=-1, out=None):
    z = x - _finite_shift(x, axis)
    return np.subtract(z, np.log(np.sum(np.exp(z), axis=axis, keepdims=True)), out=out)


def _arg(fn):
    def k(x, axis=None, keepdims=False):
        r = fn(x, axis=axis, keepdims=keepdims)
        return np.asarray(r, dtype=np.int64)
    return k


def _count(x, axis=None, dtype="float64"):
    return np.array(x.size if axis is None else _prod(x.shape[a] for a in axis), dtype=dtype)


def _expand_dims(x, axis):
    shape = list(x.shape)
    for a in axis:  # axes are sorted and non-negative (the compiler normalizes them)
        shape.insert(a, 1)
    return x.reshape(shape)


def _cast(x, dtype, out=None):
    if out is None:
        return x.astype(dtype)
    np.copyto(out, x, casting="unsafe")
    return out


def _xlogx(x, out=None):
    x = _floating(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.multiply(x, np.log(x))
    r = np.where(x == 0, np.zeros((), r.dtype), r)  # all read before out (maybe x) is written
    if out is None:
        return r
    np.copyto(out, r)
    return out


def _zeros_like(x, out=None):
    if out is None:
        return np.zeros_like(x)
    out.fill(0)
    return out


def _ones_like(x, out=None):
    if out is None:
        return np.ones_like(x)
    out.fill(1)
    return out


def _index(index):
    """The NumPy index of basic-index items (no integer arrays: nothing to bounds-check)."""
    return index_tuple(index, (), ())


def _getitem(x, index):
    return x[_index(index)]


def _getitem_grad(x, g, index, out=None):
    out = np.zeros_like(x) if out is None else out
    out.fill(0)
    out[_index(index)] = g
    return out


def _concat_grad(g, *xs, axis=0, index=0):
    start = sum(x.shape[axis] for x in xs[:index])
    sl = [slice(None)] * g.ndim
    sl[axis] = slice(start, start + xs[index].shape[axis])
    return g[tuple(sl)]


def _take(x, idx, axis=None, out=None):
    return np.take(x, idx, axis=axis, out=out)


def _take_grad(x, idx, g, axis=None, out=None):
    out = np.zeros_like(x) if out is None else out
    out.fill(0)
    if axis is None:
        np.add.at(out.reshape(-1), idx.reshape(-1), g.reshape(-1))
    else:
        sl = (slice(None),) * axis
        np.add.at(out, sl + (idx,), g)
    return out


def _broadcast_like(a, b):
    return np.broadcast_to(a, b.shape)


def _sum_like(g, x):
    if g.shape == x.shape:
        return g
    lead = g.ndim - x.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(x.shape)
                                      if d == 1 and g.shape[lead + i] != 1)
    return np.sum(g, axis=axes, keepdims=True).reshape(x.shape)


def _concatenate(*xs, axis=0, out=None):
    return np.concatenate(xs, axis=axis, out=out)


def _where(c, a, b, out=None):
    r = np.where(c, a, b)
    if out is None:
        return r
    np.copyto(out, r)
    return out


def _matmul(a, b, out=None):
    return np.matmul(a, b, out=out)


KERNELS = {name: Kernel(fn, "out") for name, fn in {
    "neg": np.negative, "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
    "sqrt": np.sqrt, "square": np.square, "abs": np.absolute, "sign": np.sign, "tanh": np.tanh,
    "sin": np.sin, "cos": np.cos, "sigmoid": _sigmoid, "relu": _relu, "softplus": _softplus,
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
    "less": np.less, "less_equal": np.less_equal, "greater": np.greater,
    "greater_equal": np.greater_equal, "equal": np.equal, "not_equal": np.not_equal,
    "where": _where, "clip": np.clip, "cast": _cast, "zeros_like": _zeros_like,
    "ones_like": _ones_like, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "xlogx": _xlogx, "floor_divide": np.floor_divide, "mod": np.remainder,
    "sum": _red(np.sum, np.add), "mean": _mean, "max": _red(np.max, np.maximum),
    "min": _red(np.min, np.minimum), "prod": _red(np.prod, np.multiply),
    "logsumexp": _logsumexp,
    "softmax": _softmax, "log_softmax": _log_softmax, "matmul": _matmul,
    "getitem_grad": _getitem_grad, "take": _take, "take_grad": _take_grad,
    "concatenate": _concatenate,
}.items()}

KERNELS.update({name: Kernel(fn, "view") for name, fn in {
    "argmax": _arg(np.argmax), "argmin": _arg(np.argmin), "count": _count,
    # The methods, where x is an array: np.reshape's and np.transpose's wrappers cost a
    # microsecond a call (a digits CNN step has 18 of these views).
    "reshape": lambda x, shape: x.reshape(shape) if type(x) is np.ndarray
    else np.reshape(x, shape),
    "reshape_like": lambda a, b: a.reshape(b.shape) if type(a) is np.ndarray
    else np.reshape(a, b.shape),
    "transpose": lambda x, axes=None: x.transpose(axes) if type(x) is np.ndarray
    else np.transpose(x, axes),
    "expand_dims": _expand_dims,
    "squeeze": lambda x, axis: np.squeeze(x, axis),
    "broadcast_to": lambda x, shape: np.broadcast_to(x, shape),
    "broadcast_like": _broadcast_like, "sum_like": _sum_like, "getitem": _getitem,
    "concat_grad": _concat_grad,
}.items()})

# Linear algebra, selection and differentiation-steering ops live in their own file.
from .kernels_extra import OUT as _EXTRA_OUT, VIEW as _EXTRA_VIEW  # noqa: E402

KERNELS.update({name: Kernel(fn, "out") for name, fn in _EXTRA_OUT.items()})
KERNELS.update({name: Kernel(fn, "view") for name, fn in _EXTRA_VIEW.items()})
from .kernels_index import OUT as _INDEX_OUT, VIEW as _INDEX_VIEW  # noqa: E402

KERNELS.update({name: Kernel(fn, "out") for name, fn in _INDEX_OUT.items()})
KERNELS.update({name: Kernel(fn, "view") for name, fn in _INDEX_VIEW.items()})

# Shapes as values and ops whose sizes are read at run time.
from .kernels_shape import table as _shape_table  # noqa: E402

KERNELS.update({name: Kernel(fn, kind) for name, (fn, kind) in _shape_table(np).items()})

# A loop's results: part reads one, select a tuple of some. The loop kernel itself is
# registered by runtime/cpu/loops.py (it links a body Program: linking imports this table).
KERNELS["part"] = Kernel(lambda t, index: t[index], "view")
KERNELS["select"] = Kernel(lambda t, indices: tuple(t[i] for i in indices), "view")

# Data-parallel collectives (the data_parallel pass makes these).
from .kernels_comm import table as _comm_table  # noqa: E402

KERNELS.update({name: Kernel(fn, kind) for name, (fn, kind) in _comm_table(np).items()})

# alpha * A @ B + beta * C in one BLAS call (the specialize pass makes these).
from .gemm import gemm as _gemm  # noqa: E402

KERNELS["gemm"] = Kernel(_gemm, "out")

# N-D convolution: im2col, per-offset GEMMs or col2im, chosen per shape signature; prepared
# per instruction so each remembers the algorithm it ran (profile and explain name it).
from .conv import make_prepare as _conv_prepare  # noqa: E402

KERNELS["conv"] = Kernel(None, "out", prepare=_conv_prepare(np))
KERNELS["conv_bias"] = Kernel(None, "out", prepare=_conv_prepare(np))  # + b in the GEMM
# The im2col lowering whose columns a weight gradient reuses (the O2 pass makes these).
from .conv import make_column_kernels as _column_kernels  # noqa: E402

KERNELS.update({k: Kernel(fn, "out") for k, fn in _column_kernels(np).items()})

# Max pooling's choice per window: a running maximum over one strided view per offset.
from .pool import make_pool_argmax  # noqa: E402

KERNELS["pool_argmax"] = Kernel(make_pool_argmax(np), "out")

# The product of the other elements (prod's derivatives), with no division.
from .prod_others import kernel as _prod_others  # noqa: E402

KERNELS["prod_others"] = Kernel(_prod_others(np, fast=True), "out")

# Fused elementwise groups: their expression is compiled once per instruction.
from .fused import fused_kernel, fused_reduce_kernel  # noqa: E402

KERNELS["fused"] = Kernel(None, "out", prepare=lambda expr: fused_kernel(expr, KERNELS),
                          inplace=True)
KERNELS["fused_reduce"] = Kernel(
    None, "out", prepare=lambda expr, reduce, axis, keepdims:
    fused_reduce_kernel(expr, reduce, axis, keepdims, KERNELS))

# Elementwise kernels read each operand element before writing that output element (ufuncs,
# or helpers that compute all temporaries first), so out= may alias a dying operand.
INPLACE = ("neg exp log log1p expm1 sqrt square abs sign tanh sin cos sigmoid relu softplus add "
           "sub mul div pow maximum minimum less less_equal greater greater_equal equal "
           "not_equal where clip cast zeros_like ones_like floor ceil round xlogx floor_divide mod"
           ).split()
for _name in INPLACE:
    KERNELS[_name] = Kernel(KERNELS[_name].fn, KERNELS[_name].kind, KERNELS[_name].prepare, True)
