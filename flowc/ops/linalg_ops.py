"""Linear-algebra ops for second-order methods: solve, inv, slogdet, diagonals, 2-norms."""
from __future__ import annotations

from ..ir.errors import ShapeError
from ..ir.types import TensorType, broadcast_shapes, fmt_shape, normalize_axis, result_dtype
from . import api as F
from . import api_linalg as L
from .batchutil import align, materialize
from .build import apply
from .infer import float_unary, reduced_shape
from .registry import OpDef, register


def _mT(t):
    """Swap the last two axes."""
    perm = list(range(t.ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return F.transpose(t, perm)


def _square(t, what):
    if t.ndim < 2 or (t.shape[-1] is not None and t.shape[-2] is not None
                      and t.shape[-1] != t.shape[-2]):
        raise ShapeError(f"{what} needs square matrices (..., n, n), got {fmt_shape(t.shape)}")


# -- solve ------------------------------------------------------------------------------------
def _solve_infer(types, attrs):
    a, b = types
    _square(a, "solve")
    n = a.shape[-1]
    if b.ndim == 1:
        if a.ndim != 2:
            raise ShapeError("solve with a vector b needs a single (n, n) matrix a")
        if n is not None and b.shape[0] is not None and b.shape[0] != n:
            raise ShapeError(f"solve: a is {fmt_shape(a.shape)} but b has {b.shape[0]} rows")
        return TensorType(float_unary([TensorType(result_dtype(a.dtype, b.dtype), ())], {}).dtype,
                          b.shape)
    if b.ndim < 2 or (n is not None and b.shape[-2] is not None and b.shape[-2] != n):
        raise ShapeError(f"solve: a is {fmt_shape(a.shape)}, b {fmt_shape(b.shape)}: b needs "
                         f"shape (..., {n}, k) or ({n},)")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2], what="solve batch dimensions")
    dtype = float_unary([TensorType(result_dtype(a.dtype, b.dtype), ())], {}).dtype
    return TensorType(dtype, batch + b.shape[-2:])


def _col(t):
    return F.expand_dims(t, -1)


def _solve_vjp(c):
    a, b = c.inputs
    gb = L.solve(_mT(a), c.g)                   # A^-T g
    x = c.out
    ga = -(F.matmul(_col(gb), F.expand_dims(x, 0)) if b.ndim == 1 else F.matmul(gb, _mT(x)))
    return [ga, gb]


def _solve_jvp(c):
    a, b = c.inputs
    ta, tb = c.tangents
    rhs = tb if tb is not None else None
    if ta is not None:
        dax = F.matmul(ta, c.out)
        rhs = -dax if rhs is None else rhs - dax
    return L.solve(a, rhs)


def _solve_batch(c):
    (a, b), (ba, bb) = c.inputs, c.batched
    vector = c.out.ndim == 1  # the unbatched b was a vector
    if not ba:  # one matrix, many right-hand sides
        if vector:
            return F.transpose(L.solve(a, F.transpose(b)))
        return L.solve(a, align(b, a.ndim + 1))
    if not bb:
        b = materialize(b, a)
    if vector:
        return F.squeeze(L.solve(a, _col(b)), -1)
    return L.solve(a, align(b, a.ndim))


register(OpDef("solve", 2, _solve_infer, vjp=_solve_vjp, jvp=_solve_jvp, batch=_solve_batch,
               doc="x with a @ x = b (a square; b a vector or a stack of columns)"))


# -- inv ----------------------------------------------------------------------------------------
def _inv_infer(types, attrs):
    _square(types[0], "inv")
    return float_unary(types, attrs)


register(OpDef("inv", 1, _inv_infer,
               vjp=lambda c: [-F.matmul(F.matmul(_mT(c.out), c.g), _mT(c.out))],
               jvp=lambda c: -F.matmul(F.matmul(c.out, c.tangents[0]), c.out),
               batch=lambda c: L.inv(c.inputs[0]),
               doc="matrix inverse (of the last two axes)"))


# -- slogdet ------------------------------------------------------------------------------------
def _slogdet_infer(types, attrs):
    (a,) = types
    _square(a, "slogdet")
    if attrs["part"] not in ("sign", "logabsdet"):
        raise ShapeError(f"slogdet part must be 'sign' or 'logabsdet', got {attrs['part']!r}")
    return TensorType(float_unary(types, attrs).dtype, a.shape[:-2])


def _logdet_vjp(c):
    if c.attrs["part"] == "sign":
        return [None]
    g = F.expand_dims(c.g, (-2, -1)) if c.g.ndim or c.inputs[0].ndim > 2 else c.g
    return [g * _mT(L.inv(c.inputs[0]))]


