"""Stable chain rules: composites whose naive chain rule divides by an underflowed value.

log(p) differentiates to g / p; when p = softmax(z) or sigmoid(z) underflows to 0 the chain
through p gives inf * 0 = nan, although d log(p) / dz is perfectly finite. For these patterns
the engine sends the cotangent of log(...) straight to z using the composite's own stable
derivative, bypassing p (p still passes on what its other consumers send it).
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import operands
from ..ir.tensor import Tensor
from ..ops import api as F


def _op(G, n):
    return G.nodes[n]["op"]


def _is_one(G, n):
    d = G.nodes[n]
    return d["op"] == "const" and d["value"].size > 0 and bool(np.all(d["value"] == 1))


def _sigmoid_arg(G, n):
    """(z, sign): node n computes sigmoid(sign * z), or None.

    Recognizes sigmoid(z), 1 - sigmoid(z), 1 / (1 + exp(a)) (= sigmoid(-a)) and
    1 - 1 / (1 + exp(a)) (= sigmoid(a)).
    """
    sign = 1
    while True:  # peel `1 - ...` layers in a loop: no recursion over a deep chain of them
        op = _op(G, n)
        if op == "sigmoid":
            return operands(G, n)[0], sign
        if op == "div":
            one, den = operands(G, n)
            if _is_one(G, one) and _op(G, den) == "add":
                a, b = operands(G, den)
                e = b if _is_one(G, a) else a if _is_one(G, b) else None
                if e is not None and _op(G, e) == "exp":
                    return operands(G, e)[0], -sign
            return None
        if op != "sub":
            return None
        one, n = operands(G, n)
        if not _is_one(G, one):
            return None
        sign = -sign


def stable_vjp(graph, nid, g, on_path):
    """[(operand id, cotangent)] for node `nid` if it is one of the patterns, else None."""
    G = graph.nx
    if _op(G, nid) != "log":
        return None
    (p,) = operands(G, nid)
    op = _op(G, p)
    if op == "softmax":
        (z,) = operands(G, p)
        if z not in on_path:
            return None
        axis = G.nodes[p]["attrs"]["axis"]
        zt = Tensor(graph, z)
        # d log_softmax(z) = g - softmax(z) * sum(g)
        return [(z, g - F.softmax(zt, axis) * F.sum(g, axis, keepdims=True))]
    if op == "sum":
        (e,) = operands(G, p)
        if _op(G, e) != "exp" or operands(G, e)[0] not in on_path:
            return None
        (z,) = operands(G, e)
        at = G.nodes[p]["attrs"]
        zt = Tensor(graph, z)
        axes = at["axis"] if at["axis"] is not None else tuple(range(zt.ndim))
        gk = g if at["keepdims"] or not axes else F.expand_dims(g, axes)
        # d logsumexp(z) = g * softmax(z) over the summed axes
        return [(z, F.broadcast_like(gk, zt) * F.exp(zt - F.logsumexp(zt, axes, keepdims=True)))]
    found = _sigmoid_arg(G, p)
    if found is None or found[0] not in on_path:
        return None
    z, sign = found
    zt = Tensor(graph, z)
    # d/dz log(sigmoid(s*z)) = s * sigmoid(-s*z)
    return [(z, g * F.sigmoid(-zt) if sign > 0 else -g * F.sigmoid(zt))]
