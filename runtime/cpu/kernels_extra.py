"""NumPy kernels of the linear-algebra, selection and differentiation-steering ops."""
from __future__ import annotations

import math

import numpy as np


def _solve(a, b, out=None):
    r = np.linalg.solve(a, b)
    if out is None:
        return r
    np.copyto(out, r)
    return out


def _slogdet(a, part="logabsdet"):
    sign, logdet = np.linalg.slogdet(a)
    return np.asarray(sign if part == "sign" else logdet)


def _diag_part(x, k=0):
    return np.diagonal(x, offset=k, axis1=-2, axis2=-1)


def _diag_rows_cols(shape, k):
    n, m = shape[-2], shape[-1]
    size = max(0, min(n + min(k, 0), m - max(k, 0)))
    rows = np.arange(size) - min(k, 0)
    return rows, rows + k


def _diag_part_grad(x, g, k=0, out=None):
    out = np.zeros_like(x) if out is None else out
    out.fill(0)
    r, c = _diag_rows_cols(x.shape, k)
    out[..., r, c] = g
    return out


def _diag_embed(v, k=0, out=None):
    n = v.shape[-1] + abs(k)
    out = np.zeros(v.shape[:-1] + (n, n), dtype=v.dtype) if out is None else out
    out.fill(0)
    r, c = _diag_rows_cols((n, n), k)
    out[..., r, c] = v
    return out


def _norm2(x, axis=None, keepdims=False, out=None):
    # Scale by the largest magnitude first so squares neither overflow nor underflow.
    m = np.max(np.abs(x), axis=axis, keepdims=True, initial=0.0)
    safe = np.where(m == 0, 1.0, m)
    r = np.sqrt(np.sum(np.square(x / safe), axis=axis, keepdims=True)) * m
    r = np.where(np.isinf(m), m, r)  # an infinite entry makes the norm inf, not inf/inf = nan
    r = r if keepdims else (np.squeeze(r, axis) if axis is not None else r.reshape(()))
    r = np.asarray(r, dtype=np.result_type(x.dtype, np.float16))
    if out is None:
        return r
    np.copyto(out, r)
    return out


def _topk_indices(x, k, axis=-1, largest=True):
    # A stable sort keeps the first of equal entries first, so ties are deterministic.
    order = np.argsort(-x if largest else x, axis=axis, kind="stable")
    return np.take(order, np.arange(k), axis=axis).astype(np.int64)


def _last_axis_flat(shape, idx, ax):
    """Flat indices into a C-ordered array of this shape of idx along its last axis, when
    idx has the array's leading shape (max pooling's gather, cross-entropy's pick); None
    otherwise."""
    if ax != len(shape) - 1 or idx.shape[:-1] != tuple(shape[:-1]):
        return None
    n = shape[-1]
    if n == 0 or 0 in shape:
        return None
    rows = np.arange(0, math.prod(shape), n, dtype=np.int64).reshape(tuple(shape[:-1]) + (1,))
    if not idx.size:
        return rows + idx
    lo, hi = idx.min(), idx.max()
    if hi >= n or lo < -n:
        raise IndexError(f"index out of range for axis {ax} of size {n}")
    return rows + (np.where(idx < 0, idx + n, idx) if lo < 0 else idx)


def _take_along_axis(x, idx, axis=-1, out=None):
    flat = _last_axis_flat(x.shape, idx, axis % x.ndim) \
        if x.ndim and x.flags.c_contiguous else None
    if flat is not None:  # one gather of flat indices: np.take_along_axis builds ndim grids
        # into the planned buffer; clip: no buffered copy (the indices were checked)
        return x.reshape(-1).take(flat, out=out, mode="clip")
    r = np.take_along_axis(x, idx, axis=axis)
    if out is None:
        return r
    np.copyto(out, r)
    return out


CHUNK = 1 << 15  # elements of a scatter-add's float64 sums made at a time: half the
MIN_CHUNK = 1 << 12  # output's, within these bounds


