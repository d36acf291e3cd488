"""Algebraic simplification: a table of local rules applied by one fixed-point driver."""
from __future__ import annotations

import networkx as nx
import numpy as np

from ..ir.errors import FlowcError
from ..ir.tensor import Tensor
from ..ops import api as F
from .cleanup import evaluate, prune
from .rewrite import copy_graph, builder, log, operands, replace, topo

MAX_ROUNDS = 20


SEE_THROUGH = 8  # nodes of a constant subexpression that _const evaluates
SMALL = 64  # elements each of them may have
# Ops _const sees through: arithmetic and data movement. Not exp, sigmoid, ...: sigmoid(40)
# is 1.0 only by rounding, and taking it for a 1 would let `exp(x) - 1 -> expm1` pre-empt
# the stable form of log(1 - sigmoid(40)).
EXACT_OPS = frozenset("add sub mul div neg cast sum mean expand_dims squeeze reshape "
                      "broadcast_to transpose getitem zeros_like ones_like".split())


def _const(G, n):
    """n's value if it is a constant, or a small expression of constants only.

    Rules run before constant folding (folding log(1 - sigmoid(40)) naively gives -inf), so
    they see through what folding would make a constant: `(2 - 1) - sigmoid(c)` still
    matches `1 - sigmoid(x)`, and a gradient's `expand_dims(1)` is a 1."""
    d = G.nodes[n]
    if d["op"] == "const":
        return d["value"]
    if d["op"] in ("input", "param"):
        return None
    return _small_constant(G, n)


def _small_constant(G, n):
    # Collect n's ancestors (at most SEE_THROUGH, all small, leaves all constants), then
    # evaluate them in a topological order of that set.
    nodes, todo = {n}, [n]
    while todo:
        m = todo.pop()
        d = G.nodes[m]
        if d["op"] not in EXACT_OPS or None in d["type"].shape \
                or int(np.prod(d["type"].shape)) > SMALL:
            return None
        for a in operands(G, m):
            if a not in nodes:
                nodes.add(a)
                if len(nodes) > SEE_THROUGH:
                    return None
                if G.nodes[a]["op"] != "const":
                    todo.append(a)
    values = {m: G.nodes[m]["value"] for m in nodes if G.nodes[m]["op"] == "const"}
    for _ in range(SEE_THROUGH):  # a DAG of at most SEE_THROUGH nodes: enough rounds
        if n in values:
            break
        for m in nodes - values.keys():
            args = operands(G, m)
            if all(a in values for a in args):
                v = evaluate(G.nodes[m], [values[a] for a in args])
                if v is None:
                    return None
                values[m] = v
    return values.get(n)


def _is(G, n, value):
    v = _const(G, n)
    return v is not None and v.size > 0 and bool(np.all(v == value))


def _op(G, n):
    return G.nodes[n]["op"]


# Each rule: (name, op, fn(G, node, operands) -> replacement node id, or None).
# A replacement must have exactly the node's type; the driver checks that.
def _is_identity(G, n):
    v = _const(G, n)
    return (v is not None and v.ndim == 2 and v.shape[0] == v.shape[1]
            and bool(np.array_equal(v, np.eye(v.shape[0], dtype=v.dtype))))


