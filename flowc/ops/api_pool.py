"""Pooling as users write it: fc.max_pool2d / avg_pool2d (and the N-D fc.max_pool /
avg_pool), PyTorch's arguments, built from strided slices of the (padded) input, one per
window offset, so the gradients come from the slice and maximum rules.

A dedicated windows kernel (one pass instead of one slice per offset) is issue 14's next
part; this form is its reference."""
from __future__ import annotations

import itertools

import numpy as np

from . import api as F
from .api_make import full
from .api_linalg import take_along_axis
from .build import as_tensor, constant, op_error
from .pool import out_sizes, pool_argmax


def _geometry(x, kernel, stride, padding, ceil_mode, fn):
    """(kernel, stride, (lo, hi) pads, output sizes) per spatial dim, checked. A size known
    only at run time gives an int64 scalar tensor as its output size and pads of
    (p, p + stride - 1) under ceil_mode (enough fill for any last window)."""
    nd = len(kernel)
    if x.ndim != nd + 2:
        raise op_error(fn, [x], f"expected x of rank {nd + 2} (N, C, {nd} spatial dims)")
    S = x.type.shape[2:]
    stride = kernel if stride is None else stride
    if min(kernel) < 1 or min(stride) < 1:
        raise op_error(fn, [x], f"kernel and stride must be at least 1, got kernel {kernel} "
                       f"and stride {stride}")
    if any(p < 0 or 2 * p > k for p, k in zip(padding, kernel)):
        raise op_error(fn, [x], f"padding must be between 0 and half the kernel, got "
                       f"padding {padding} for kernel {kernel}")
    pads, sizes = [], []
    for i, (h, k, s, p) in enumerate(zip(S, kernel, stride, padding)):
        if h is None:
            h = x.shape[2 + i]  # checked at run time: a window larger than the input fails
            span = h + 2 * p - k
            o = ((span + s - 1) // s if ceil_mode else span // s) + 1
            if ceil_mode:
                o = o - F.cast((o - 1) * s >= h + p, "int64")
            pads.append((p, p + (s - 1 if ceil_mode else 0)))
            sizes.append(o)
            continue
        try:  # the runtime kernel's own formula (PyTorch's)
            (o,) = out_sizes((h,), (k,), (s,), (p,), ceil_mode)
        except ValueError:
            raise op_error(fn, [x], f"the window ({k}) is larger than the padded input "
                           f"({h} + 2 * {p})") from None
        pads.append((p, (o - 1) * s + k - h - p))  # hi may exceed p under ceil_mode
        sizes.append(o)
    return tuple(kernel), tuple(stride), pads, sizes


def _windows(x, kernel, stride, pads, sizes, fill):
    """One (N, C, *sizes) strided slice of the padded input per window offset."""
    for axis, (lo, hi) in enumerate(pads, 2):
        parts = []
        for n in (lo, hi):
            shape = tuple(x.shape[:axis]) + (n,) + tuple(x.shape[axis + 1:])
            parts.append(full(shape, fill, dtype=x.dtype) if n > 0 else None)
        if parts[0] is not None or parts[1] is not None:
            x = F.concatenate([p for p in (parts[0], x, parts[1]) if p is not None], axis)
    for off in itertools.product(*(range(k) for k in kernel)):
        yield x[(slice(None), slice(None)) + tuple(
            slice(i, i + s * (o - 1) + 1, s) for i, s, o in zip(off, stride, sizes))]


def _counts(x, kernel, stride, pads, sizes, padding, include):
    """avg_pool's divisor per output position, for spatial sizes known only at run time:
    the window sums of a mask of ones over x (and over the padding when it counts)."""
    S = tuple(x.shape[2:])
    m = full((1, 1) + S, 1.0, dtype=x.dtype)
    if include:  # the padding counts, what ceil_mode adds past it does not
        for axis, p in enumerate(padding, 2):
            if p:
                side = full(tuple(m.shape[:axis]) + (p,) + tuple(m.shape[axis + 1:]), 1.0,
                            dtype=x.dtype)
                m = F.concatenate([side, m, side], axis)
        pads = [(0, hi - p) for (lo, hi), p in zip(pads, padding)]
    total = None
    for w in _windows(m, kernel, stride, pads, sizes, 0.0):
        total = w if total is None else total + w
    return total


def _per_dim(v, nd, name, fn):
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * nd
    if isinstance(v, (tuple, list)) and len(v) == nd and all(
            isinstance(i, int) and not isinstance(i, bool) for i in v):
        return tuple(v)
    raise op_error(fn, [], f"{name} must be an int or {nd} ints, got {v!r}")


def max_pool(x, kernel, stride=None, padding=0, ceil_mode=False, fn="max_pool"):
    """The maximum of each window of x (N, C, *spatial); padding is -inf. Gradient ties:
    the whole cotangent goes to one maximum of the window, the first in row-major order
    (PyTorch's and JAX's convention; Theano gives every tied maximum the full value and
    flowc's max reduction splits it). A NaN in a window is its maximum."""
    x = as_tensor(x)
    nd = len(kernel) if isinstance(kernel, (tuple, list)) else x.ndim - 2
    pad = _per_dim(padding, nd, "padding", fn)
    k, s, _, _ = _geometry(x, _per_dim(kernel, nd, "kernel", fn),
                           _per_dim(stride, nd, "stride", fn), pad, ceil_mode, fn)
    # Each window's first maximum, then a gather: one pass per offset forward, and one
    # scatter-add backward (put_along_axis_grad) instead of a chain of maximum gradients.
    idx = pool_argmax(x, k, s, pad, ceil_mode)
    n, c = x.shape[0], x.shape[1]
    y = take_along_axis(F.reshape(x, (n, c, -1)), F.reshape(idx, (n, c, -1)), 2)
    return F.reshape_like(y, idx) if None in idx.type.shape else F.reshape(y, idx.type.shape)


def _max_pool_slices(x, kernel, stride=None, padding=0, ceil_mode=False, fn="max_pool"):
    """max_pool by one strided slice per window offset folded with maximum: the reference
    the pool_argmax form is checked against (ties: maximum sends the gradient to its first
    operand, so to the window's first maximum too)."""
    x = as_tensor(x)
    nd = len(kernel) if isinstance(kernel, (tuple, list)) else x.ndim - 2
    k, s, pads, sizes = _geometry(x, _per_dim(kernel, nd, "kernel", fn),
                                  _per_dim(stride, nd, "stride", fn),
                                  _per_dim(padding, nd, "padding", fn), ceil_mode, fn)
    out = None
    for w in _windows(x, k, s, pads, sizes, -np.inf):
        out = w if out is None else F.maximum(out, w)
    return out


def sum_pool(x, kernel, stride=None, padding=0, ceil_mode=False, fn="sum_pool"):
    """The sum of each window of x (N, C, *spatial), zero padding (Theano's mode='sum')."""
    x = as_tensor(x)
    nd = len(kernel) if isinstance(kernel, (tuple, list)) else x.ndim - 2
    k, s, pads, sizes = _geometry(x, _per_dim(kernel, nd, "kernel", fn),
                                  _per_dim(stride, nd, "stride", fn),
                                  _per_dim(padding, nd, "padding", fn), ceil_mode, fn)
    total = None
    for w in _windows(x, k, s, pads, sizes, 0.0):
        total = w if total is None else total + w
    return total


def avg_pool(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             fn="avg_pool"):
    """The mean of each window of x (N, C, *spatial). count_include_pad=True divides by
    the window's elements inside the zero-padded input (PyTorch's default), False by those
    inside x itself; elements that ceil_mode adds past the padding are never counted."""
    x = as_tensor(x)
    nd = len(kernel) if isinstance(kernel, (tuple, list)) else x.ndim - 2
    k, s, pads, sizes = _geometry(x, _per_dim(kernel, nd, "kernel", fn),
                                  _per_dim(stride, nd, "stride", fn),
                                  _per_dim(padding, nd, "padding", fn), ceil_mode, fn)
    total = sum_pool(x, k, s, padding, ceil_mode, fn)
    if None in x.type.shape[2:]:
        if count_include_pad and not ceil_mode:  # every window lies in the padded input
            return total / float(np.prod(k))
        return total / _counts(x, k, s, pads, sizes, _per_dim(padding, nd, "padding", fn),
                               count_include_pad)
    counts = np.ones((), np.float64)
    for h, kk, ss, (lo, _), o in zip(x.type.shape[2:], k, s, pads, sizes):
        start = np.arange(o) * ss - lo  # window start in input coordinates
        lo_b, hi_b = (-lo, h + lo) if count_include_pad else (0, h)
        n = np.minimum(start + kk, hi_b) - np.maximum(start, lo_b)
        counts = np.multiply.outer(counts, n.astype(np.float64))
    return total / constant(counts.astype(x.dtype), graph=x.graph)


def _of_rank(pool, nd, name):
    def f(x, kernel_size, stride=None, padding=0, ceil_mode=False, **kw):
        return pool(x, _per_dim(kernel_size, nd, "kernel_size", name), stride, padding,
                    ceil_mode, fn=name, **kw)
    f.__name__ = name
    f.__doc__ = f"{nd}-D {pool.__name__.replace('_', ' ')}ing; see fc.{pool.__name__}."
    return f


max_pool1d, max_pool2d, max_pool3d = (_of_rank(max_pool, n, f"max_pool{n}d") for n in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_of_rank(avg_pool, n, f"avg_pool{n}d") for n in (1, 2, 3))



def _global(x, fn):
    x = as_tensor(x)
    if x.ndim < 3:
        raise op_error(fn, [x], f"expected x (N, C, *spatial) of rank >= 3, got rank {x.ndim}")
    return x, tuple(range(2, x.ndim))


def global_avg_pool(x, keepdims=False):
    """The mean of x (N, C, *spatial) over all spatial axes: (N, C), or (N, C, 1, ...)."""
    x, axes = _global(x, "global_avg_pool")
    return F.mean(x, axis=axes, keepdims=keepdims)


def global_max_pool(x, keepdims=False):
    """The maximum of x (N, C, *spatial) over all spatial axes: (N, C), or (N, C, 1, ...)."""
    x, axes = _global(x, "global_max_pool")
    return F.max(x, axis=axes, keepdims=keepdims)
