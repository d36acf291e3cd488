"""Fused ops made by the fuse pass: an elementwise expression tree, optionally reduced.

expr is a nested tuple (hashable, JSON-able):
  ("arg", i)                       operand i of the fused node
  ("const", value, dtype)          a scalar constant
  (op, attrs_items, (child, ...))  an elementwise op of the registry applied to children
"""
from __future__ import annotations

from ..ir.types import TensorType, normalize_axis
from .infer import reduced_shape
from .registry import REQUIRED, OpDef, get_op, register


def expr_type(expr, types):
    """The TensorType an expression computes from its operands' types."""
    kind = expr[0]
    if kind == "arg":
        return types[expr[1]]
    if kind == "const":
        return TensorType(expr[2], ())
    op, attrs, children = expr
    return get_op(op).infer([expr_type(c, types) for c in children], dict(attrs))


def expr_ops(expr):
    """The op names used in an expression (for pictures and profiles)."""
    if expr[0] in ("arg", "const"):
        return []
    out = [expr[0]]
    for c in expr[2]:
        out += expr_ops(c)
    return out


def _fused_infer(types, attrs):
    return expr_type(attrs["expr"], types)


def _fused_reduce_infer(types, attrs):
    t = expr_type(attrs["expr"], types)
    red = get_op(attrs["reduce"]).infer([t], {"axis": attrs["axis"], "keepdims": attrs["keepdims"]})
    normalize_axis(attrs["axis"], t.ndim)
    return TensorType(red.dtype, reduced_shape(t.shape, normalize_axis(attrs["axis"], t.ndim),
                                               attrs["keepdims"]))


register(OpDef("fused", None, _fused_infer, attrs={"expr": REQUIRED}, elementwise=True,
               differentiable=False, doc="an elementwise expression evaluated in one pass"))
register(OpDef("fused_reduce", None, _fused_reduce_infer,
               attrs={"expr": REQUIRED, "reduce": REQUIRED, "axis": None, "keepdims": False},
               differentiable=False,
               doc="a reduction of an elementwise expression, without materializing it"))
