"""Ops that move data around: reshape, transpose, broadcast, slicing, concatenation, take."""
from __future__ import annotations

import math

from ..ir.errors import ShapeError
from ..ir.types import TensorType, broadcast_shapes, fmt_shape, normalize_axis
from . import api as F
from . import shape_rules as R
from .registry import REQUIRED, OpDef, register


def _same_type_as(i):
    return lambda types, attrs: types[i]


# -- reshape -------------------------------------------------------------------------------
def _reshape_infer(types, attrs):
    (t,) = types
    shape = attrs["shape"]
    if sum(1 for d in shape if d == -1) > 1 or any(d < -1 for d in shape):
        raise ShapeError(f"reshape target {shape} may hold at most one -1 and no other negatives")
    known = math.prod(d for d in shape if d != -1)
    if None not in t.shape:
        size = math.prod(t.shape)
        if -1 in shape:
            if known == 0 or size % known:
                raise ShapeError(f"cannot reshape {fmt_shape(t.shape)} into {shape}")
            shape = tuple(size // known if d == -1 else d for d in shape)
        elif size != known:
            raise ShapeError(f"cannot reshape {fmt_shape(t.shape)} ({size} elements) into "
                             f"{shape} ({known} elements)")
        return TensorType(t.dtype, shape)
    return TensorType(t.dtype, tuple(None if d == -1 else d for d in shape))


def _reshape_vjp(c):
    x = c.inputs[0]
    return [F.reshape(c.g, x.type.shape) if None not in x.type.shape else F.reshape_like(c.g, x)]


register(OpDef("reshape", 1, _reshape_infer, attrs={"shape": REQUIRED}, vjp=_reshape_vjp,
               linear=True, jvp=R.linear_jvp(0), batch=R.reshape, doc="same elements, new shape (one -1 allowed)"))
register(OpDef("reshape_like", 2, lambda ts, a: TensorType(ts[0].dtype, ts[1].shape),
               vjp=lambda c: [F.reshape_like(c.g, c.inputs[0]), None], linear=True,
               jvp=R.linear_jvp(0), batch=R.reshape_like,
               doc="reshape a to b's shape (known at run time)"))


# -- transpose -----------------------------------------------------------------------------
def _transpose_infer(types, attrs):
    (t,) = types
    axes = attrs["axes"]
    if axes is None:
        return TensorType(t.dtype, t.shape[::-1])
    if sorted(a % max(t.ndim, 1) for a in axes) != list(range(t.ndim)):
        raise ShapeError(f"transpose axes {axes} are not a permutation of {t.ndim} axes")
    return TensorType(t.dtype, tuple(t.shape[a] for a in axes))


def _transpose_vjp(c):
    axes = c.attrs["axes"]
    n = c.inputs[0].ndim
    if axes is None:
        return [F.transpose(c.g)]
    inv = [0] * n
    for i, a in enumerate(axes):
        inv[a % n] = i
    return [F.transpose(c.g, inv)]


register(OpDef("transpose", 1, _transpose_infer, attrs={"axes": None}, vjp=_transpose_vjp,
               linear=True, jvp=R.linear_jvp(0), batch=R.transpose, doc="permute axes (default: reverse them)"))


# -- adding and removing unit axes ------------------------------------------------------------
def _expand_infer(types, attrs):
    (t,) = types
    axes = normalize_axis(attrs["axis"], t.ndim + len(attrs["axis"]))
    shape = list(t.shape)
    for a in axes:
        shape.insert(a, 1)
    return TensorType(t.dtype, shape)


def _squeeze_infer(types, attrs):
    (t,) = types
    axes = normalize_axis(attrs["axis"], t.ndim)
    for a in axes:
        if t.shape[a] not in (1, None):
            raise ShapeError(f"cannot squeeze axis {a} of size {t.shape[a]}")
    return TensorType(t.dtype, tuple(d for i, d in enumerate(t.shape) if i not in axes))


register(OpDef("expand_dims", 1, _expand_infer, attrs={"axis": REQUIRED}, linear=True,
               jvp=R.linear_jvp(0), batch=R.expand_dims,
               vjp=lambda c: [F.squeeze(c.g, c.attrs["axis"])
                              if all(a >= 0 for a in c.attrs["axis"])
                              else F.reshape_like(c.g, c.inputs[0])],
               doc="insert axes of size 1"))
register(OpDef("squeeze", 1, _squeeze_infer, attrs={"axis": REQUIRED}, linear=True,
               jvp=R.linear_jvp(0), batch=R.squeeze,
               vjp=lambda c: [F.reshape_like(c.g, c.inputs[0])],
               doc="remove axes of size 1"))


# -- broadcasting ------------------------------------------------------------------------------
def _broadcast_to_infer(types, attrs):
    (t,) = types
    shape = attrs["shape"]
    if any(d is None or d < 0 for d in shape):
        raise ShapeError(f"broadcast_to needs a fully known target shape, got {shape}")
    # Each of x's dims (aligned right) must be 1 or the target's; an unknown one may be either,
    # so it is checked when the function runs (NumPy refuses it there).
    lead = len(shape) - t.ndim
    if lead < 0 or any(d not in (None, 1, shape[lead + i]) for i, d in enumerate(t.shape)):
        raise ShapeError(f"cannot broadcast {fmt_shape(t.shape)} to {fmt_shape(shape)}")
    return TensorType(t.dtype, tuple(shape))


register(OpDef("broadcast_to", 1, _broadcast_to_infer, attrs={"shape": REQUIRED}, linear=True,
               jvp=R.linear_jvp(0), batch=R.broadcast_to,
               vjp=lambda c: [F.unbroadcast(c.g, c.inputs[0])],
               doc="view x with a larger shape (NumPy broadcasting)"))


def _broadcast_like_infer(types, attrs):
    a, b = types
    shape = broadcast_shapes(a.shape, b.shape)
    if len(shape) != b.ndim:
        raise ShapeError(f"cannot broadcast {fmt_shape(a.shape)} to {fmt_shape(b.shape)}")
    return TensorType(a.dtype, b.shape if None in shape else shape)


register(OpDef("broadcast_like", 2, _broadcast_like_infer, linear=True,
               jvp=R.linear_jvp(0), batch=R.broadcast_like,
               vjp=lambda c: [F.unbroadcast(c.g, c.inputs[0]), None],
               doc="broadcast a to b's shape (known at run time)"))


def _sum_like_infer(types, attrs):
    g, x = types
    if g.ndim < x.ndim:
        raise ShapeError(f"cannot sum {fmt_shape(g.shape)} down to {fmt_shape(x.shape)}")
    broadcast_shapes(g.shape, x.shape)  # raises if x could not have been broadcast to g
    gs = g.shape[g.ndim - x.ndim:]
    return TensorType(g.dtype, tuple(1 if gd == 1 else xd for xd, gd in zip(x.shape, gs)))


register(OpDef("sum_like", 2, _sum_like_infer, linear=True,
               jvp=R.linear_jvp(0), batch=R.sum_like,
               vjp=lambda c: [F.broadcast_like(c.g, c.inputs[0]), None],
               doc="sum a down to b's shape (known at run time): undo broadcasting"))


# -- slicing -----------------------------------------------------------------------------------
def _index_infer(types, attrs):
    t = types[0]
    index = attrs["index"]
    shape, dim = [], 0
    n_real = sum(1 for it in index if it[0] in ("int", "slice"))
    if n_real > t.ndim:
        raise ShapeError(f"too many indices ({n_real}) for a tensor with {t.ndim} dimensions")
    for it in index:
        kind = it[0]
        if kind == "newaxis":
            shape.append(1)
            continue
        if kind == "ellipsis":
            take = t.ndim - n_real
            shape.extend(t.shape[dim:dim + take])
            dim += take
            continue
        size = t.shape[dim]
        if kind == "int":
            if size is not None and not -size <= it[1] < size:
                raise ShapeError(f"index {it[1]} is out of bounds for axis {dim} with size {size}")
        else:
            _, start, stop, step = it
            if step == 0:
                raise ShapeError("slice step cannot be zero")
            shape.append(None if size is None else len(range(*slice(start, stop, step).indices(size))))
        dim += 1
    shape.extend(t.shape[dim:])
    return TensorType(t.dtype, tuple(shape))


register(OpDef("getitem", 1, _index_infer, attrs={"index": REQUIRED}, linear=True,
               jvp=R.linear_jvp(0), batch=R.getitem,
               vjp=lambda c: [F.apply("getitem_grad", [c.inputs[0], c.g], index=c.attrs["index"])],
               doc="x[index]: basic slicing and integer indexing"))
register(OpDef("getitem_grad", 2, _same_type_as(0), attrs={"index": REQUIRED}, linear=True,
               jvp=R.linear_jvp(1), batch=R.getitem_grad,
               vjp=lambda c: [None, F.apply("getitem", [c.g], index=c.attrs["index"])],
               doc="zeros shaped like x with g written at x[index] (gradient of getitem)"))


# -- concatenate / take ---------------------------------------------------------------------
def _concat_infer(types, attrs):
    first = types[0]
    axis = normalize_axis(attrs["axis"], first.ndim)[0]
    total = 0
    for t in types:
        if t.ndim != first.ndim:
            raise ShapeError("concatenate needs operands with the same number of dimensions, got "
                             + ", ".join(fmt_shape(t.shape) for t in types))
        for i, (d, e) in enumerate(zip(t.shape, first.shape)):
            if i != axis and d is not None and e is not None and d != e:
                raise ShapeError("concatenate operands differ off the axis: "
                                 + ", ".join(fmt_shape(t.shape) for t in types))
        total = None if total is None or t.shape[axis] is None else total + t.shape[axis]
    shape = list(broadcast_shapes(*[t.shape[:axis] + (1,) + t.shape[axis + 1:] for t in types]))
    shape[axis] = total
    from ..ir.types import result_dtype
    return TensorType(result_dtype(*[t.dtype for t in types]), shape)


def _concat_vjp(c):
    n = len(c.inputs)
    return [F.apply("concat_grad", [c.g] + list(c.inputs), axis=c.attrs["axis"], index=i)
            for i in range(n)]


def _concat_jvp(c):
    return F.concatenate([t if t is not None else F.zeros_like(x)
                          for x, t in zip(c.inputs, c.tangents)], c.attrs["axis"])


def _concat_grad_vjp(c):
    parts = [F.zeros_like(x) for x in c.inputs[1:]]
    parts[c.attrs["index"]] = c.g
    return [F.concatenate(parts, c.attrs["axis"])] + [None] * (len(c.inputs) - 1)


register(OpDef("concatenate", None, _concat_infer, attrs={"axis": 0}, vjp=_concat_vjp,
               linear=True, jvp=_concat_jvp, batch=R.concatenate, doc="join tensors along an existing axis"))
register(OpDef("concat_grad", None,
               lambda ts, a: TensorType(ts[0].dtype, ts[1 + a["index"]].shape),
               attrs={"axis": 0, "index": REQUIRED}, vjp=_concat_grad_vjp, linear=True,
               jvp=R.linear_jvp(0), batch=R.concat_grad,
               doc="the part of g that belongs to operand `index` of a concatenate"))


def _take_infer(types, attrs):
    x, idx = types[0], types[1]
    if idx.dtype not in ("int64", "int32", "int16", "int8", "uint8", "uint16", "uint32"):
        raise ShapeError(f"take needs integer indices, got {idx.short()}")
    if attrs["axis"] is None:
        return TensorType(x.dtype, idx.shape)
    ax = normalize_axis(attrs["axis"], x.ndim)[0]
    return TensorType(x.dtype, x.shape[:ax] + idx.shape + x.shape[ax + 1:])


register(OpDef("take", 2, _take_infer, attrs={"axis": None}, linear=True,
               jvp=R.linear_jvp(0), batch=R.take,
               vjp=lambda c: [F.apply("take_grad", [c.inputs[0], c.inputs[1], c.g],
                                      axis=c.attrs["axis"]), None],
               doc="elements of x at integer indices along axis (flattened if axis=None)"))
register(OpDef("take_grad", 3, _same_type_as(0), attrs={"axis": None}, linear=True,
               jvp=R.linear_jvp(2), batch=R.take_grad,
               vjp=lambda c: [None, None, F.take(c.g, c.inputs[1], c.attrs["axis"])],
               doc="zeros shaped like x with g added at the taken indices (gradient of take)"))