RULES = [
    # x * 1 -> x   and   1 * x -> x
    ("mul_one", "mul", lambda G, n, a: a[0] if _is(G, a[1], 1) else a[1] if _is(G, a[0], 1) else None),
    # x + 0 -> x   and   0 + x -> x
    ("add_zero", "add", lambda G, n, a: a[0] if _is(G, a[1], 0) else a[1] if _is(G, a[0], 0) else None),
    # x - 0 -> x
    ("sub_zero", "sub", lambda G, n, a: a[0] if _is(G, a[1], 0) else None),
    # x / 1 -> x
    ("div_one", "div", lambda G, n, a: a[0] if _is(G, a[1], 1) else None),
    # x ** 1 -> x
    ("pow_one", "pow", lambda G, n, a: a[0] if _is(G, a[1], 1) else None),
    # --x -> x
    ("neg_neg", "neg", lambda G, n, a: operands(G, a[0])[0] if _op(G, a[0]) == "neg" else None),
    # exp(log x) -> x   (equal where log is defined, x > 0)
    ("exp_log", "exp", lambda G, n, a: operands(G, a[0])[0] if _op(G, a[0]) == "log" else None),
    # log(exp x) -> x
    ("log_exp", "log", lambda G, n, a: operands(G, a[0])[0] if _op(G, a[0]) == "exp" else None),
    # x + x -> x * 2   (a gradient through x * x adds the same cotangent twice)
    ("add_self", "add", lambda G, n, a: _build(G, n, lambda t: t[0] * 2, a[:1])
     if a[0] == a[1] else None),
    # x * (-y) -> -(x * y)   and   (-x) * y -> -(x * y)   (negations meet and cancel, and CSE
    # merges the product with the same product elsewhere)
    ("mul_neg", "mul", lambda G, n, a: _unneg(G, n, a, 0, lambda x, y: -(x * y))
     or _unneg(G, n, a, 1, lambda x, y: -(x * y))),
    # x + (-y) -> x - y   and   (-x) + y -> y - x
    ("add_neg", "add", lambda G, n, a: _unneg(G, n, a, 1, lambda x, y: x - y)
     or _unneg(G, n, a, 0, lambda x, y: y - x)),
    # x - (-y) -> x + y
    ("sub_neg", "sub", lambda G, n, a: _unneg(G, n, a, 1, lambda x, y: x + y)),
    # (-x) - y -> -(x + y)
    ("neg_sub", "sub", lambda G, n, a: _unneg(G, n, a, 0, lambda x, y: -(x + y))),
    # x ** 2 -> square(x)
    ("pow_two", "pow", lambda G, n, a: _build(G, n, lambda t: F.square(t[0]), a[:1])
     if _is(G, a[1], 2) else None),
    # I @ x -> x   and   x @ I -> x   (Jacobians batch over an identity basis)
    ("matmul_identity", "matmul", lambda G, n, a: a[1] if _is_identity(G, a[0])
     else a[0] if _is_identity(G, a[1]) else None),
    # cast(x, dtype of x) -> x
    ("cast_noop", "cast", lambda G, n, a: a[0] if G.nodes[a[0]]["type"].dtype
     == G.nodes[n]["type"].dtype else None),
    # transpose(transpose x) -> x   (for the default, reversing, transpose)
    ("transpose_twice", "transpose", lambda G, n, a: operands(G, a[0])[0]
     if _op(G, a[0]) == "transpose" and G.nodes[n]["attrs"]["axes"] is None
     and G.nodes[a[0]]["attrs"]["axes"] is None else None),
]


def _slices(G, n):
    """The (start, stop) per axis of getitem_grad n's index when every item is a plain slice
    (int bounds, step 1) over a known dim, else None."""
    d = G.nodes[n]
    shape = d["type"].shape
    index = d["attrs"]["index"]
    if len(index) > len(shape):
        return None
    out = []
    for k, dim in enumerate(shape):
        it = index[k] if k < len(index) else ("slice", None, None, None)
        if it[0] != "slice" or dim is None or "arg" in it[1:]:
            return None
        start, stop, step = slice(*it[1:]).indices(dim)
        if step != 1 or stop < start:
            return None
        out.append((start, stop))
    return out


def _adjacent_slice_grads(G, n, a):
    """add(getitem_grad(x, g1, [.., i:j, ..]), getitem_grad(x, g2, [.., j:k, ..])) ->
    getitem_grad(x, concatenate([g1, g2]), [.., i:k, ..]): an LSTM's gate gradients fill
    one zeroed array with a concatenation instead of four zero fills and a sum."""
    if len(a) != 2 or _op(G, a[0]) != "getitem_grad" or _op(G, a[1]) != "getitem_grad":
        return None
    (x1, g1), (x2, g2) = operands(G, a[0]), operands(G, a[1])
    s1, s2 = _slices(G, a[0]), _slices(G, a[1])
    if s1 is None or s2 is None or G.nodes[x1]["type"] != G.nodes[x2]["type"]:
        return None
    differ = [k for k, (u, v) in enumerate(zip(s1, s2)) if u != v]
    if len(differ) != 1:
        return None
    k = differ[0]
    if s2[k][1] == s1[k][0]:  # g2's rows come first
        (g1, s1), (g2, s2) = (g2, s2), (g1, s1)
    if s1[k][1] != s2[k][0]:
        return None
    parts = []
    for g in (g1, g2):  # splice a concatenation along k made by an earlier merge
        parts += operands(G, g) if _op(G, g) == "concatenate" and \
            G.nodes[g]["attrs"]["axis"] == k and G.out_degree(g) == 1 else [g]
    index = tuple(("slice", lo, hi, None) for lo, hi in s1[:k] + [(s1[k][0], s2[k][1])]
                  + s1[k + 1:])

    def make(t):
        return F.apply("getitem_grad", [t[0], F.concatenate(t[1:], axis=k)], index=index)
    return _build(G, n, make, [x1] + parts)


