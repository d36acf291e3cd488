"""Passes see into loop bodies: each body is thawed into a compile unit, run through the
same pipeline as the outer graph, and frozen again. Constants that folding makes inside a
body are lifted out as extra operands (a body holds no arrays)."""
from __future__ import annotations

from ..ir.body import freeze, thaw
from ..ir.graph import fresh_ids
from ..ir.types import TensorType, TupleType
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
    """A loop that computes another's results and more (the values a gradient saves) serves
    both: the other's readers read it instead. It must have the other's operands first (it
    may capture more), its body the other's inputs and nodes first, and its outputs the
    other's first (a body traced from the other's, as flowc/autodiff/loops.py makes)."""
    loops = [n for n, d in G.nodes(data=True) if d["op"] == "loop"]
    if len(loops) < 2:
        return G
    groups = {}
    for n in loops:
        a = G.nodes[n]["attrs"]
        groups.setdefault(tuple((k, v) for k, v in sorted(a.items()) if k != "body"),
                          []).append(n)
    H, gone = None, set()
    for ns in groups.values():
        ns.sort(key=lambda n: -len(G.nodes[n]["attrs"]["body"][2]))
        for i, small in enumerate(ns):
            for big in ns[:i]:
                if big not in gone and small not in gone and _serves(G, big, small):
                    H = H if H is not None else copy_graph(G)
                    for _, v, k in list(H.out_edges(small, keys=True)):
                        H.remove_edge(small, v, key=k)  # part(small, i) -> part(big, i)
                        H.add_edge(big, v, key=k)
                    gone.add(small)
                    log(H, "merge_loops", big)
                    break
    return G if H is None else prune(H)


def _serves(G, big, small):
    """Whether loop `big` computes every result of loop `small` (see merge_loops)."""
    ob, os_ = operands(G, big), operands(G, small)
    bb, bs = G.nodes[big]["attrs"]["body"], G.nodes[small]["attrs"]["body"]
    return (ob[:len(os_)] == os_ and bb[0][:len(bs[0])] == bs[0]
            and bb[1][:len(bs[1])] == bs[1] and bb[2][:len(bs[2])] == bs[2])


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


def last_row_reads(G):
    """ys[-1] of a forward loop whose y is a new carry is the final carry (when the loop runs
    at least one step, known statically): read the carry, so the stack may go unused."""
    H = None
    for n, d in list(G.nodes(data=True)):
        if d["op"] != "getitem" or d["attrs"]["index"] != (("int", -1),):
            continue
        (p,) = operands(G, n)
        pd = G.nodes[p]
        if pd["op"] != "part":
            continue
        (loop,) = operands(G, p)
        a = G.nodes[loop]["attrs"]
        steps = G.nodes[p]["type"].shape[0] if G.nodes[p]["type"].ndim else None
        if (G.nodes[loop]["op"] != "loop" or a["reverse"] or a["stack_axis"] or a["cond"]
                is not None or not steps):
            continue
        nc, outs, i = a["n_carry"], a["body"][2], pd["attrs"]["index"]
        row = G.nodes[p]["type"]
        if i < nc or outs[i] not in outs[:nc] or G.nodes[n]["type"] != TensorType(
                row.dtype, row.shape[1:]):
            continue
        H = H if H is not None else copy_graph(G)
        carry = outs[:nc].index(outs[i])
        k = next(fresh_ids(H))
        H.add_node(k, **dict(pd, attrs={"index": carry}, type=G.nodes[n]["type"]))
        H.add_edge(loop, k, key=0)
        replace(H, n, k)
        log(H, "last_row_is_carry", k)
    return G if H is None else prune(H)


def dead_ys(G):
    """A loop's per-step outputs that nothing reads are not stacked: the loop loses them."""
    H = None
    for n, d in list(G.nodes(data=True)):
        if d["op"] != "loop":
            continue
        nc, body = d["attrs"]["n_carry"], d["attrs"]["body"]
        used = {G.nodes[v]["attrs"]["index"] for v in G._succ[n] if G.nodes[v]["op"] == "part"}
        if any(G.nodes[v]["op"] != "part" for v in G._succ[n]):
            continue  # read whole (a select): keep every part
        keep = [i for i in range(len(body[2])) if i < nc or i in used]
        if len(keep) == len(body[2]):
            continue
        H = H if H is not None else copy_graph(G)
        unit = thaw(body)
        outs = [unit.graph["outputs"][i] for i in keep]
        new_body = freeze(unit, list(unit.graph["inputs"]), outs)
        new = next(fresh_ids(H))
        H.add_node(new, **dict(H.nodes[n], attrs=dict(d["attrs"], body=new_body),
                               type=TupleType(tuple(d["type"].parts[i] for i in keep))))
        for port, a in enumerate(operands(H, n)):
            H.add_edge(a, new, key=port)
        for v in list(H._succ[n]):
            H.nodes[v]["attrs"] = dict(H.nodes[v]["attrs"], index=keep.index(
                H.nodes[v]["attrs"]["index"]))
            for key in list(H._succ[n][v]):
                H.remove_edge(n, v, key=key)
                H.add_edge(new, v, key=0)
        H.remove_node(n)
        log(H, "dead_ys", new)
    return G if H is None else prune(H)
