"""Elementwise ops: unary math, binary arithmetic and comparisons, where, clip, cast.

Each differentiable elementwise op declares its partial derivatives d out / d operand_i
(graph expressions of the operands and the output). Both rules come from them:
vjp: cotangent_i = g * partial_i (the engine sums it back to the operand's shape);
jvp: tangent = sum_i tangent_i * partial_i. Batching is shared by all elementwise ops.
"""
from __future__ import annotations

import numpy as np

from ..ir.types import TensorType
from . import api as F
from .infer import elementwise, float_unary
from .registry import OpDef, register


def _times(t, p):
    # Partials of 1 and -1 (add, sub, neg) need no multiply node.
    if isinstance(p, float) and p in (1.0, -1.0):
        return t if p == 1.0 else -t
    return t * p


def _rules(partials):
    """vjp and jvp rules of an elementwise op from its partials(ctx) -> [expr or None]."""
    def vjp(c):
        return [None if p is None else _times(c.g, p) for p in partials(c)]

    def jvp(c):
        terms = [_times(t, p) for t, p in zip(c.tangents, partials(c))
                 if t is not None and p is not None]
        if not terms:
            return None
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total
    return vjp, jvp


def _unary(name, np_fn, partial, doc, infer=None, differentiable=True, linear=False):
    vjp, jvp = _rules(lambda c: [partial(c.inputs[0], c.out)]) if partial else (None, None)
    register(OpDef(name, 1, infer or elementwise(np_fn), vjp=vjp, jvp=jvp, elementwise=True,
                   differentiable=differentiable, linear=linear, doc=doc))


def _binary(name, np_fn, partials, doc, commutative=False, differentiable=True, linear=False):
    vjp, jvp = _rules(lambda c: partials(*c.inputs, c.out)) if partials else (None, None)
    register(OpDef(name, 2, elementwise(np_fn), vjp=vjp, jvp=jvp, elementwise=True,
                   commutative=commutative, differentiable=differentiable, linear=linear, doc=doc))


def _relu_np(x):
    return np.maximum(x, 0)  # the kernel's math, so infer gets its dtype (bool -> int64)


def _same_type(types, attrs):
    return types[0]


def _zero(x, y):
    return None  # piecewise constant: derivative zero wherever it exists


# Unary ops: partial(x, y) = dy/dx.
_unary("neg", np.negative, lambda x, y: -1.0, "-x", linear=True)
_unary("exp", np.exp, lambda x, y: y, "e**x")
_unary("log", np.log, lambda x, y: 1.0 / x, "natural logarithm")
_unary("log1p", np.log1p, lambda x, y: 1.0 / (1 + x), "log(1 + x), exact for small x")
_unary("expm1", np.expm1, lambda x, y: y + 1, "exp(x) - 1, exact for small x")
_unary("sqrt", np.sqrt, lambda x, y: 0.5 / y, "square root")
_unary("square", np.square, lambda x, y: 2 * x, "x * x")
_unary("abs", np.absolute, lambda x, y: F.sign(x), "|x|")
_unary("sign", np.sign, _zero, "-1, 0 or 1 (gradient zero)")
_unary("tanh", np.tanh, lambda x, y: 1 - F.square(y), "hyperbolic tangent")
_unary("sigmoid", None, lambda x, y: y * (1 - y), "1 / (1 + exp(-x)), stable",
       infer=float_unary)
_unary("relu", _relu_np, lambda x, y: y > 0, "max(x, 0)")
_unary("softplus", None, lambda x, y: F.sigmoid(x), "log(1 + exp(x)), stable",
       infer=float_unary)
_unary("sin", np.sin, lambda x, y: F.cos(x), "sine")
_unary("cos", np.cos, lambda x, y: -F.sin(x), "cosine")
# Rounding is piecewise constant: gradient zero wherever it exists (NumPy's dtypes: ints stay
# ints, halves round to even).
_unary("floor", np.floor, _zero, "largest integer <= x (gradient zero)")
_unary("ceil", np.ceil, _zero, "smallest integer >= x (gradient zero)")
_unary("round", np.round, _zero, "nearest integer, halves to even (gradient zero)")
_unary("xlogx", None, lambda x, y: F.log(x) + 1, "x * log(x), 0 at x = 0", infer=float_unary)
# Same type as x for every dtype, bool included (np.positive has no bool loop).
_unary("zeros_like", None, _zero, "zeros of x's shape and dtype",
       infer=_same_type, differentiable=False)
