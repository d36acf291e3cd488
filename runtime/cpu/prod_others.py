"""prod_others: for each element, the product of the other elements of its group, without
dividing (exact where operands are 0), and the multilinear derivative parts of it.

prod_others(x, t1, ..., tm, axis) is, per element i of a group (the elements that differ only
along `axis`), the coefficient of e1...em in prod over k != i of (x_k + e1 t1_k + ... + em tm_k)
with every e_r squared 0: with no t the product of the others, with one t the sum over
j != i of t_j times the product of the rest, and so on. It is computed as the exclusive
product from the left times the one from the right, over these truncated polynomials.
Written once for any array module (NumPy here, CuPy on the GPU).
"""
from __future__ import annotations

from math import prod as _prod


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes)) if ndim else ()


def _mul(a, b):
    """Product of two truncated polynomials (lists indexed by subsets of the e_r, as bit masks)."""
    out = []
    for s in range(len(a)):
        acc, sub = None, s
        while True:  # every subset `sub` of s
            term = a[sub] * b[s ^ sub]
            acc = term if acc is None else acc + term
            if sub == 0:
                break
            sub = (sub - 1) & s
        out.append(acc)
    return out


def _exclusive_scan(xp, poly, n):
    """Exclusive running product along axis 1 (Hillis-Steele, log2(n) steps)."""
    cur, d = poly, 1
    while d < n:
        prod = _mul([c[:, :-d] for c in cur], [c[:, d:] for c in cur])
        cur = [xp.concatenate([c[:, :d], p], axis=1) for c, p in zip(cur, prod)]
        d *= 2
    ident = [xp.ones_like(cur[0][:, :1])] + [xp.zeros_like(cur[0][:, :1])] * (len(cur) - 1)
    return [xp.concatenate([e, c[:, :-1]], axis=1) for e, c in zip(ident, cur)]


def _others_of(xp, x):
    """The product of the others along axis 1: two cumulative products, no division."""
    one = xp.ones_like(x[:, :1])
    left = xp.concatenate([one, xp.cumprod(x[:, :-1], axis=1)], axis=1)
    right = xp.cumprod(x[:, :0:-1], axis=1)[:, ::-1]
    return left * xp.concatenate([right, one], axis=1)


def _fast_others(xp, x):
    """P / x where that is the product of the others to rounding: no zero in x and a finite,
    nonzero P (else None). Cumulative products are sequential, 3-5x slower than this."""
    if x.dtype.kind != "f" or not bool(xp.all(x != 0)):
        return None
    with xp.errstate(over="ignore", under="ignore"):  # then it is not used
        p = xp.prod(x, axis=1, keepdims=True)
    if not bool(xp.all(xp.isfinite(p) & (p != 0))):
        return None
    return p / x


def _flat_others(xp, flats, fast):
    """prod_others along axis 1 of operands shaped (before, n, after)."""
    n = flats[0].shape[1]
    if len(flats) == 1:
        fast = _fast_others(xp, flats[0]) if fast else None
        return _others_of(xp, flats[0]) if fast is None else fast
    m = len(flats) - 1
    poly = [flats[0]] + [xp.zeros_like(flats[0])] * ((1 << m) - 1)
    for r, t in enumerate(flats[1:]):
        poly[1 << r] = t
    left = _exclusive_scan(xp, poly, n)
    right = [c[:, ::-1] for c in _exclusive_scan(xp, [c[:, ::-1] for c in poly], n)]
    full = (1 << m) - 1
    acc, sub = None, full
    while True:  # only the e1...em coefficient of left * right
        term = left[sub] * right[full ^ sub]
        acc = term if acc is None else acc + term
        if sub == 0:
            break
        sub = (sub - 1) & full
    return acc


def prod_others(xp, xs, axis=None, fast=False):
    """The prod_others value of operands `xs` (x, then the tangents) over `axis`; `fast`
    allows the division where it is exact enough (it reads the data: no GPU, which would
    synchronize, and could not be captured in a CUDA graph)."""
    xs = xp.broadcast_arrays(*xs)
    dtype = xp.result_type(*xs)
    shape, nd = xs[0].shape, xs[0].ndim
    axes = _axes(axis, nd)
    if _prod(shape) == 0:
        return xp.zeros(shape, dtype=dtype)
    # The reduced axes side by side at the first one's place (a view when they already
    # are), then (before, n, after): the scans run along the middle axis.
    first = axes[0] if axes else 0
    moved = [xp.moveaxis(x, axes, tuple(range(first, first + len(axes)))) for x in xs]
    mshape = moved[0].shape
    flat = (_prod(mshape[:first]), _prod(mshape[first:first + len(axes)]),
            _prod(mshape[first + len(axes):]))
    r = _flat_others(xp, [x.astype(dtype, copy=False).reshape(flat) for x in moved], fast)
    return xp.moveaxis(r.reshape(mshape), tuple(range(first, first + len(axes))), axes)


def kernel(xp, fast=False):
    """The `prod_others` kernel for array module xp: fn(*xs, axis=None, out=None)."""
    def k(*xs, axis=None, out=None):
        r = prod_others(xp, xs, axis, fast)
        if out is None:  # (ascontiguousarray would make a 0-d result 1-d)
            return r if r.flags.c_contiguous else r.copy(order="C")
        xp.copyto(out, r)
        return out
    return k
