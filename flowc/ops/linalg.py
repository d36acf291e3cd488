"""Matrix products with NumPy's matmul semantics (1-D operands, batched broadcasting)."""
from __future__ import annotations

from ..ir.errors import ShapeError
from ..ir.types import TensorType, broadcast_shapes, fmt_shape, result_dtype
from . import api as F
from .batchutil import align
from .registry import OpDef, register


def _matmul_infer(types, attrs):
    a, b = types
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul needs operands with at least one dimension; use * for scalars")
    sa = a.shape if a.ndim >= 2 else (1,) + a.shape
    sb = b.shape if b.ndim >= 2 else b.shape + (1,)
    ka, kb = sa[-1], sb[-2]
    if ka is not None and kb is not None and ka != kb:
        raise ShapeError(f"matmul of shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)}: "
                         f"inner dimensions differ ({ka} != {kb})")
    batch = broadcast_shapes(sa[:-2], sb[:-2], what="matmul batch dimensions")
    shape = batch + (sa[-2],) * (a.ndim >= 2) + (sb[-1],) * (b.ndim >= 2)
    return TensorType(result_dtype(a.dtype, b.dtype), shape)


def _swap(t):
    perm = list(range(t.ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return F.transpose(t, perm)


def _matmul_vjp(c):
    a, b = c.inputs
    g = c.g
    # Matrix-vector products: a matrix-vector product and an outer product, as one would
    # write by hand (no expanded axes, so BLAS gets gemv).
    if a.ndim == 2 and b.ndim == 1:
        return [F.expand_dims(g, 1) * F.expand_dims(b, 0), F.matmul(_swap(a), g)]
    if a.ndim == 1 and b.ndim == 2:
        return [F.matmul(b, g), F.expand_dims(a, 1) * F.expand_dims(g, 0)]
    # Treat 1-D operands as a row (a) / column (b) matrix, then drop that axis again.
    a2 = a if a.ndim >= 2 else F.expand_dims(a, 0)
    b2 = b if b.ndim >= 2 else F.expand_dims(b, -1)
    # b's dropped axis is the last one, so restore it first (1-D @ 1-D: g goes () -> (1, 1)).
    if b.ndim == 1:
        g = F.expand_dims(g, -1)
    if a.ndim == 1:
        g = F.expand_dims(g, -2)
    ga, gb = F.matmul(g, _swap(b2)), F.matmul(_swap(a2), g)
    if a2.ndim > 2 or b2.ndim > 2:  # only batch axes broadcast; matrix axes never do
        ga, gb = F.unbroadcast(ga, a2), F.unbroadcast(gb, b2)
    if a.ndim == 1:
        ga = F.squeeze(ga, 0)
    if b.ndim == 1:
        gb = F.squeeze(gb, -1)
    return [ga, gb]


def _matmul_jvp(c):
    (a, b), (ta, tb) = c.inputs, c.tangents
    terms = ([F.matmul(ta, b)] if ta is not None else []) + ([F.matmul(a, tb)] if tb is not None else [])
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _matmul_batch(c):
    (a, b), (ba, bb) = c.inputs, c.batched
    a_nd, b_nd = a.ndim - ba, b.ndim - bb  # ranks before batching
    # Matrix times a batch of vectors is one matrix-matrix product (not B gemv calls).
    if not ba and bb and a_nd == 2 and b_nd == 1:
        return F.matmul(b, _swap(a))
    if ba and not bb and a_nd == 1 and b_nd == 2:
        return F.matmul(a, b)
    # Make 1-D operands matrices (a row, b a column), put the batch axis in front of the
    # batched operand's matrix axes, let NumPy broadcast the rest, then drop the added axes.
    if a_nd == 1:
        a = F.expand_dims(a, a.ndim - 1)
    if b_nd == 1:
        b = F.expand_dims(b, b.ndim)
    rank = max(a_nd, b_nd, 2) + 1
    a = align(a, rank) if ba else a
    b = align(b, rank) if bb else b
    r = F.matmul(a, b)
    if b_nd == 1:
        r = F.squeeze(r, r.ndim - 1)
    if a_nd == 1:
        r = F.squeeze(r, r.ndim - (1 if b_nd == 1 else 2))
    return r


register(OpDef("matmul", 2, _matmul_infer, vjp=_matmul_vjp, jvp=_matmul_jvp,
               batch=_matmul_batch, unbroadcasts=True, doc="matrix product (a @ b)"))
