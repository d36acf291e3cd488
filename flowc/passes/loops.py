"""Passes see into loop bodies: each body is thawed into a compile unit, run through the
same pipeline as the outer graph, and frozen again. Constants that folding makes inside a
body are lifted out as extra operands (a body holds no arrays)."""
from __future__ import annotations

from ..ir.body import freeze, thaw
from ..ir.graph import fresh_ids
from .cleanup import prune
from .rewrite import copy_graph, log, operands, replace


def _optimized(body, level):
    """(the body optimized at level, the constants lifted out of it: (type, value) pairs)."""
    from .pipeline import optimize
    unit = optimize(thaw(body), level)
    consts = [m for m, e in unit.nodes(data=True) if e["op"] == "const"]
    frozen = freeze(unit, list(unit.graph["inputs"]) + consts, list(unit.graph["outputs"]))
    return frozen, [(unit.nodes[m]["type"], unit.nodes[m]["value"]) for m in consts]


def _lifted(H, ids, const, d):
    """An outer const node for a constant lifted out of a body."""
    k = next(ids)
    H.add_node(k, op="const", attrs={}, type=const[0], name=None, value=const[1],
               phase=d["phase"], trace=d.get("trace"))
    return k


def merge_loops(G):
    """A loop whose body is another's with more outputs after (the carries a gradient
    saves) computes the other's results too: the other's readers read it instead."""
    loops = [n for n, d in G.nodes(data=True) if d["op"] == "loop"]
    if len(loops) < 2:
        return G
    groups = {}
    for n in loops:
        a = G.nodes[n]["attrs"]
        key = (tuple(operands(G, n)), a["body"][0], a["body"][1],
               tuple((k, v) for k, v in sorted(a.items()) if k != "body"))
        groups.setdefault(key, []).append(n)
    H = None
    for ns in groups.values():
        if len(ns) < 2:
            continue
        ns.sort(key=lambda n: -len(G.nodes[n]["attrs"]["body"][2]))
        big = ns[0]
        outs = G.nodes[big]["attrs"]["body"][2]
        for n in ns[1:]:
            mine = G.nodes[n]["attrs"]["body"][2]
            if outs[:len(mine)] != mine:
                continue
            H = H if H is not None else copy_graph(G)
            for _, v, k in list(H.out_edges(n, keys=True)):  # part(n, i) -> part(big, i)
                H.remove_edge(n, v, key=k)
                H.add_edge(big, v, key=k)
            log(H, "merge_loops", big)
    return G if H is None else prune(H)


def optimize_bodies(G, level):
    """G with every loop body optimized at `level` (loops nested in a body included)."""
    loops = [n for n, d in G.nodes(data=True) if d["op"] == "loop"]
    if not loops:
        return G
    H = copy_graph(G)
    ids = fresh_ids(H)
    for n in loops:
        d = H.nodes[n]
        args = operands(H, n)
        n_cond = d["attrs"]["n_cond"]
        body, body_consts = _optimized(d["attrs"]["body"], level)
        cond, cond_consts = (None, []) if d["attrs"]["cond"] is None else \
            _optimized(d["attrs"]["cond"], level)
        if body == d["attrs"]["body"] and cond == d["attrs"]["cond"]:
            continue
        split = len(args) - n_cond  # body operands, then the condition's
        args = (args[:split] + [_lifted(H, ids, v, d) for v in body_consts] + args[split:]
                + [_lifted(H, ids, v, d) for v in cond_consts])
        new = next(ids)
        H.add_node(new, **dict(d, attrs=dict(d["attrs"], body=body, cond=cond,
                                             n_cond=n_cond + len(cond_consts))))
        for port, a in enumerate(args):
            H.add_edge(a, new, key=port)
        replace(H, n, new)
        H.remove_node(n)
        log(H, "loop_body", new)
    return H
