"""Passes see into loop bodies: each body is thawed into a compile unit, run through the
same pipeline as the outer graph, and frozen again. Constants that folding makes inside a
body are lifted out as extra operands (a body holds no arrays)."""
from __future__ import annotations

from ..ir.body import freeze
from ..ir.graph import fresh_ids
from .rewrite import copy_graph, log, operands, replace


def optimize_bodies(G, level):
    """G with every loop body optimized at `level` (loops nested in a body included)."""
    loops = [n for n, d in G.nodes(data=True) if d["op"] == "loop"]
    if not loops:
        return G
    from ..lower.lower import body_unit
    from .pipeline import optimize
    H = copy_graph(G)
    ids = fresh_ids(H)
    for n in loops:
        d = H.nodes[n]
        unit = optimize(body_unit(d["attrs"]["body"]), level)
        consts = [m for m, e in unit.nodes(data=True) if e["op"] == "const"]
        body = freeze(unit, list(unit.graph["inputs"]) + consts, list(unit.graph["outputs"]))
        if body == d["attrs"]["body"]:
            continue
        args = operands(H, n)
        for c in consts:  # each lifted constant becomes an outer const operand
            k = next(ids)
            e = unit.nodes[c]
            H.add_node(k, op="const", attrs={}, type=e["type"], name=None, value=e["value"],
                       phase=d["phase"], trace=d.get("trace"))
            args.append(k)
        new = next(ids)
        H.add_node(new, **dict(d, attrs=dict(d["attrs"], body=body)))
        for port, a in enumerate(args):
            H.add_edge(a, new, key=port)
        replace(H, n, new)
        H.remove_node(n)
        log(H, "loop_body", new)
    return H
