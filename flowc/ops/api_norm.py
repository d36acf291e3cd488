"""Normalization and statistics as users write them: fc.batch_norm (given statistics,
PyTorch's eval-mode F.batch_norm), fc.layer_norm, fc.var and fc.std, compositions of
reductions and elementwise ops, so their gradients, batching and fusion come from those
ops' rules."""
from __future__ import annotations

import numbers

from . import api as F
from ..ir.errors import ArgumentError
from .build import as_tensor, op_axes, op_error


def _check_eps(eps, fn, x):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise op_error(fn, [x], f"eps must be a positive number, got {eps!r}")
    return float(eps)


def moments(x, axes, keepdims=True):
    """(mean, biased variance) of x over `axes`. The variance is the mean of squared
    deviations: E[x^2] - E[x]^2 cancels catastrophically when |mean| >> std."""
    x = as_tensor(x)
    m = F.mean(x, axis=axes, keepdims=True)
    v = F.mean(F.square(x - m), axis=axes, keepdims=True)
    if not keepdims:
        m, v = F.squeeze(m, axes), F.squeeze(v, axes)
    return m, v


def _per_channel(t, name, x, axis, fn):
    """A (C,) tensor shaped to broadcast along x's `axis`."""
    t = as_tensor(t)
    c = x.type.shape[axis]
    if t.ndim != 1 or (c is not None and t.type.shape[0] not in (None, c)):
        raise op_error(fn, [x, t], f"{name} must have one entry per channel (shape ({c},) "
                       f"along axis {axis}), got {t.type.short()}")
    return t.reshape((-1,) + (1,) * (x.ndim - axis - 1))


def batch_norm(x, mean, var, weight=None, bias=None, eps=1e-5, axis=1):
    """(x - mean) / sqrt(var + eps) * weight + bias, with per-channel (C,) statistics along
    `axis` (1: x is (N, C, *spatial)). Pass batch statistics for training-mode batch
    normalization (gradients flow through them), running ones for evaluation."""
    fn = "batch_norm"
    x = as_tensor(x)
    if x.ndim < 2:
        raise op_error(fn, [x], f"expected x (N, C, ...) of rank >= 2, got rank {x.ndim}")
    if not isinstance(axis, int) or isinstance(axis, bool) or not -x.ndim <= axis < x.ndim:
        raise op_error(fn, [x], f"axis must be an int in [{-x.ndim}, {x.ndim}), got {axis!r}")
    axis %= x.ndim
    eps = _check_eps(eps, fn, x)
    mean, var = (_per_channel(t, n, x, axis, fn) for t, n in ((mean, "mean"), (var, "var")))
    # 1/sqrt over C entries, then one multiply over x: cheaper than dividing all of x.
    y = (x - mean) * (1.0 / F.sqrt(var + eps))
    if weight is not None:
        y = y * _per_channel(weight, "weight", x, axis, fn)
    if bias is not None:
        y = y + _per_channel(bias, "bias", x, axis, fn)
    return y


def _norm_axes(x, normalized_shape, axes, fn):
    if (normalized_shape is None) == (axes is None):
        raise op_error(fn, [x], "give exactly one of normalized_shape (the trailing sizes) "
                       "and axes")
    if axes is not None:
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        if not axes or not all(isinstance(a, int) and -x.ndim <= a < x.ndim for a in axes) \
                or len({a % x.ndim for a in axes}) != len(axes):
            raise op_error(fn, [x], f"axes must be distinct ints in [{-x.ndim}, {x.ndim}), got "
                           f"{axes!r}")
        return tuple(sorted(a % x.ndim for a in axes))
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(normalized_shape)
    tail = tuple(x.type.shape[x.ndim - len(shape):]) if len(shape) <= x.ndim else None
    if not shape or tail is None or any(t is not None and t != s for t, s in zip(tail, shape)):
        raise op_error(fn, [x], f"normalized_shape {shape} must be the trailing sizes of x")
    return tuple(range(x.ndim - len(shape), x.ndim))


def _affine(t, name, x, axes, fn):
    """weight/bias of the normalized sizes, shaped to broadcast against x."""
    t = as_tensor(t)
    want = tuple(x.type.shape[a] for a in axes)
    if t.ndim != len(axes) or any(a is not None and b is not None and a != b
                                  for a, b in zip(t.type.shape, want)):
        raise op_error(fn, [x, t], f"{name} must have the normalized sizes {want}, got "
                       f"{t.type.short()}")
    full = [1] * (x.ndim - axes[0])
    for a, n in zip(axes, t.shape):
        full[a - axes[0]] = n
    return t.reshape(tuple(full))


def layer_norm(x, normalized_shape=None, weight=None, bias=None, eps=1e-5, axes=None):
    """x normalized to mean 0, variance 1 over its trailing `normalized_shape` sizes (or over
    `axes`), then * weight + bias (shaped like the normalized sizes); PyTorch's layer_norm."""
    fn = "layer_norm"
    x = as_tensor(x)
    if x.ndim < 1:
        raise op_error(fn, [x], "expected x of rank >= 1")
    eps = _check_eps(eps, fn, x)
    axes = _norm_axes(x, normalized_shape, axes, fn)
    m, v = moments(x, axes)
    y = (x - m) / F.sqrt(v + eps)
    if weight is not None:
        y = y * _affine(weight, "weight", x, axes, fn)
    if bias is not None:
        y = y + _affine(bias, "bias", x, axes, fn)
    return y


def var(x, axis=None, ddof=0, keepdims=False):
    """Variance over `axis` (all axes if None), NumPy's np.var: the mean of squared
    deviations from the mean (two passes: E[x^2] - E[x]^2 cancels when |mean| >> std),
    divided by n - ddof instead of n (ddof=1: the unbiased estimate). n may be known only
    at run time; n - ddof <= 0 gives inf or nan, as NumPy does."""
    x = as_tensor(x)
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Real):
        raise op_error("var", [x], f"ddof must be a number, got {ddof!r}", cls=ArgumentError)
    axes = None if axis is None else op_axes("var", x, axis)
    _, v = moments(x, axes, keepdims)
    if ddof:
        n = F.count(x, axis=axes, dtype=v.dtype)  # the mean's float dtype
        v = v * (n / (n - float(ddof)))
    return v


def std(x, axis=None, ddof=0, keepdims=False):
    """Standard deviation over `axis`: sqrt(var(x, axis, ddof)), NumPy's np.std."""
    return F.sqrt(var(x, axis, ddof, keepdims))
