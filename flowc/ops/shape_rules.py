"""Forward-mode and batching rules of the data-movement ops in shape.py."""
from __future__ import annotations

import math

from ..ir.errors import ShapeError
from . import api as F
from .batchutil import align, batched_operands, materialize, rows, shift_axes, static_size
from .build import apply

FULL = ("slice", None, None, None)


def linear_jvp(*ports):
    """jvp of an op linear in the operands at `ports`: the op applied to their tangents
    (zeros where an operand has none); the other operands (shapes, indices) stay as they are."""
    def jvp(c):
        args = []
        for i, (x, t) in enumerate(zip(c.inputs, c.tangents)):
            args.append((t if t is not None else F.zeros_like(x)) if i in ports else x)
        return apply(c.out.op, args, **c.attrs)
    return jvp


def _b(c):
    return static_size(c, c.op) if c.size is not None else -1


def _lead(c, x, shape):
    """The batch size of a reshape of batched x to (B,) + shape: -1 when it is unknown, except
    beside an empty example, where NumPy cannot infer a -1: then x's leading size as a value
    (fuzz seed 1304: the Jacobian of a size-0 tensor through a reshape's gradient)."""
    if c.size is None and 0 in shape:
        return x.shape[0]
    return _b(c)


def reshape(c):
    # The unbatched result's shape where it is known: a -1 is ambiguous next to an empty
    # batch axis (the Jacobian of a size-0 tensor).
    shape = c.out.type.shape if None not in c.out.type.shape else c.attrs["shape"]
    if -1 in shape and c.size is None:
        # The batch size as a value (a Jacobian's rows over an input of unknown size), and
        # the -1 spelled out from one example's size: NumPy cannot infer a -1 beside an
        # empty axis (fuzz seed 1301: a Hessian of a size-0 tensor).
        x = c.inputs[0]
        known = math.prod(d for d in shape if d != -1)
        if known:
            per = 1
            for d in x.shape[1:]:
                per = per * d
            shape = tuple(per // known if d == -1 else d for d in shape)
        return F.reshape(x, (x.shape[0],) + tuple(shape))
    x = c.inputs[0]
    return F.reshape(x, (c.size if -1 in shape else _lead(c, x, shape),) + tuple(shape))


def reshape_like(c):
    (a, b), (ba, bb) = c.inputs, c.batched
    if bb:
        return F.reshape_like(a if ba else materialize(a, b), b)
    if None not in b.type.shape:
        return F.reshape(a, (_lead(c, a, b.type.shape),) + b.type.shape)
    return F.reshape_like(a, materialize(b, a))


def transpose(c):
    x = c.inputs[0]
    axes = c.attrs["axes"]
    n = x.ndim - 1
    perm = tuple(range(n, 0, -1)) if axes is None else tuple(a + 1 for a in axes)
    return F.transpose(x, (0,) + perm)


def expand_dims(c):
    return apply("expand_dims", c.inputs, axis=shift_axes(c.attrs["axis"], 0))


def squeeze(c):
    return apply("squeeze", c.inputs, axis=shift_axes(c.attrs["axis"], 0))


def broadcast_to(c):
    shape = (static_size(c, "broadcast_to"),) + tuple(c.attrs["shape"])
    return F.broadcast_to(align(c.inputs[0], len(shape)), shape)


def broadcast_like(c):
    (a, b), (ba, bb) = c.inputs, c.batched
    if not ba:
        return F.broadcast_like(a, b)  # right-aligned against the batched b
    b = b if bb else materialize(b, a)
    return F.broadcast_like(align(a, b.ndim), b)


def sum_like(c):
    g, x = batched_operands(c)
    extra = g.ndim - x.ndim  # leading axes of g that x never had (after the batch axis)
    r = F.sum_like(g, align(x, g.ndim))
    return F.squeeze(r, tuple(range(1, 1 + extra))) if extra else r


def getitem(c):
    return apply("getitem", c.inputs, index=(FULL,) + tuple(c.attrs["index"]))


def getitem_grad(c):
    return apply("getitem_grad", batched_operands(c), index=(FULL,) + tuple(c.attrs["index"]))


def concatenate(c):
    return apply("concatenate", batched_operands(c), axis=c.attrs["axis"] + 1)


def concat_grad(c):
    return apply("concat_grad", batched_operands(c), axis=c.attrs["axis"] + 1,
                 index=c.attrs["index"])


def take(c):
    (x, idx), (bx, bi) = c.inputs, c.batched
    if bi:
        raise ShapeError("batching take over its indices is not supported")
    if c.attrs["axis"] is None:  # the batch size as a value where it is not known
        return F.take(rows(x, c.size if c.size is not None else x.shape[0]), idx, 1)
    return F.take(x, idx, c.attrs["axis"] + 1)


def take_grad(c):
    (x, idx, g), flags = c.inputs, c.batched
    if flags[1]:
        raise ShapeError("batching take_grad over its indices is not supported")
    ref = x if flags[0] else g
    x = x if flags[0] else materialize(x, ref)
    g = g if flags[2] else materialize(g, ref)
    if c.attrs["axis"] is not None:
        return apply("take_grad", [x, idx, g], axis=c.attrs["axis"] + 1)
    n = c.size if c.size is not None else x.shape[0]
    flat = apply("take_grad", [rows(x, n), F.reshape(idx, (-1,)), rows(g, n)], axis=1)
    return F.reshape_like(flat, x)

