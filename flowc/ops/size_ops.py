"""Shapes as graph values: `shape(x)` (the int64 vector), `dim(x, axis)` (one int64 scalar),
and the ops whose sizes are read at run time from integer scalar operands: `reshape_dyn`,
`alloc` (a value broadcast to a shape) and `arange_dyn`.

A size entry in a `shape` attr is an int (known when the graph is built), "arg" (the next
size operand, read at run time), -1 (reshape: inferred) or ("dim", k) (reshape: x's own
dim k, so `x.reshape((x.shape[0], -1))` keeps a known -1 known).
"""
from __future__ import annotations

import math

from ..ir.errors import ShapeError
from ..ir.types import TensorType, broadcast_shapes, fmt_shape
from . import api as F
from .build import apply
from .registry import REQUIRED, OpDef, register
from .shape_rules import linear_jvp

ARG = "arg"
INT_KINDS = "iu"


def _is_dim_ref(d):
    return isinstance(d, tuple) and len(d) == 2 and d[0] == "dim"


def check_sizes(types, n_first):
    """Every operand from n_first on is an integer scalar (a run-time size)."""
    for t in types[n_first:]:
        if t.ndim != 0 or t.dtype[0] not in ("i", "u"):
            raise ShapeError(f"sizes must be integer scalars, got {t.short()}")


def _count_args(shape, n):
    k = sum(1 for d in shape if d == ARG)
    if k != n:
        raise ShapeError(f"the shape {shape} names {k} size operand(s), {n} came")


# -- shape and dim ------------------------------------------------------------------------
def _shape_infer(types, attrs):
    return TensorType("int64", (types[0].ndim,))


def _dim_infer(types, attrs):
    (x,) = types
    if not 0 <= attrs["axis"] < x.ndim:
        raise ShapeError(f"axis {attrs['axis']} is out of range for {x.ndim} dimensions")
    return TensorType("int64", ())


def _shape_batch(c):
    return F.getitem(apply("shape", c.inputs), slice(1, None)), False


register(OpDef("shape", 1, _shape_infer, differentiable=False, batch=_shape_batch,
               doc="x's shape as an int64 vector (read at run time; no copy of x)"))
register(OpDef("dim", 1, _dim_infer, attrs={"axis": REQUIRED}, differentiable=False,
               batch=lambda c: (apply("dim", c.inputs, axis=c.attrs["axis"] + 1), False),
               doc="x.shape[axis] as an int64 scalar (read at run time; no copy of x)"))


# -- reshape with run-time sizes ----------------------------------------------------------------
def _reshape_infer(types, attrs):
    x, shape = types[0], attrs["shape"]
    check_sizes(types, 1)
    _count_args(shape, len(types) - 1)
    if sum(1 for d in shape if d == -1) > 1 or any(type(d) is int and d < -1 for d in shape):
        raise ShapeError(f"reshape target {shape} may hold at most one -1 and no other negatives")
    refs = [d[1] for d in shape if _is_dim_ref(d)]
    if any(not 0 <= k < x.ndim for k in refs) or len(set(refs)) != len(refs):
        raise ShapeError(f"reshape target {shape} refers to dims of x {fmt_shape(x.shape)} "
                         "that do not exist or twice")
    out = [d if type(d) is int else x.shape[d[1]] if _is_dim_ref(d) else None for d in shape]
    if -1 in out:
        # -1 is what is left of x's size once the named dims are set aside: known when the
        # rest of x is known and no entry is read at run time.
        rest = [d for k, d in enumerate(x.shape) if k not in refs]
        known = [d for d in shape if type(d) is int and d != -1]
        left = None
        if None not in rest and ARG not in shape:
            size, part = math.prod(rest), math.prod(known)
            if part == 0 or size % part:
                raise ShapeError(f"cannot reshape {fmt_shape(x.shape)} into {shape}")
            left = size // part
        out[out.index(-1)] = left
    return TensorType(x.dtype, tuple(out))


