"""The one verifier: a graph must be acyclic, use known ops with contiguous ports and valid
attrs, and carry the type that `infer` computes. Hand-built and loaded graphs pass through it."""
from __future__ import annotations

import networkx as nx
import numpy as np

from .errors import FlowcError, GraphError
from .graph import operands
from .types import TensorType

LEAVES = ("input", "param", "const")


def _where(G, n):
    d = G.nodes[n]
    return f"node {n}" + (f" ({d['name']!r})" if d.get("name") else "") + \
        (f" made at {d['trace']}" if d.get("trace") else "")


def normalize_and_verify(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Check a hand-built graph and return a normalized copy (defaults filled, types inferred)."""
    from ..ops.registry import canonical_attrs, get_op
    if not isinstance(G, nx.MultiDiGraph):
        raise GraphError(f"expected a networkx.MultiDiGraph, got {type(G).__name__}")
    if not all(isinstance(n, int) for n in G.nodes):
        G = nx.convert_node_labels_to_integers(G, ordering="sorted", label_attribute="label")
        for n, d in G.nodes(data=True):
            d.setdefault("name", str(d.pop("label")))
    H = G.copy()
    _check_acyclic(H)
    for n in nx.topological_sort(H):
        d = H.nodes[n]
        if "op" not in d:
            raise GraphError(f"{_where(H, n)} has no 'op' attribute")
        try:
            opdef = get_op(d["op"]) if d["op"] not in LEAVES else None
        except GraphError as e:
            raise GraphError(f"{_where(H, n)}: {e}") from None
        d.setdefault("name", None)
        d.setdefault("phase", "forward")
        d.setdefault("trace", "<networkx>")
        if d["op"] in LEAVES:
            _leaf(H, n, d)
            continue
        args = _ports(H, n, opdef)
        try:
            d["attrs"] = canonical_attrs(opdef, dict(d.get("attrs") or {}))
            t = opdef.infer([H.nodes[a]["type"] for a in args], d["attrs"])
        except FlowcError as e:
            raise GraphError(f"{_where(H, n)}: {e}") from None
        if d.get("type") is not None and TensorType.from_json(d["type"]) != t:
            raise GraphError(f"{_where(H, n)}: stored type {TensorType.from_json(d['type'])} "
                             f"but {d['op']} of its operands gives {t}")
        d["type"] = t
    return H


def _leaf(H, n, d):
    if H.in_degree(n):
        raise GraphError(f"{_where(H, n)}: a {d['op']} node takes no operands")
    d.setdefault("attrs", {})
    if d["op"] in ("param", "const"):
        if "value" not in d:
            raise GraphError(f"{_where(H, n)}: a {d['op']} node needs a 'value'")
        v = np.array(d["value"], dtype=None if d.get("type") is None
                     else TensorType.from_json(d["type"]).dtype)
        d["value"] = v
        t = TensorType(v.dtype.name, v.shape)
        if d.get("type") is not None and TensorType.from_json(d["type"]) != t:
            raise GraphError(f"{_where(H, n)}: stored type {TensorType.from_json(d['type'])} "
                             f"but its value is {t}")
        d["type"] = t
    elif d.get("type") is None:
        raise GraphError(f"{_where(H, n)}: an input node needs a 'type' (dtype, shape)")
    else:
        d["type"] = TensorType.from_json(d["type"])


def _ports(H, n, opdef):
    keys = sorted(k for _, _, k in H.in_edges(n, keys=True))
    if keys != list(range(len(keys))):
        raise GraphError(f"{_where(H, n)}: operand ports must be 0..{len(keys) - 1}, got {keys}")
    if opdef.arity is not None and len(keys) != opdef.arity:
        raise GraphError(f"{_where(H, n)}: {opdef.name} takes {opdef.arity} operands, "
                         f"got {len(keys)}")
    return operands(H, n)


def _check_acyclic(H):
    # A topological sort (linear) first: nx.find_cycle's edge DFS took minutes on a
    # 4,500-node graph JSON (fuzz seed 1307), so it only runs to name a cycle that is there.
    if nx.is_directed_acyclic_graph(H):
        return
    try:
        cycle = nx.find_cycle(H)
    except nx.NetworkXNoCycle:
        return
    raise GraphError("the graph has a cycle: " + " -> ".join(str(u) for u, *_ in cycle)
                     + f" -> {cycle[0][0]}")


def verify_unit(G: nx.MultiDiGraph, after: str = "") -> None:
    """Check a compile unit in place (used after every pass in tests); raise GraphError."""
    from ..ops.registry import get_op
    _check_acyclic(G)
    for n in G.nodes:
        d = G.nodes[n]
        if d["op"] in LEAVES:
            continue
        opdef = get_op(d["op"])
        args = _ports(G, n, opdef)
        t = opdef.infer([G.nodes[a]["type"] for a in args], d["attrs"])
        if t != d["type"]:
            raise GraphError(f"after {after}: {_where(G, n)} has type {d['type']} "
                             f"but infer gives {t}")
    for r in list(G.graph["outputs"]) + [v for _, v in G.graph["updates"]]:
        if r not in G:
            raise GraphError(f"after {after}: root {r} is missing")
