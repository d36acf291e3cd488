"""Fused ops made by the fuse pass: an elementwise expression tree, optionally reduced.

expr is a nested tuple (hashable, JSON-able):
  ("arg", i)                       operand i of the fused node
  ("const", value, dtype)          a scalar constant
  (op, attrs_items, (child, ...))  an elementwise op of the registry applied to children
"""
from __future__ import annotations

from flowc_runtime.cpu.fused import postorder

from ..ir.types import TensorType, normalize_axis
from .infer import reduced_shape
from .registry import REQUIRED, OpDef, get_op, register


def expr_type(expr, types):
    """The TensorType an expression computes from its operands' types."""
    out = {}
    for e in postorder(expr):  # iterative: no recursion over the expression's depth
        if e[0] == "arg":
            out[e] = types[e[1]]
        elif e[0] == "const":
            out[e] = TensorType(e[2], ())
        else:
            op, attrs, children = e
            out[e] = get_op(op).infer([out[c] for c in children], dict(attrs))
    return out[expr]


def expr_ops(expr):
    """The op names used in an expression, in prefix order (for pictures and profiles)."""
    out, stack = [], [expr]
    while stack:
        e = stack.pop()
        if e[0] not in ("arg", "const"):
            out.append(e[0])
            stack.extend(reversed(e[2]))
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