def _reshape_batch(c):
    x, sizes = c.inputs[0], c.inputs[1:]
    if any(c.batched[1:]):
        raise ShapeError("batching reshape over its sizes is not supported (ragged results)")
    lead = c.size if c.size is not None else ARG
    ops = [] if lead != ARG else [apply("dim", [x], axis=0)]
    shape = tuple(("dim", d[1] + 1) if _is_dim_ref(d) else d for d in c.attrs["shape"])
    if -1 in shape and c.size == 0:
        # NumPy cannot infer a -1 beside an empty batch (a Hessian of a size-0 tensor, fuzz
        # seed 1301): spell it out as one example's size over the other entries.
        per, part = 1, 1
        for d in x.shape[1:]:
            per = per * d
        it = iter(sizes)
        for d in shape:
            if d == ARG:
                part = part * next(it)
            elif _is_dim_ref(d):
                part = part * x.shape[d[1]]
            elif d != -1:
                part = part * d
        k = shape.index(-1)
        shape = shape[:k] + (ARG,) + shape[k + 1:]
        n_before = sum(1 for d in shape[:k] if d == ARG)
        sizes = list(sizes[:n_before]) + [F.cast(per // F.maximum(part, 1), "int64")] + \
            list(sizes[n_before:])
    return apply("reshape_dyn", [x] + ops + list(sizes), shape=(lead,) + shape)


register(OpDef("reshape_dyn", None, _reshape_infer, attrs={"shape": REQUIRED}, linear=True,
               vjp=lambda c: [F.reshape_like(c.g, c.inputs[0])] + [None] * (len(c.inputs) - 1),
               jvp=linear_jvp(0), batch=_reshape_batch,
               doc="reshape whose sizes are run-time integer scalars (x.shape[0], n)"))


# -- alloc: a value broadcast to a shape with run-time sizes ----------------------------------
def _alloc_infer(types, attrs):
    v, shape = types[0], attrs["shape"]
    check_sizes(types, 1)
    _count_args(shape, len(types) - 1)
    if any(type(d) is int and d < 0 for d in shape):
        raise ShapeError(f"negative dimensions are not allowed, got {shape}")
    out = tuple(d if type(d) is int else None for d in shape)
    if v.ndim > len(out):
        raise ShapeError(f"cannot broadcast a value of shape {fmt_shape(v.shape)} to "
                         f"{len(out)} dimensions")
    broadcast_shapes(v.shape, out, what="alloc's value and shape")  # known sizes must agree
    # A size read at run time next to a known value dim other than 1 must be that dim.
    vs = (None,) * (len(out) - v.ndim) + tuple(v.shape)
    return TensorType(v.dtype, tuple(o if o is not None or d in (None, 1) else d
                                     for o, d in zip(out, vs)))


def _alloc_vjp(c):
    return [F.sum_like(c.g, c.inputs[0])] + [None] * (len(c.inputs) - 1)


def _alloc_jvp(c):
    t = c.tangents[0]
    return None if t is None else apply("alloc", [t] + list(c.inputs[1:]), **c.attrs)


def _alloc_batch(c):
    v, sizes = c.inputs[0], c.inputs[1:]
    if any(c.batched[1:]):
        raise ShapeError("batching alloc over its sizes is not supported (ragged results)")
    shape = c.attrs["shape"]
    if v.ndim - 1 < len(shape):  # line the value's axes up behind the batch axis
        v = F.expand_dims(v, tuple(range(1, 1 + len(shape) - (v.ndim - 1))))
    lead = c.size if c.size is not None else ARG
    ops = [] if lead != ARG else [apply("dim", [v], axis=0)]
    return apply("alloc", [v] + ops + list(sizes), shape=(lead,) + tuple(shape))


register(OpDef("alloc", None, _alloc_infer, attrs={"shape": REQUIRED}, linear=True,
               vjp=_alloc_vjp, jvp=_alloc_jvp, batch=_alloc_batch,
               doc="value broadcast to a shape whose sizes may be run-time scalars (a copy)"))


# -- arange with run-time bounds -------------------------------------------------------------------
def _arange_infer(types, attrs):
    for t in types:
        if t.ndim != 0 or t.dtype[0] not in "iuf":
            raise ShapeError(f"arange's start, stop and step must be numeric scalars, got "
                             f"{t.short()}")
    return TensorType(attrs["dtype"], (None,))


def _arange_batch(c):
    raise ShapeError("batching arange over its bounds is not supported (ragged results)")


register(OpDef("arange_dyn", 3, _arange_infer, attrs={"dtype": REQUIRED}, differentiable=False,
               batch=_arange_batch,
               doc="np.arange(start, stop, step) with bounds read at run time"))
