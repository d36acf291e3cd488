"""Small helpers every pass uses to edit a compile unit (always a copy, never the user's graph)."""
from __future__ import annotations

import networkx as nx

from ..ir.graph import Graph, copy_graph, fresh_ids, operands, topological, upstream  # noqa: F401
from ..ops.registry import canonical_attrs, get_op


def replace(G: nx.MultiDiGraph, old: int, new: int, moved=None) -> None:
    """Make every consumer (and unit root) of `old` read `new` instead, keeping ports.

    With a dict `moved`, root changes are recorded there instead and applied by
    move_roots() once: a pass that replaces many roots (one per parameter update) would
    otherwise rebuild the root lists each time, quadratic in a deep network.
    """
    if old == new:
        return
    for _, v, k in list(G.out_edges(old, keys=True)):
        G.remove_edge(old, v, key=k)
        G.add_edge(new, v, key=k)
    if old in _root_set(G):
        if moved is not None:
            moved[old] = new
            return
        G.graph["outputs"] = [new if n == old else n for n in G.graph["outputs"]]
        G.graph["updates"] = [(p, new if v == old else v) for p, v in G.graph["updates"]]


def move_roots(G: nx.MultiDiGraph, moved) -> None:
    """Apply the root changes replace() recorded in `moved` (chains followed)."""
    if not moved:
        return

    def final(n):
        while n in moved:
            n = moved[n]
        return n
    G.graph["outputs"] = [final(n) for n in G.graph["outputs"]]
    G.graph["updates"] = [(p, final(v)) for p, v in G.graph["updates"]]


def _root_set(G) -> frozenset:
    # Cached per (outputs, updates) list objects: replace() builds new lists when a root
    # changes, so a stale cache is never consulted, and copies may share it safely.
    outs, ups = G.graph["outputs"], G.graph["updates"]
    cache = G.graph.get("_roots")
    if cache is None or cache[0] is not outs or cache[1] is not ups:
        cache = (outs, ups, frozenset(outs) | frozenset(v for _, v in ups))
        G.graph["_roots"] = cache
    return cache[2]


def roots(G) -> list:
    return list(G.graph["outputs"]) + [v for _, v in G.graph["updates"]]


def log(G, what: str, nid: int) -> None:
    """Record that a pass or rule changed node `nid` (shown by Function.explain())."""
    d = G.nodes[nid] if nid in G else {}
    G.graph.setdefault("log", []).append((what, nid, d.get("name"), d.get("trace")))


def topo(G):
    """Node ids in a deterministic topological order."""
    return topological(G)


def builder(G) -> Graph:
    """A Graph wrapper over G so rewrite rules can build nodes with the public op API."""
    return Graph(G)


def add_like(H, n, op, args, attrs, nid, same_value=True):
    """A new node computing node n's value from `args`; it inherits n's name, phase, line
    and scope (so a fused group still draws inside its layer or optimizer). same_value=False:
    a new intermediate made for n (its phase, line and scope, no name, its own type)."""
    d = H.nodes[n]
    opdef = get_op(op)
    attrs = canonical_attrs(opdef, attrs)
    t = opdef.infer([H.nodes[a]["type"] for a in args], attrs)
    assert t == d["type"] or not same_value, f"{op} type {t} != {d['type']}"
    name = d.get("name") if same_value else None
    H.add_node(nid, op=op, attrs=attrs, type=t, name=name, phase=d["phase"],
               trace=d.get("trace"), **{k: d[k] for k in ("origin", "scope") if k in d})
    for port, a in enumerate(args):
        H.add_edge(a, nid, key=port)
    return nid