_unary("ones_like", None, _zero, "ones of x's shape and dtype",
       infer=_same_type, differentiable=False)


def _cast_infer(types, attrs):
    return TensorType(np.dtype(attrs["dtype"]).name, types[0].shape)


def _cast_vjp(c):
    x = c.inputs[0]
    return [F.cast(c.g, x.dtype) if np.issubdtype(np.dtype(x.dtype), np.floating) else None]


register(OpDef("cast", 1, _cast_infer, vjp=_cast_vjp,
               jvp=lambda c: F.cast(c.tangents[0], c.out.dtype), attrs={"dtype": "float64"},
               elementwise=True, linear=True, doc="convert to another dtype"))

# Binary ops (NumPy broadcasting; the autodiff engine sums cotangents back to each shape).
# partials(a, b, y) = [dy/da, dy/db].
_binary("add", np.add, lambda a, b, y: [1.0, 1.0], "a + b", commutative=True, linear=True)
_binary("sub", np.subtract, lambda a, b, y: [1.0, -1.0], "a - b", linear=True)
_binary("mul", np.multiply, lambda a, b, y: [b, a], "a * b", commutative=True)
_binary("div", np.true_divide, lambda a, b, y: [1.0 / b, -y / b], "a / b (true division)")
# d(a**b)/da = b * a**(b-1);  d(a**b)/db = a**b * log(a)
def _pow_partials(a, b, y):
    # A constant exponent (x ** 2, x ** 3) gives b * a ** (b - 1) with b - 1 worked out now,
    # so the backward graph reads 2 * x rather than 2 * x ** (2 - 1).
    d = b.node
    if d["op"] == "const" and d["value"].ndim == 0:
        c = d["value"].item()
        if c == 2:
            return [2 * a, y * F.log(a)]
        return [b * a ** F.constant(c - 1, dtype=b.dtype, graph=a.graph), y * F.log(a)]
    return [b * a ** (b - 1), y * F.log(a)]


_binary("pow", np.power, _pow_partials, "a ** b")
# NumPy's floor division and remainder (the remainder has the sign of b): a = (a // b) * b
# + a % b, so d(a % b)/db = -(a // b) where a // b is locally constant.
_binary("floor_divide", np.floor_divide, lambda a, b, y: [None, None],
        "a // b, rounded toward -inf (gradient zero)")
_binary("mod", np.remainder, lambda a, b, y: [1.0, -F.floor_divide(a, b)],
        "a % b with the sign of b, as NumPy and Python")
_binary("maximum", np.maximum, lambda a, b, y: [a >= b, a < b],
        "elementwise max (ties send the gradient to a)", commutative=True)
_binary("minimum", np.minimum, lambda a, b, y: [a <= b, a > b],
        "elementwise min (ties send the gradient to a)", commutative=True)
for _name, _fn in [("less", np.less), ("less_equal", np.less_equal), ("greater", np.greater),
                   ("greater_equal", np.greater_equal), ("equal", np.equal),
                   ("not_equal", np.not_equal)]:
    _binary(_name, _fn, None, f"elementwise {_name.replace('_', ' ')} (boolean result)",
            commutative=_name in ("equal", "not_equal"), differentiable=False)


def _where_jvp(c):
    cond, ta, tb = c.inputs[0], c.tangents[1], c.tangents[2]
    a = 0.0 if ta is None else ta
    b = 0.0 if tb is None else tb
    return F.where(cond, a, b) if (ta is not None or tb is not None) else None


# where selects rather than multiplies, so an inf/nan cotangent on the unselected side
# never leaks through as 0 * inf.
register(OpDef("where", 3, elementwise(np.where), elementwise=True,
               vjp=lambda c: [None, F.where(c.inputs[0], c.g, 0), F.where(c.inputs[0], 0, c.g)],
               jvp=_where_jvp, doc="where(cond, a, b): a where cond is true, else b"))


def _clip_partials(c):
    x, lo, hi = c.inputs
    return [(x >= lo) * (x <= hi), x < lo, x > hi]


_clip_vjp, _clip_jvp = _rules(_clip_partials)
register(OpDef("clip", 3, elementwise(np.clip), vjp=_clip_vjp, jvp=_clip_jvp, elementwise=True,
               doc="clip(x, lo, hi): x limited to [lo, hi]"))
