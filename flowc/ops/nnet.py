"""Neural-network ops with their own stable kernels: softmax and log_softmax."""
from __future__ import annotations

from ..ir.types import TensorType, normalize_axis
from . import api as F
from .build import apply
from .infer import float_unary
from .registry import OpDef, register


def _softmax_infer(types, attrs):
    normalize_axis(attrs["axis"], types[0].ndim)
    return float_unary(types, attrs)


def _softmax_vjp(c):
    y, ax = c.out, c.attrs["axis"]
    return [y * (c.g - F.sum(c.g * y, ax, keepdims=True))]


def _log_softmax_vjp(c):
    ax = c.attrs["axis"]
    return [c.g - F.exp(c.out) * F.sum(c.g, ax, keepdims=True)]


def _softmax_jvp(c):
    y, t, ax = c.out, c.tangents[0], c.attrs["axis"]
    return y * (t - F.sum(t * y, ax, keepdims=True))


def _log_softmax_jvp(c):
    t, ax = c.tangents[0], c.attrs["axis"]
    return t - F.sum(F.exp(c.out) * t, ax, keepdims=True)


def _batch(c):
    return apply(c.op, c.inputs, axis=c.attrs["axis"] + 1)


register(OpDef("softmax", 1, _softmax_infer, attrs={"axis": -1}, vjp=_softmax_vjp,
               jvp=_softmax_jvp, batch=_batch, doc="exp(x) / sum(exp(x)) along axis, stable"))
register(OpDef("log_softmax", 1, _softmax_infer, attrs={"axis": -1}, vjp=_log_softmax_vjp,
               jvp=_log_softmax_jvp, batch=_batch, doc="x - logsumexp(x) along axis, stable"))
