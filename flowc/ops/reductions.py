"""Reductions over axes (sum, mean, max, min, prod, argmax, argmin, logsumexp) and count."""
from __future__ import annotations

import numpy as np

from ..ir.errors import ShapeError
from ..ir.types import TensorType, broadcast_shapes, normalize_axis
from . import api as F
from .infer import probe_dtype, reduced_shape, reduction
from .batchutil import shift_axes, static_size
from .build import apply
from .registry import OpDef, register

AXIS = {"axis": None, "keepdims": False}


def _axes(c):
    return normalize_axis(c.attrs["axis"], c.inputs[0].ndim)


def _spread(c, t):
    """Broadcast a reduced tensor `t` (keepdims or not) back to the operand's shape."""
    x = c.inputs[0]
    if not c.attrs["keepdims"]:
        t = F.expand_dims(t, _axes(c)) if _axes(c) else t
    return F.broadcast_like(t, x)


def _share(c):
    # Ties share the gradient equally, as JAX and PyTorch's amax do.
    x = c.inputs[0]
    mask = F.cast(F.equal(x, _spread(c, c.out)), x.dtype)
    return mask / _spread(c, F.sum(mask, _axes(c), keepdims=c.attrs["keepdims"]))


# Each differentiable reduction has weights w (shaped like x) with d out = sum(w * dx):
# vjp spreads g back and multiplies by w; jvp sums t * w over the reduced axes.
WEIGHTS = {
    "max": _share,
    "min": _share,
    # The product of the others, not prod / x: exact where x has zeros, and its own
    # derivatives are products again (prod_others below), so grad-of-grad stays exact.
    "prod": lambda c: apply("prod_others", [c.inputs[0]], axis=_axes(c)),
    "logsumexp": lambda c: F.exp(c.inputs[0] - _spread(c, c.out)),
}


def _weighted_vjp(c):
    return [_spread(c, c.g) * WEIGHTS[c.out.op](c)]


def _weighted_jvp(c):
    return F.sum(c.tangents[0] * WEIGHTS[c.out.op](c), _axes(c), keepdims=c.attrs["keepdims"])


def _linear_jvp(c):
    return apply(c.out.op, [c.tangents[0]], **c.attrs)


def _batch(c):
    x = c.inputs[0]
    return apply(c.op, [x], axis=shift_axes(c.attrs["axis"], x.ndim - 1),
                 keepdims=c.attrs["keepdims"])


register(OpDef("sum", 1, reduction(np.sum), attrs=AXIS, linear=True, jvp=_linear_jvp,
               batch=_batch, vjp=lambda c: [_spread(c, c.g)], doc="sum over axes"))
register(OpDef("mean", 1, reduction(np.mean), attrs=AXIS, linear=True, jvp=_linear_jvp,
               batch=_batch,
               # Divide the (small) reduced cotangent, then spread it as a view.
               vjp=lambda c: [_spread(c, c.g / F.count(c.inputs[0], _axes(c), c.out.dtype))],
               doc="arithmetic mean over axes"))
register(OpDef("max", 1, reduction(np.max), attrs=AXIS, vjp=_weighted_vjp, jvp=_weighted_jvp,
               batch=_batch, doc="largest element over axes (ties share the gradient)"))
register(OpDef("min", 1, reduction(np.min), attrs=AXIS, vjp=_weighted_vjp, jvp=_weighted_jvp,
               batch=_batch, doc="smallest element over axes (ties share the gradient)"))
register(OpDef("prod", 1, reduction(np.prod), attrs=AXIS, vjp=_weighted_vjp,
               jvp=_weighted_jvp, batch=_batch,
               doc="product over axes"))
register(OpDef("logsumexp", 1, reduction(np.exp), attrs=AXIS, vjp=_weighted_vjp,
               jvp=_weighted_jvp, batch=_batch, doc="log(sum(exp(x))) over axes, stable"))


