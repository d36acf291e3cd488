"""Fusion: elementwise chains become one `fused` node; an elementwise group feeding a
reduction becomes one `fused_reduce` node. The runtime evaluates either in one pass over
cache-sized blocks, so no intermediate of the group is ever materialized at full size."""
from __future__ import annotations

import networkx as nx

from ..ops.registry import get_op
from .cleanup import prune
from .rewrite import (add_like, copy_graph, fresh_ids, log, move_roots, operands, replace,
                      roots, topo)

REDUCIBLE = ("sum", "mean", "max", "min", "prod")
NOT_FUSED = ("fused", "fused_reduce", "stop_gradient")
MAX_RECOMPUTE = 6  # ops a shared subexpression may have and still be recomputed per group
MAX_DEPTH = 32     # ops on the longest path of one expression: attrs stay shallow nested
                   # tuples (Python hashes, compares and prints those recursively), and a
                   # long chain pays one materialized tensor per 32 ops
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
    absorbed = _absorbed(H, set(roots(H)))
    order = topo(H)
    ids = fresh_ids(H)
    moved = {}
    for n in reversed(order):
        if n not in H:
            continue
        d = H.nodes[n]
        if d["op"] in REDUCIBLE:
            (u,) = operands(H, n)
            if u not in absorbed:
                continue
            args = []
            expr = _build(H, u, absorbed, args)
            new = add_like(H, n, "fused_reduce", args,
                           dict(expr=expr, reduce=d["op"], axis=d["attrs"]["axis"],
                                keepdims=d["attrs"]["keepdims"]), next(ids))
        elif fusable(H, n) and n not in absorbed:
            if not any(u in absorbed for u in operands(H, n)):
                continue  # a group of one: nothing to gain
            args = []
            expr = _build(H, n, absorbed, args)
            new = add_like(H, n, "fused", args, dict(expr=expr), next(ids))
        else:
            continue
        replace(H, n, new, moved)
        log(H, "fuse", n)
    move_roots(H, moved)
    return prune(H)


def _absorbed(H, keep) -> set:
    """The nodes computed inside their consumers' groups, decided in one forward walk.

    A node with one use (one edge: a node used twice by one consumer counts twice, or its
    expression would double per level) is absorbed for free. One with several uses (all
    fusable) is recomputed in each, which beats writing the full-size tensor out and
    reading it back while the expression stays small and cheap: on small tensors a second
    exp/tanh/sigmoid costs more than keeping the first one's result.
    """
    size, cheap, depth, out = {}, {}, {}, set()
    for n in topo(H):
        if n in keep or not fusable(H, n):
            continue
        ins = [u for u in operands(H, n) if u in out]
        size[n] = 1 + sum(size[u] for u in ins)
        cheap[n] = H.nodes[n]["op"] not in EXPENSIVE and all(cheap[u] for u in ins)
        depth[n] = 1 + max((depth[u] for u in ins), default=0)
        users = set(H.successors(n))
        if not users or depth[n] >= MAX_DEPTH or not all(
                fusable(H, c) or H.nodes[c]["op"] in REDUCIBLE for c in users):
            continue
        if H.out_degree(n) == 1 or (size[n] <= MAX_RECOMPUTE and cheap[n]):
            out.add(n)
    return out


def _build(H, root, absorbed, args):
    """The expression tuple of root's group (operands appended to args), built bottom-up
    with an explicit stack: groups are shallow, but no walk here recurses over depth."""
    index, done, stack = {}, {}, [(root, False)]
    while stack:
        n, ready = stack.pop()
        ops = operands(H, n)
        if not ready:
            stack.append((n, True))
            stack.extend((u, False) for u in ops if u in absorbed and u not in done)
            continue
        children = []
        for u in ops:
            if u in absorbed:
                children.append(done[u])
            elif _scalar_const(H, u):
                v = H.nodes[u]["value"]
                children.append(("const", v.item(), v.dtype.name))
            else:
                if u not in index:
                    index[u] = len(args)
                    args.append(u)
                children.append(("arg", index[u]))
        done[n] = (H.nodes[n]["op"], tuple(sorted(H.nodes[n]["attrs"].items())),
                   tuple(children))
    return done[root]
