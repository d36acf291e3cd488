"""The gradient as a person derives it: backward bookkeeping ops folded into the edges.

Autodiff writes sum_like / broadcast_like / reshape_like after every broadcasting op and
expand_dims before broadcasting a scalar. Where the shape classes prove such a node is an
identity it is left out; a scalar made a [1] and broadcast onto a shape becomes an edge
labelled "broadcast to f64[784]". `raw=True` in fc.render / fc.to_dot keeps the literal graph.
"""
from __future__ import annotations

from ..passes.rewrite import operands, topo
from ..passes.shapes import SHAPE_OF, shape_classes

# Ops that only add or drop axes of size 1: a [1] or [1,1] holds the same single number.
UNIT_RESHAPES = ("expand_dims", "reshape", "squeeze")


def _unit(G, n) -> bool:
    """Does n hold one number (every dim 1, or a scalar)?"""
    return all(d == 1 for d in G.nodes[n]["type"].shape)


def fold_plan(G, nodes, keep) -> dict:
    """{backward node to leave out: (the operand that stands for it, edge note)}."""
    try:
        cls = shape_classes(G)
    except Exception:  # a graph the shape classes do not cover: draw it literally
        return {}
    plan = {}
    for n in topo(G):
        d = G.nodes[n]
        if n not in nodes or n in keep or d.get("phase") != "backward" \
                or d.get("grad_of") is not None:
            continue
        args = operands(G, n)
        op = d["op"]
        if op in SHAPE_OF:
            src, like = args[0], args[SHAPE_OF[op]]
            if cls.get(src) == cls.get(like) and G.nodes[src]["type"] == d["type"]:
                plan[n] = (src, "")
            elif op == "broadcast_like" and _unit(G, src):
                plan[n] = (src, f"broadcast to {d['type'].short()}")
        elif op in UNIT_RESHAPES and _unit(G, n) and args and _unit(G, args[0]):
            plan[n] = (args[0], "")
    return plan


def fold(G, nodes, keep):
    """(a copy of G with the planned nodes spliced out, the nodes left, how many folded).

    Each consumer's edge is rewired to the folded node's stand-in, keeping its port; a
    note ("broadcast") rides on the edge as its `via` attr. Chains resolve in one pass:
    the plan is made in topological order, so a stand-in is looked up once more.
    """
    plan = fold_plan(G, nodes, keep)
    if not plan:
        return G, nodes, 0
    H = G.copy()
    final = {}
    for n in topo(G):  # resolve chains: a folded node's stand-in may itself be folded
        if n in plan:
            src, note = plan[n]
            if src in final:
                src, note = final[src][0], note or final[src][1]
            final[n] = (src, note)
    for n, (src, note) in final.items():
        for _, c, port in list(G.out_edges(n, keys=True)):
            if c in final:
                continue
            data = {"via": note} if note else {}
            H.add_edge(src, c, key=port, **data)
    H.remove_nodes_from(final)
    return H, {n for n in nodes if n not in final}, len(final)