# prod_others(x, t1..tm, axis): per element, the e1...em coefficient of the product over
# the other elements of its group of (x + e1 t1 + ... + em tm), each e_r squared 0 (see
# runtime/cpu/prod_others.py). Multilinear in the t's, so its derivatives are the same op:
# one more t for x's tangent (or cotangent: the coefficient tensor is symmetric), the
# tangent in t_r's place for t_r's, and the cotangent in t_r's place for t_r's cotangent.
def _others(c, ts):
    return apply("prod_others", [c.inputs[0], *ts], axis=c.attrs["axis"])


def _others_vjp(c):
    ts = c.inputs[1:]
    return [_others(c, [c.g, *ts])] + [_others(c, [c.g, *ts[:r], *ts[r + 1:]])
                                       for r in range(len(ts))]


def _others_jvp(c):
    x_dot, ts = c.tangents[0], c.inputs[1:]
    terms = [] if x_dot is None else [_others(c, [*ts, x_dot])]
    terms += [_others(c, [*ts[:r], u, *ts[r + 1:]])
              for r, u in enumerate(c.tangents[1:]) if u is not None]
    out = None
    for t in terms:
        out = t if out is None else out + t
    return out


def _others_batch(c):
    # Operands share one rank, so an unbatched one broadcasts along a unit batch axis.
    args = [x if b else F.expand_dims(x, (0,)) for x, b in zip(c.inputs, c.batched)]
    return apply("prod_others", args, axis=shift_axes(c.attrs["axis"], c.out.ndim))


def _others_infer(types, attrs):
    x = types[0]
    for t in types[1:]:
        if t.dtype != x.dtype or t.ndim != x.ndim:
            raise ShapeError(f"prod_others takes operands of one dtype and rank; got {x} and "
                             f"{t}")
    shape = broadcast_shapes(*(t.shape for t in types), what="prod_others operands")
    normalize_axis(attrs["axis"], len(shape))
    return TensorType(x.dtype, shape)


register(OpDef("prod_others", None, _others_infer, attrs={"axis": None}, vjp=_others_vjp,
               jvp=_others_jvp, batch=_others_batch,
               doc="per element, the product of the other elements over axes (prod's "
                   "derivative), with its derivative parts as extra operands"))


def _arg_batch(c):
    x = c.inputs[0]
    axis, keep = c.attrs["axis"], c.attrs["keepdims"]
    if axis is not None:
        return apply(c.op, [x], axis=axis + 1, keepdims=keep)
    flat = F.reshape(x, (static_size(c, c.op), -1))
    r = apply(c.op, [flat], axis=1, keepdims=False)
    return F.reshape(r, (static_size(c, c.op),) + (1,) * (x.ndim - 1)) if keep else r


def _arg_infer(types, attrs):
    (t,) = types
    axis = attrs["axis"]
    if axis is not None and not isinstance(axis, int):
        raise ShapeError(f"argmax/argmin take one axis or None, got {axis!r}")
    if axis is None:
        shape = (1,) * t.ndim if attrs["keepdims"] else ()
    else:
        shape = reduced_shape(t.shape, normalize_axis(axis, t.ndim), attrs["keepdims"])
    return TensorType("int64", shape)


register(OpDef("argmax", 1, _arg_infer, attrs=AXIS, differentiable=False, batch=_arg_batch,
               doc="index of the largest element (int64)"))
register(OpDef("argmin", 1, _arg_infer, attrs=AXIS, differentiable=False, batch=_arg_batch,
               doc="index of the smallest element (int64)"))


def _count_infer(types, attrs):
    normalize_axis(attrs["axis"], types[0].ndim)
    return TensorType(attrs["dtype"], ())


register(OpDef("count", 1, _count_infer, attrs={"axis": None, "dtype": "float64"},
               differentiable=False, batch=lambda c: (apply("count", c.inputs, dtype=c.attrs[
                   "dtype"], axis=shift_axes(c.attrs["axis"], c.inputs[0].ndim - 1)), False),
               doc="number of elements of x over axes (a scalar; shapes known at run time)"))
