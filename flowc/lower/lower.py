"""Lower an optimized compile-unit graph to a runtime.Program."""
from __future__ import annotations

import networkx as nx
import numpy as np

from flowc_runtime.program.format import Instr, Program

from ..ir.body import thaw
from ..ir.graph import operands, topological, upstream

LEAVES = ("input", "param", "const")


def schedule(G: nx.MultiDiGraph):
    """Deterministic topological order of the nodes the unit's outputs and updates need."""
    roots = list(G.graph["outputs"]) + [v for _, v in G.graph["updates"]]
    needed = upstream(G, roots)
    return [n for n in topological(G) if n in needed]


def lower(G: nx.MultiDiGraph, param_values=None) -> Program:
    """Turn a compile unit into a Program. `param_values` maps param node id -> current value."""
    order = schedule(G)
    slot = {}
    inputs, params, consts, values = [], [], [], {}

    def new_slot(nid):
        slot[nid] = len(slot)
        return slot[nid]

    for nid in G.graph["inputs"]:
        d = G.nodes[nid]
        inputs.append(dict(name=d.get("name") or f"input{len(inputs)}", slot=new_slot(nid),
                           dtype=d["type"].dtype, shape=tuple(d["type"].shape)))
    param_ids = sorted({n for n in order if G.nodes[n]["op"] == "param"}
                       | {p for p, _ in G.graph["updates"]})
    for nid in param_ids:
        d = G.nodes[nid]
        values[f"param{len(params)}"] = np.asarray(
            (param_values or {}).get(nid, d.get("value")), dtype=d["type"].dtype)
        params.append(dict(name=d.get("name") or f"param{len(params)}", slot=new_slot(nid),
                           dtype=d["type"].dtype, shape=tuple(d["type"].shape), key=nid))
    for nid in order:
        if G.nodes[nid]["op"] == "const":
            s = new_slot(nid)
            consts.append(dict(slot=s))
            values[f"const{s}"] = np.asarray(G.nodes[nid]["value"])
    instrs = []
    for nid in order:
        d = G.nodes[nid]
        if d["op"] in LEAVES:
            continue
        attrs = dict(d["attrs"])
        if d["op"] == "loop":  # the body (and condition) go down as Programs of their own
            attrs.pop("save")  # the vjp's policies: nothing the runtime does
            attrs.pop("truncate")
            attrs["body"] = lower(thaw(attrs["body"])).to_json()
            if attrs["cond"] is not None:
                attrs["cond"] = lower(thaw(attrs["cond"])).to_json()
        if d["op"] == "cond":
            attrs["branches"] = tuple(lower(thaw(b)).to_json() for b in attrs["branches"])
        if d["op"] == "random_uniform" and not attrs.get("sharded"):
            attrs.pop("sharded", None)   # a Program an older runtime (no such attr) still runs
        instrs.append(Instr(d["op"], [slot[u] for u in operands(G, nid)], new_slot(nid),
                            attrs, nid, where(G, nid), d["type"].dtype,
                            list(d["type"].shape)))
    outputs = [slot[n] for n in G.graph["outputs"]]
    pindex = {p: i for i, p in enumerate(param_ids)}
    updates = [dict(param=pindex[p], slot=slot[v]) for p, v in G.graph["updates"]]
    return Program(n_slots=len(slot), inputs=inputs, params=params, consts=consts,
                   instrs=instrs, outputs=outputs, updates=updates,
                   free=last_uses(instrs, set(outputs) | {u["slot"] for u in updates}),
                   values=values)


def last_uses(instrs, keep):
    """For each instruction, the computed slots read for the last time there (not in `keep`)."""
    computed = {ins.out for ins in instrs}
    last = {}
    for i, ins in enumerate(instrs):
        for a in ins.args:
            last[a] = i
    free = [[] for _ in instrs]
    for s, i in sorted(last.items()):
        if s in computed and s not in keep:
            free[i].append(s)
    return free


def where(G, nid) -> str:
    """'name (op) made at file:line' for messages about node `nid`."""
    d = G.nodes[nid]
    who = d.get("name") or f"%{nid}"
    op = d["op"]
    if op in ("fused", "fused_reduce"):  # name the user's ops the group computes
        from ..ops.fused import expr_ops
        ops = expr_ops(d["attrs"]["expr"]) + ([d["attrs"]["reduce"]] if op == "fused_reduce" else [])
        op = f"{op} of {', '.join(dict.fromkeys(ops))}"
    return f"{who} ({op}, {d['type'].short()}) made at {d.get('trace') or '?'}"
