"""The `pool_argmax` kernel (NumPy or CuPy): for each pooling window, the flat index (into
the input's spatial positions, row-major) of its first maximum in row-major window order.

The input is padded with -inf and read through one strided view per window offset; a running
maximum over the window offsets keeps the first maximum (a NaN counts as the maximum, as
PyTorch's max pooling propagates it). A window whose real elements are all
-inf may pick a padding position: it gets the window's first real position instead, which
is then its first maximum.
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np


def out_sizes(spatial, kernel, stride, padding, ceil_mode):
    """Output size per spatial dim (PyTorch's formula; under ceil_mode the last window must
    start inside the input or its left padding)."""
    sizes = []
    for h, k, s, p in zip(spatial, kernel, stride, padding):
        span = h + 2 * p - k
        if span < 0:
            raise ValueError(f"pooling: the window ({k}) is larger than the padded input "
                             f"({h} + 2 * {p})")
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= h + p:
            o -= 1
        sizes.append(o)
    return tuple(sizes)


def _first_maxima(xp, window, n_off, best, local, small, nan):
    """The running maximum over the window offsets after the first (into best), and the
    window-local index of each window's first maximum (NaNs counted when `nan`)."""
    for j in range(1, n_off):
        v = window(j)
        take = v > best
        if nan:
            take |= xp.isnan(v) & ~xp.isnan(best)
        xp.maximum(best, v, out=best)  # NaN propagates: a NaN best stays NaN
        # where, not copyto(where=): the masked copy ran 5x slower in NumPy 2.
        local = xp.where(take, small(j), local)
    return local


@functools.lru_cache(maxsize=256)
def _plan(S, kernel, stride, padding, ceil_mode):
    """What a geometry's call needs beyond the values (computed once: for a small pooling
    its Python and index arithmetic cost as much as the running maximum): the output
    sizes, the high-side padding for ceil_mode, each offset's window slices, and the flat
    input position of each window's first element."""
    nd = len(S)
    O = out_sizes(S, kernel, stride, padding, ceil_mode)
    hi = tuple((o - 1) * s + k - h - p for o, s, k, h, p in zip(O, stride, kernel, S, padding))
    offsets = list(itertools.product(*(range(k) for k in kernel)))
    windows = [(slice(None), slice(None)) + tuple(
        slice(i, i + s * (o - 1) + 1, s) for i, s, o in zip(off, stride, O)) for off in offsets]
    flat_stride = [math.prod(S[d + 1:]) for d in range(nd)]
    # Each window's first input position, flat: sum over dims of o * s * (dim's stride).
    base = sum(np.arange(O[d], dtype=np.int64).reshape((1,) * d + (O[d],) + (1,) * (nd - 1 - d))
               * (stride[d] * flat_stride[d]) for d in range(nd))
    table = np.array([sum(i * f for i, f in zip(off, flat_stride)) for off in offsets],
                     dtype=np.int64)
    padded = any(padding) or any(h > 0 for h in hi)
    return O, hi, windows, np.asarray(base, dtype=np.int64), table, padded


@functools.lru_cache(maxsize=256)
def _tables(xp, key):
    """_plan's window bases and offset table for geometry `key`, as arrays of module xp."""
    _, _, _, base, table, _ = _plan(*key)
    return xp.asarray(base), xp.asarray(table)


def make_pool_argmax(xp):
    """The kernel for array module xp."""
    def pool_argmax(x, kernel=(1,), stride=(1,), padding=(0,), ceil_mode=False, out=None):
        S, nd = tuple(x.shape[2:]), x.ndim - 2
        key = (S, tuple(kernel), tuple(stride), tuple(padding), bool(ceil_mode))
        O, hi, windows, _, _, padded = _plan(*key)
        if padded:
            xp_ = xp.full(x.shape[:2] + tuple(h + p + max(q, 0) for h, p, q in
                                              zip(S, padding, hi)), -xp.inf, dtype=x.dtype)
            xp_[(slice(None), slice(None)) + tuple(slice(p, p + h) for p, h in
                                                   zip(padding, S))] = x
        else:
            xp_ = x

        def window(j):  # every window's element at offset j: one strided view
            return xp_[windows[j]]
        # A running maximum over the offsets (row-major), replaced only by a strictly greater
        # value, or by a NaN where the best so far is not one: the first maximum, without
        # copying the windows out (argmax over a short last axis is slow in NumPy).
        n_off = len(windows)
        best = window(0).copy()
        small = xp.int8 if n_off < 128 else xp.int64  # a quarter of the traffic
        local = xp.zeros(best.shape, dtype=small)
        # NaN handling only where a NaN is there: the running maximum propagates it into
        # `best`, so a second pass with it runs only then (no extra pass over x otherwise).
        local = _first_maxima(xp, window, n_off, best, local, small, False)
        if bool(xp.isnan(best).any()):
            best = window(0).copy()
            local = _first_maxima(xp, window, n_off, best, xp.zeros_like(local), small, True)
        if not padded:
            # No padding: the offset's flat distance by table lookup (an integer division
            # per dim decoding `local` cost more than the running maximum itself).
            b, t = _tables(xp, key)
            res = out if out is not None else xp.empty(local.shape, dtype=xp.int64)
            # Into the output, then the base added in place: no int64 temporaries (2x the
            # output each); clip: no buffered copy in NumPy (local is in range by making).
            xp.take(t, local, out=res, **({"mode": "clip"} if xp.__name__ == "numpy"
                                          else {}))
            res += b
            return res
        local = local.astype(xp.int64)
        flat = xp.zeros(local.shape, dtype=xp.int64)
        rest = local
        K = list(kernel)
        for d in range(nd):  # window-local offset -> input coordinate, dim by dim
            w = math.prod(K[d + 1:])
            i, rest = rest // w, rest % w
            start = (xp.arange(O[d]) * stride[d] - padding[d]).reshape(
                (O[d],) + (1,) * (nd - 1 - d))
            c = start + i
            if padding[d] or hi[d] > 0:  # a padding position: the window's first real one
                c = xp.where((c < 0) | (c >= S[d]), xp.maximum(start, 0), c)
            flat = flat * S[d] + c
        if out is None:
            return flat
        out[...] = flat
        return out
    return pool_argmax