def _whole_slice_grad(G, n, a):
    """getitem_grad(x, g, [full slices]) -> g (a gradient that fills every element)."""
    s = _slices(G, n)
    shape = G.nodes[n]["type"].shape
    if s is None or any(lo != 0 or hi != dim for (lo, hi), dim in zip(s, shape)):
        return None
    return a[1] if G.nodes[a[1]]["type"] == G.nodes[n]["type"] else None


def _pointwise_conv(G, n, a):
    """A 1x1 conv with stride 1, no padding, no dilation and one group is a matmul over the
    channels: (N, *S, C) @ (C, O), one GEMM with no im2col copy of the windows."""
    at, w = G.nodes[n]["attrs"], G.nodes[a[1]]["type"]
    nd = w.ndim - 2
    if at["groups"] != 1 or any(k != 1 for k in w.shape[2:]) or None in w.shape[:2] or any(
            v != 1 for key in ("stride", "dilation", "lhs_dilation") for v in at[key]) or any(
            p != (0, 0) for p in map(tuple, at["pad"])):
        return None
    last = (0,) + tuple(range(2, 2 + nd)) + (1,)     # (N, C, *S) -> (N, *S, C)
    back = (0, nd + 1) + tuple(range(1, nd + 1))     # (N, *S, O) -> (N, O, *S)
    return _build(G, n, lambda t: F.transpose(F.matmul(
        F.transpose(t[0], last), F.transpose(F.reshape(t[1], w.shape[:2]), (1, 0))), back), a)


RULES += [
    ("adjacent_slice_grads", "add", _adjacent_slice_grads),
    ("whole_slice_grad", "getitem_grad", _whole_slice_grad),
    ("pointwise_conv", "conv", _pointwise_conv),
]


def _unneg(G, n, a, port, make):
    """If operand `port` of n is -u: n rebuilt as make(x, y) with u in that operand's place."""
    if _op(G, a[port]) != "neg":
        return None
    args = list(a)
    args[port] = operands(G, a[port])[0]
    return _build(G, n, lambda t: make(t[0], t[1]), args)


def _build(G, n, make, args):
    """Build replacement nodes with the op API; they inherit n's phase, origin and trace."""
    g = builder(G)
    d = G.nodes[n]
    with g.emitting(d["phase"], d.get("origin"), d.get("trace")):
        return make([Tensor(g, a) for a in args]).id


def simplify(G: nx.MultiDiGraph, rules=RULES) -> nx.MultiDiGraph:
    """Apply the rule table until nothing fires. Guarantee: same outputs, same types."""
    H = copy_graph(G)
    by_op = {}
    for rule in rules:
        by_op.setdefault(rule[1], []).append(rule)
    fired = []
    for _ in range(MAX_ROUNDS):
        changed, fired = False, []
        for n in topo(H):
            if n not in H:
                continue
            for name, _, fn in by_op.get(H.nodes[n]["op"], ()):
                new = fn(H, n, operands(H, n))
                if new is None or new == n:
                    continue
                if H.nodes[new]["type"] != H.nodes[n]["type"]:
                    continue  # e.g. x * ones((3, 4)) broadcasts x: not a plain x
                replace(H, n, new)
                log(H, name, n)
                changed = True
                fired.append(name)
                break
        if not changed:
            return prune(H)
        prune(H)
    raise FlowcError(f"algebraic simplification did not settle after {MAX_ROUNDS} rounds; "
                     f"rules still firing in the last round: {', '.join(sorted(set(fired)))}")
