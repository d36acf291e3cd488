"""The `conv` kernel (NumPy or CuPy): im2col by one strided copy per kernel offset into a
(N * out positions, channels * kernel) matrix, then one GEMM per group.

No einsum or tensordot over a strided window view: einsum never calls BLAS and tensordot
copies the view anyway (numpy#12132); the copy here is explicit and the product is BLAS's.
"""
from __future__ import annotations

import itertools
import math


def _dilated(xp, x, u):
    """x with u - 1 zeros between neighbours along each spatial dim."""
    if all(v == 1 for v in u):
        return x
    shape = x.shape[:2] + tuple((n - 1) * v + 1 if n else 0 for n, v in zip(x.shape[2:], u))
    out = xp.zeros(shape, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, v) for v in u)] = x
    return out


def _padded(xp, x, pad):
    """x cropped by the negative pads and zero-padded by the positive ones."""
    crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(pad, x.shape[2:]))
    x = x[(slice(None), slice(None)) + crop]
    if all(lo <= 0 and hi <= 0 for lo, hi in pad):
        return x
    shape = x.shape[:2] + tuple(n + max(lo, 0) + max(hi, 0) for (lo, hi), n in
                                zip(pad, x.shape[2:]))
    out = xp.zeros(shape, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(max(lo, 0), max(lo, 0) + n) for (lo, _), n
                                           in zip(pad, x.shape[2:]))] = x
    return out


def make_conv(xp):
    """The conv kernel for array module xp."""

    def conv(x, w, stride=(1,), pad=((0, 0),), dilation=(1,), lhs_dilation=(1,), groups=1,
             flip=False, out=None):
        nd = x.ndim - 2
        x = _padded(xp, _dilated(xp, x, lhs_dilation), pad)
        if flip:
            w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
        K, (N, C), O = w.shape[2:], x.shape[:2], w.shape[0]
        osz = tuple((n - d * (k - 1) - 1) // s + 1 for n, k, d, s in
                    zip(x.shape[2:], K, dilation, stride))
        if any(o < 1 for o in osz):
            raise ValueError(f"conv: the kernel {tuple(K)} (dilation {tuple(dilation)}) is "
                             f"larger than the padded input {tuple(x.shape[2:])}")
        # cols[n, *p, c, *i] = x~[n, c, p * s + i * d]: one strided copy per kernel offset.
        cols = xp.empty((N,) + osz + (C,) + tuple(K), dtype=x.dtype)
        lead = (slice(None),) * (2 + nd)
        for off in itertools.product(*(range(k) for k in K)):
            src = x[(slice(None), slice(None)) + tuple(
                slice(i * d, i * d + s * (o - 1) + 1, s)
                for i, d, s, o in zip(off, dilation, stride, osz))]
            cols[lead + off] = xp.moveaxis(src, 1, -1)
        P, Cg, Og, KK = math.prod(osz), C // groups, O // groups, math.prod(K)
        cols = cols.reshape(N * P, groups, Cg * KK)
        res = out if out is not None else xp.empty((N, O) + osz, dtype=x.dtype)
        for g in range(groups):
            y = cols[:, g] @ w[g * Og:(g + 1) * Og].reshape(Og, Cg * KK).T  # (N * P, Og)
            res[:, g * Og:(g + 1) * Og] = xp.moveaxis(y.reshape((N,) + osz + (Og,)), -1, 1)
        return res
    return conv