def _row_chunks(out, idx, g, sums):
    """(rows r0:r1, their flat indices into out from row `r0` on, g's rows) a few rows at
    a time, for out[..., idx[..., j]] along the last axis of a C-ordered out whose leading
    shape idx has (checked in range; negative ones count back). About CHUNK elements a
    chunk: of the float64 sums when `sums` (out's rows), else of the indices (g's rows)."""
    n, lo = out.shape[-1], 0
    if idx.size:
        lo, hi = idx.min(), idx.max()
        if hi >= n or lo < -n:
            raise IndexError(f"index out of range for axis {out.ndim - 1} of size {n}")
    k = idx.shape[-1]
    idx, g = idx.reshape(-1, k), g.reshape(-1, k)
    per_row, whole = (max(n, k, 1), out.size) if sums else (max(k, 1), g.size)
    rows = max(1, min(CHUNK, max(MIN_CHUNK, whole // 2)) // per_row)
    for r0 in range(0, idx.shape[0], rows):
        r1 = min(idx.shape[0], r0 + rows)
        flat = idx[r0:r1] % n if lo < 0 else idx[r0:r1].astype(np.int64)
        flat += np.arange(0, (r1 - r0) * n, n, dtype=np.int64)[:, None]
        yield r0, r1, flat, g[r0:r1]


def _scatter_rows(out, idx, g):
    """out[..., idx[..., j]] += g[..., j] along the last axis (see _row_chunks). Rows at a
    time, so the flat indices and float64 sums take about CHUNK elements, not out's size
    (max pooling's gradient: 2.7 MB on LeNet's first layer, its step's largest transient);
    bincount sums repeats ~10x faster than np.add.at, in float64, then rounds once."""
    n, o = out.shape[-1], out.reshape(-1)
    for r0, r1, flat, gr in _row_chunks(out, idx, g, True):
        o[r0 * n:r1 * n] = np.bincount(flat.ravel(), weights=gr.ravel(),
                                       minlength=(r1 - r0) * n)


def _assign_rows(out, idx, g):
    """out[..., idx[..., j]] = g[..., j] along the last axis, for indices distinct within
    each row (nothing to sum): one flat assignment per few rows, 5x faster than the
    float64 bincount and with a quarter of its transients."""
    n, o = out.shape[-1], out.reshape(-1)
    for r0, r1, flat, gr in _row_chunks(out, idx, g, False):
        o[r0 * n:r1 * n][flat.ravel()] = gr.ravel()


def _put_along_axis_grad(x, idx, g, axis=-1, out=None, unique=False):
    out = np.zeros_like(x) if out is None else out
    out.fill(0)
    ax = axis % x.ndim
    if unique and out.flags.c_contiguous and ax == out.ndim - 1 and \
            idx.shape == g.shape and idx.shape[:-1] == out.shape[:-1] and 0 not in out.shape:
        _assign_rows(out, idx, g)  # distinct indices per row (max pooling's, stride >= kernel)
        return out
    idx = np.broadcast_to(idx, g.shape)  # idx may broadcast against x off the axis
    # Off the axis, a size-1 dim of x that idx broadcasts over takes every row's gradient at
    # 0 (summed): its grid is all zeros, not 0..n-1 (np.add.at raised IndexError there).
    grids = np.ix_(*[np.arange(d) if x.shape[i] != 1 else np.zeros(d, np.intp)
                     for i, d in enumerate(idx.shape)])
    full = tuple(idx if i == ax else np.broadcast_to(grids[i], idx.shape) for i in range(x.ndim))
    if g.dtype.kind == "f" and out.size:
        # bincount sums repeated indices in float64, ~10x faster than np.add.at; a float32
        # result is then rounded once (as accurate as adding in order, or more).
        if out.flags.c_contiguous and ax == out.ndim - 1 and \
                idx.shape[:-1] == out.shape[:-1] and 0 not in out.shape:
            _scatter_rows(out, idx, g)
            return out
        n = x.shape[ax]
        if idx.size and (idx.max() >= n or idx.min() < -n):
            raise IndexError(f"index out of range for axis {ax} of size {n}")
        lin = np.ravel_multi_index(tuple(np.asarray(a, dtype=np.intp) for a in full),
                                   x.shape, mode="wrap")  # wrap: negative indices count back
        out[...] = np.bincount(lin.ravel(), weights=g.ravel(),
                               minlength=out.size).reshape(out.shape)
        return out
    np.add.at(out, full, g)
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z):
    # SplitMix64's finalizer (uint64 arithmetic wraps, which is the point).
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def random_bits(key, counter, stream, n, start=0):
    """n uint64 words, elements start..start+n-1 of the sequence: SplitMix64 from a base mixed
    out of (key, counter, stream)."""
    with np.errstate(over="ignore"):
        k = np.uint64(int(float(key) * 2.0 ** 53) & (2 ** 64 - 1))
        c = np.uint64(int(counter) & (2 ** 64 - 1))
        base = _mix(k ^ _mix(c ^ _mix(np.uint64(stream) + _GOLDEN)))
        i = np.arange(start + 1, start + n + 1, dtype=np.uint64)
        return _mix(base + i * _GOLDEN)


def shard_start(n, sharded):
    """The first element a draw of n elements takes: 0, or for a draw sharded over the
    processes of a data-parallel job (equal shards of a global batch, in rank order) rank * n,
    so that the processes together draw the one-process numbers of the global batch."""
    if not sharded:
        return 0
    from .. import comm
    return comm.current().rank * n


def _random_uniform(like, state, stream=0, dtype="float64", sharded=False, out=None):
    n = int(np.prod(np.shape(like), dtype=np.int64))
    bits = random_bits(state[0], state[1], stream, n, shard_start(n, sharded))
    if dtype == "float32":
        r = (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    else:
        r = (bits >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
    r = r.reshape(np.shape(like))
    if out is None:
        return r
    np.copyto(out, r)
    return out


def range_problem(x, lo, hi, what):
    """None, or the message for the first element of x that is NaN or outside [lo, hi]."""
    with np.errstate(invalid="ignore"):
        bad = ~((x >= lo) & (x <= hi))
    if not bad.any():
        return None
    at = np.unravel_index(int(np.argmax(bad.ravel())), np.shape(x)) if np.ndim(x) else ()
    return (f"{what} must be in [{lo:g}, {hi:g}], got {float(np.asarray(x)[at])!r} at index "
            f"{tuple(int(i) for i in at)} ({int(bad.sum())} of {bad.size} out of range)")


def _random_check(x, lo=0.0, hi=1.0, what="value"):
    # Raising here fails the call before any update commits: no param or stream advances.
    problem = range_problem(x, lo, hi, what)
    if problem:
        raise ValueError(problem)
    return x


def _basis(t):
    n = t.size
    return np.eye(n, dtype=t.dtype).reshape((n,) + t.shape)


def _inv(a, out=None):
    r = np.linalg.inv(a)
    if out is None:
        return r
    np.copyto(out, r)
    return out


OUT = {"solve": _solve, "inv": _inv, "random_uniform": _random_uniform,
       "diag_part_grad": _diag_part_grad, "diag_embed": _diag_embed, "norm2": _norm2,
       "put_along_axis_grad": _put_along_axis_grad, "take_along_axis": _take_along_axis}
VIEW = {"slogdet": _slogdet, "diag_part": _diag_part, "topk_indices": _topk_indices,
        "basis": _basis, "random_check": _random_check,
        "stop_gradient": lambda x: x, "custom_vjp": lambda y, *rest, rule=None: y}
