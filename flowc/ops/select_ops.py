"""Selecting along an axis: topk indices, take_along_axis and its gradient."""
from __future__ import annotations

from ..ir.errors import ShapeError
from ..ir.types import TensorType, broadcast_shapes, normalize_axis
from . import api_linalg as L
from .batchutil import materialize
from .build import apply
from .registry import REQUIRED, OpDef, register

INT = ("int64", "int32", "int16", "int8", "uint8", "uint16", "uint32")


def _topk_infer(types, attrs):
    (x,) = types
    ax = normalize_axis(attrs["axis"], x.ndim)[0]
    k = attrs["k"]
    if x.shape[ax] is not None and not 0 < k <= x.shape[ax]:
        raise ShapeError(f"topk: k={k} but axis {ax} has {x.shape[ax]} elements")
    return TensorType("int64", x.shape[:ax] + (k,) + x.shape[ax + 1:])


register(OpDef("topk_indices", 1, _topk_infer, attrs={"k": REQUIRED, "axis": -1, "largest": True},
               differentiable=False,
               batch=lambda c: apply("topk_indices", c.inputs, k=c.attrs["k"],
                                     axis=normalize_axis(c.attrs["axis"], c.out.ndim)[0] + 1,
                                     largest=c.attrs["largest"]),
               doc="indices of the k largest (or smallest) entries along axis, in order"))


def _tala_infer(types, attrs):
    x, idx = types
    if idx.dtype not in INT:
        raise ShapeError(f"take_along_axis needs integer indices, got {idx.short()}")
    if idx.ndim != x.ndim:
        raise ShapeError(f"take_along_axis: indices have {idx.ndim} dims, x has {x.ndim}")
    ax = normalize_axis(attrs["axis"], x.ndim)[0]
    other = broadcast_shapes(x.shape[:ax] + x.shape[ax + 1:], idx.shape[:ax] + idx.shape[ax + 1:])
    return TensorType(x.dtype, other[:ax] + (idx.shape[ax],) + other[ax:])


def _shift(c):
    return normalize_axis(c.attrs["axis"], c.out.ndim)[0] + 1


def _tala_batch(c):
    x, idx = [x if b else materialize(x, next(y for y, f in zip(c.inputs, c.batched) if f))
              for x, b in zip(c.inputs, c.batched)]
    return apply("take_along_axis", [x, idx], axis=_shift(c))


register(OpDef("take_along_axis", 2, _tala_infer, attrs={"axis": -1}, linear=True,
               vjp=lambda c: [apply("put_along_axis_grad", [c.inputs[0], c.inputs[1], c.g],
                                    axis=c.attrs["axis"]), None],
               jvp=lambda c: None if c.tangents[0] is None else
               apply("take_along_axis", [c.tangents[0], c.inputs[1]], axis=c.attrs["axis"]),
               batch=_tala_batch,
               doc="x's entries at integer indices along axis (np.take_along_axis)"))


def _put_batch(c):
    ref = next(y for y, f in zip(c.inputs, c.batched) if f)
    args = [x if b else materialize(x, ref) for x, b in zip(c.inputs, c.batched)]
    return apply("put_along_axis_grad", args, axis=normalize_axis(c.attrs["axis"],
                                                                  c.out.ndim)[0] + 1)


# unique: the indices of each row are distinct wherever their leading shape is x's (the O2
# specialize pass sets it where they are max pooling's picks from disjoint windows and x is
# the pooled input as (N, C, -1)), so the kernel assigns there instead of summing.
register(OpDef("put_along_axis_grad", 3, lambda ts, a: ts[0],
               attrs={"axis": -1, "unique": False}, linear=True,
               vjp=lambda c: [None, None, L.take_along_axis(c.g, c.inputs[1], c.attrs["axis"])],
               jvp=lambda c: None if c.tangents[2] is None else
               apply("put_along_axis_grad", [c.inputs[0], c.inputs[1], c.tangents[2]],
                     axis=c.attrs["axis"]),
               batch=_put_batch,
               doc="zeros shaped like x with g added at the indices (gradient of take_along_axis)"))
