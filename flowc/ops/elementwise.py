"""Elementwise ops: unary math, binary arithmetic and comparisons, where, clip, cast."""
from __future__ import annotations

import numpy as np

from ..ir.types import TensorType
from . import api as F
from .infer import elementwise, float_unary
from .registry import OpDef, register


def _unary(name, np_fn, vjp, doc, infer=None, differentiable=True, linear=False):
    register(OpDef(name, 1, infer or elementwise(np_fn), vjp=vjp, elementwise=True,
                   differentiable=differentiable, linear=linear, doc=doc))


def _binary(name, np_fn, vjp, doc, commutative=False, differentiable=True, linear=False):
    register(OpDef(name, 2, elementwise(np_fn), vjp=vjp, elementwise=True,
                   commutative=commutative, differentiable=differentiable, linear=linear, doc=doc))


def _relu_np(x):
    return np.maximum(x, 0)  # the kernel's math, so infer gets its dtype (bool -> int64)


def _same_type(types, attrs):
    return types[0]


# Unary ops. In each rule x is the operand, y the output, g the output's cotangent.
_unary("neg", np.negative, lambda c: [-c.g], "-x", linear=True)
_unary("exp", np.exp, lambda c: [c.g * c.out], "e**x")
_unary("log", np.log, lambda c: [c.g / c.inputs[0]], "natural logarithm")
_unary("log1p", np.log1p, lambda c: [c.g / (1 + c.inputs[0])], "log(1 + x), exact for small x")
_unary("expm1", np.expm1, lambda c: [c.g * (c.out + 1)], "exp(x) - 1, exact for small x")
_unary("sqrt", np.sqrt, lambda c: [c.g * 0.5 / c.out], "square root")
_unary("square", np.square, lambda c: [c.g * 2 * c.inputs[0]], "x * x")
_unary("abs", np.absolute, lambda c: [c.g * F.sign(c.inputs[0])], "|x|")
_unary("sign", np.sign, lambda c: [None], "-1, 0 or 1 (gradient zero)")
_unary("tanh", np.tanh, lambda c: [c.g * (1 - F.square(c.out))], "hyperbolic tangent")
_unary("sigmoid", None, lambda c: [c.g * c.out * (1 - c.out)], "1 / (1 + exp(-x)), stable",
       infer=float_unary)
_unary("relu", _relu_np, lambda c: [c.g * (c.inputs[0] > 0)], "max(x, 0)")
_unary("softplus", None, lambda c: [c.g * F.sigmoid(c.inputs[0])], "log(1 + exp(x)), stable",
       infer=float_unary)
_unary("sin", np.sin, lambda c: [c.g * F.cos(c.inputs[0])], "sine")
_unary("cos", np.cos, lambda c: [-c.g * F.sin(c.inputs[0])], "cosine")
# Same type as x for every dtype, bool included (np.positive has no bool loop).
_unary("zeros_like", None, lambda c: [None], "zeros of x's shape and dtype",
       infer=_same_type, differentiable=False)
_unary("ones_like", None, lambda c: [None], "ones of x's shape and dtype",
       infer=_same_type, differentiable=False)


def _cast_infer(types, attrs):
    return TensorType(np.dtype(attrs["dtype"]).name, types[0].shape)


def _cast_vjp(c):
    x = c.inputs[0]
    return [F.cast(c.g, x.dtype) if np.issubdtype(np.dtype(x.dtype), np.floating) else None]


register(OpDef("cast", 1, _cast_infer, vjp=_cast_vjp, attrs={"dtype": "float64"},
               elementwise=True, linear=True, doc="convert to another dtype"))

# Binary ops (NumPy broadcasting; the autodiff engine sums cotangents back to each shape).
_binary("add", np.add, lambda c: [c.g, c.g], "a + b", commutative=True, linear=True)
_binary("sub", np.subtract, lambda c: [c.g, -c.g], "a - b", linear=True)
_binary("mul", np.multiply, lambda c: [c.g * c.inputs[1], c.g * c.inputs[0]], "a * b",
        commutative=True)
_binary("div", np.true_divide, lambda c: [c.g / c.inputs[1], -c.g * c.out / c.inputs[1]],
        "a / b (true division)")


def _pow_vjp(c):
    a, b = c.inputs
    # d(a**b)/da = b * a**(b-1);  d(a**b)/db = a**b * log(a)
    return [c.g * b * a ** (b - 1), c.g * c.out * F.log(a)]


_binary("pow", np.power, _pow_vjp, "a ** b")
_binary("maximum", np.maximum,
        lambda c: [c.g * (c.inputs[0] >= c.inputs[1]), c.g * (c.inputs[0] < c.inputs[1])],
        "elementwise max (ties send the gradient to a)", commutative=True)
_binary("minimum", np.minimum,
        lambda c: [c.g * (c.inputs[0] <= c.inputs[1]), c.g * (c.inputs[0] > c.inputs[1])],
        "elementwise min (ties send the gradient to a)", commutative=True)
for _name, _fn in [("less", np.less), ("less_equal", np.less_equal), ("greater", np.greater),
                   ("greater_equal", np.greater_equal), ("equal", np.equal),
                   ("not_equal", np.not_equal)]:
    _binary(_name, _fn, None, f"elementwise {_name.replace('_', ' ')} (boolean result)",
            commutative=_name in ("equal", "not_equal"), differentiable=False)


def _where_infer(types, attrs):
    return elementwise(np.where)(types, attrs)


register(OpDef("where", 3, _where_infer, elementwise=True,
               vjp=lambda c: [None, F.where(c.inputs[0], c.g, 0), F.where(c.inputs[0], 0, c.g)],
               doc="where(cond, a, b): a where cond is true, else b"))


def _clip_infer(types, attrs):
    return elementwise(np.clip)(types, attrs)


def _clip_vjp(c):
    x, lo, hi = c.inputs
    inside = (x >= lo) * (x <= hi)
    return [c.g * inside, c.g * (x < lo), c.g * (x > hi)]


register(OpDef("clip", 3, _clip_infer, vjp=_clip_vjp, elementwise=True,
               doc="clip(x, lo, hi): x limited to [lo, hi]"))