def _logdet_jvp(c):
    if c.attrs["part"] == "sign":
        return None
    return F.sum(_mT(L.inv(c.inputs[0])) * c.tangents[0], (-2, -1))


register(OpDef("slogdet", 1, _slogdet_infer, attrs={"part": "logabsdet"}, vjp=_logdet_vjp,
               jvp=_logdet_jvp, batch=lambda c: apply("slogdet", c.inputs, **c.attrs),
               doc="sign or log|det| of square matrices (np.linalg.slogdet)"))


# -- diagonals ------------------------------------------------------------------------------------
def _diag_part_infer(types, attrs):
    (x,) = types
    if x.ndim < 2:
        raise ShapeError(f"diag_part needs a matrix, got {fmt_shape(x.shape)}")
    n, m, k = x.shape[-2], x.shape[-1], attrs["k"]
    if n is None or m is None:
        size = None
    else:
        size = max(0, min(n + min(k, 0), m - max(k, 0)))
    return TensorType(x.dtype, x.shape[:-2] + (size,))


def _diag_embed_infer(types, attrs):
    (v,) = types
    if v.ndim < 1:
        raise ShapeError("diag_embed needs a vector")
    n = None if v.shape[-1] is None else v.shape[-1] + abs(attrs["k"])
    return TensorType(v.dtype, v.shape[:-1] + (n, n))


register(OpDef("diag_part", 1, _diag_part_infer, attrs={"k": 0}, linear=True,
               vjp=lambda c: [apply("diag_part_grad", [c.inputs[0], c.g], k=c.attrs["k"])],
               jvp=lambda c: apply("diag_part", [c.tangents[0]], k=c.attrs["k"]),
               batch=lambda c: apply("diag_part", c.inputs, k=c.attrs["k"]),
               doc="the k-th diagonal of the last two axes"))
register(OpDef("diag_part_grad", 2, lambda ts, a: ts[0], attrs={"k": 0}, linear=True,
               vjp=lambda c: [None, apply("diag_part", [c.g], k=c.attrs["k"])],
               jvp=lambda c: None if c.tangents[1] is None else
               apply("diag_part_grad", [c.inputs[0], c.tangents[1]], k=c.attrs["k"]),
               batch=lambda c: apply("diag_part_grad", _both(c), k=c.attrs["k"]),
               doc="zeros shaped like x with g on its k-th diagonal (gradient of diag_part)"))
register(OpDef("diag_embed", 1, _diag_embed_infer, attrs={"k": 0}, linear=True,
               vjp=lambda c: [apply("diag_part", [c.g], k=c.attrs["k"])],
               jvp=lambda c: apply("diag_embed", [c.tangents[0]], k=c.attrs["k"]),
               batch=lambda c: apply("diag_embed", c.inputs, k=c.attrs["k"]),
               doc="square matrices with v on the k-th diagonal"))


def _both(c):
    return [x if b else materialize(x, next(y for y, f in zip(c.inputs, c.batched) if f))
            for x, b in zip(c.inputs, c.batched)]


# -- 2-norm / Frobenius norm ------------------------------------------------------------------
def _norm_infer(types, attrs):
    (x,) = types
    axis = normalize_axis(attrs["axis"], x.ndim)
    return TensorType(float_unary(types, attrs).dtype, reduced_shape(x.shape, axis, attrs["keepdims"]))


def _spread(c, t):
    x = c.inputs[0]
    axes = normalize_axis(c.attrs["axis"], x.ndim)
    if not c.attrs["keepdims"] and axes:
        t = F.expand_dims(t, axes)
    return F.broadcast_like(t, x)


def _norm_vjp(c):
    # d||x|| = x / ||x||, taken as 0 where the norm is 0 (the subgradient PyTorch uses).
    n = _spread(c, c.out)
    safe = F.where(F.equal(n, 0), 1.0, n)
    return [_spread(c, c.g) * F.where(F.equal(n, 0), 0.0, c.inputs[0] / safe)]


def _norm_jvp(c):
    x, t = c.inputs[0], c.tangents[0]
    n = _spread(c, c.out)
    unit = F.where(F.equal(n, 0), 0.0, x / F.where(F.equal(n, 0), 1.0, n))
    return F.sum(unit * t, c.attrs["axis"], keepdims=c.attrs["keepdims"])


def _norm_batch(c):
    from .batchutil import shift_axes
    x = c.inputs[0]
    return apply("norm2", [x], axis=shift_axes(c.attrs["axis"], x.ndim - 1),
                 keepdims=c.attrs["keepdims"])


register(OpDef("norm2", 1, _norm_infer, attrs={"axis": None, "keepdims": False},
               vjp=_norm_vjp, jvp=_norm_jvp, batch=_norm_batch,
               doc="sqrt(sum(x**2)) over axes: vector 2-norm or Frobenius norm"))
