"""Rules that answer a shape read from further up the graph: dim(f(x), k) becomes a dim of
an operand (or a size operand itself), so a tensor read only for its shape need not be
computed at all (Theano's shape feature). One table, applied with the algebra rules."""
from __future__ import annotations

import numpy as np

from ..ir.tensor import Tensor
from ..ops import api as F
from ..ops.api_shape import dim as _dim
from ..ops.build import constant
from ..ops.registry import get_op
from .rewrite import builder, operands


def _d(G, n):
    return G.nodes[n]


def _made(G, n, make):
    """A node computing n's value (an int64 scalar) from make(graph) -> Tensor or int."""
    g = builder(G)
    d = _d(G, n)
    with g.emitting(d["phase"], d.get("origin"), d.get("trace")):
        v = make(g)
        if not isinstance(v, Tensor):
            v = constant(np.int64(v), graph=g)
        return v.id


def _dim_of(G, n, src, axis):
    """dim(src, axis) as a node: an existing dim node, a new one, or a constant."""
    return _made(G, n, lambda g: _dim(Tensor(g, src), axis))


def _source_axis(G, x, k):
    """(operand, axis) whose size is x's dim k, or None: the ops whose result dim k is one
    operand's dim, read off their attrs. Broadcasting elementwise ops qualify only where a
    single operand reaches that axis (or the others are known to be 1 there)."""
    d = _d(G, x)
    op, attrs, args = d["op"], d["attrs"], operands(G, x)
    nd = d["type"].ndim
    if op in ("sum_like", "broadcast_like", "reshape_like"):
        return None if op == "sum_like" else (args[1], k)
    if op == "transpose":
        axes = attrs["axes"]
        return args[0], (nd - 1 - k if axes is None else axes[k] % nd)
    if op in ("cast", "specify_shape", "stop_gradient", "custom_vjp"):
        return args[0], k
    if op == "matmul":
        a, b = (_d(G, args[0])["type"], _d(G, args[1])["type"])
        if a.ndim >= 2 and b.ndim >= 2 and k == nd - 1:
            return args[1], b.ndim - 1
        if a.ndim >= 2 and k == nd - (2 if b.ndim >= 2 else 1):
            return args[0], a.ndim - 2
        return None
    if op in ("sum", "mean", "max", "min", "prod", "argmax", "argmin", "logsumexp") \
            and attrs.get("axis") is not None:
        axes = attrs["axis"] if isinstance(attrs["axis"], tuple) else (attrs["axis"],)
        src = _d(G, args[0])["type"].ndim
        axes = tuple(a % src for a in axes)
        kept = list(range(src)) if attrs.get("keepdims") else [i for i in range(src)
                                                                 if i not in axes]
        i = kept[k]
        return None if i in axes else (args[0], i)
    if op not in ("input", "param", "const") and get_op(op).elementwise:
        reach = []
        for a in args:
            t = _d(G, a)["type"]
            j = k - (nd - t.ndim)
            if j >= 0 and t.shape[j] != 1:
                reach.append((a, j))
        return reach[0] if len(reach) == 1 else None
    return None


def _dim_rule(G, n, a):
    """dim(f(x), k) -> dim(operand, j), or the size operand that reshape_dyn/alloc read."""
    x, k = a[0], _d(G, n)["attrs"]["axis"]
    d = _d(G, x)
    if d["op"] in ("reshape_dyn", "alloc"):
        entry = d["attrs"]["shape"][k]
        args = operands(G, x)
        if entry == "arg":
            pos = 1 + sum(1 for e in d["attrs"]["shape"][:k] if e == "arg")
            return args[pos] if _d(G, args[pos])["type"].dtype == "int64" else None
        if isinstance(entry, tuple):  # ("dim", j): reshape's own operand's dim j
            return _dim_of(G, n, args[0], entry[1])
        return None
    if d["op"] == "concatenate":  # the sum of the parts along the axis, any part elsewhere
        args, axis = operands(G, x), d["attrs"]["axis"] % d["type"].ndim
        if k != axis:
            return _dim_of(G, n, args[0], k)

        def total(g):
            out = 0
            for p in args:
                out = out + _dim(Tensor(g, p), k)
            return out
        return _made(G, n, total)
    src = _source_axis(G, x, k)
    return None if src is None else _dim_of(G, n, *src)


def _shape_rule(G, n, a):
    """shape(f(x)) -> shape(x) where f keeps its operand's whole shape."""
    x = a[0]
    d = _d(G, x)
    if d["op"] in ("broadcast_like", "reshape_like"):
        src = operands(G, x)[1]
    elif d["op"] in ("cast", "specify_shape", "stop_gradient") or (
            d["op"] not in ("input", "param", "const") and get_op(d["op"]).elementwise
            and len(operands(G, x)) == 1):
        src = operands(G, x)[0]
    else:
        return None
    return _made(G, n, lambda g: F.shape(Tensor(g, src)))


RULES = [
    ("dim_from_operand", "dim", _dim_rule),
    ("shape_from_operand", "shape", _shape_rule),
]
