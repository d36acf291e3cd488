"""Fusion: elementwise chains become one `fused` node; an elementwise group feeding a
reduction becomes one `fused_reduce` node. The runtime evaluates either in one pass over
cache-sized blocks, so no intermediate of the group is ever materialized at full size."""
from __future__ import annotations

import itertools

import networkx as nx

from ..ops.registry import get_op
from .cleanup import prune
from .rewrite import add_like, copy_graph, log, move_roots, operands, replace, roots, topo

REDUCIBLE = ("sum", "mean", "max", "min", "prod")
NOT_FUSED = ("fused", "fused_reduce", "stop_gradient")
MAX_RECOMPUTE = 6  # ops a shared subexpression may have and still be recomputed per group
EXPENSIVE = frozenset("exp log log1p expm1 tanh sigmoid softplus sin cos sqrt pow".split())


def fusable(G, n) -> bool:
    """Elementwise ops whose kernel the fused evaluator can call."""
    op = G.nodes[n]["op"]
    if op in ("input", "param", "const") or op in NOT_FUSED:
        return False
    return get_op(op).elementwise


def _scalar_const(G, n):
    d = G.nodes[n]
    return d["op"] == "const" and d["value"].ndim == 0


def fuse(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Replace elementwise groups (a tree of single-consumer nodes) by fused nodes.

    Guarantee: same values and types; a node used twice, or returned, stays materialized.
    """
    H = copy_graph(G)
    keep = set(roots(H))
    size = {}  # ops in a node's inlined expression, to bound recomputation

    def inline_size(n):
        if n not in size:
            size[n] = 1 + sum(inline_size(u) for u in operands(H, n) if absorbed(u))
        return size[n]

    def absorbed(n):
        # n is computed inside its consumers' groups. With one consumer that is free; with
        # several (all fusable) it is recomputed in each, which beats writing the full-size
        # tensor out and reading it back as long as the expression stays small.
        if n in keep or not fusable(H, n):
            return False
        users = set(H.successors(n))
        if not users or not all(fusable(H, c) or H.nodes[c]["op"] in REDUCIBLE for c in users):
            return False
        return len(users) == 1 or (inline_size(n) <= MAX_RECOMPUTE and cheap(n))

    def cheap(n):
        # Recompute arithmetic freely, but not transcendental functions: on small tensors
        # a second exp/tanh/sigmoid costs more than keeping the first one's result.
        if H.nodes[n]["op"] in EXPENSIVE:
            return False
        return all(cheap(u) for u in operands(H, n) if absorbed(u))

    def build(n, args, index):
        op = H.nodes[n]["op"]
        children = []
        for u in operands(H, n):
            if absorbed(u) and fusable(H, u):
                children.append(build(u, args, index))
            elif _scalar_const(H, u):
                v = H.nodes[u]["value"]
                children.append(("const", v.item(), v.dtype.name))
            else:
                if u not in index:
                    index[u] = len(args)
                    args.append(u)
                children.append(("arg", index[u]))
        attrs = tuple(sorted(H.nodes[n]["attrs"].items()))
        return (op, attrs, tuple(children))

    ids = itertools.count(max(H.nodes, default=-1) + 1)
    moved = {}
    for n in reversed(topo(H)):
        if n not in H:
            continue
        d = H.nodes[n]
        if d["op"] in REDUCIBLE:
            (u,) = operands(H, n)
            if not absorbed(u):
                continue
            args = []
            expr = build(u, args, {})
            new = add_like(H, n, "fused_reduce", args,
                           dict(expr=expr, reduce=d["op"], axis=d["attrs"]["axis"],
                                keepdims=d["attrs"]["keepdims"]), next(ids))
        elif fusable(H, n) and not absorbed(n):
            if not any(absorbed(u) for u in operands(H, n)):
                continue  # a group of one: nothing to gain
            if len(set(H.successors(n))) > 1 and absorbed(n):
                continue  # recomputed inside each consumer instead
            args = []
            expr = build(n, args, {})
            new = add_like(H, n, "fused", args, dict(expr=expr), next(ids))
        else:
            continue
        replace(H, n, new, moved)
        log(H, "fuse", n)
    move_roots(H, moved)
    return prune(H)
