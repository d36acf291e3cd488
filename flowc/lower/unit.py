"""The compile unit: a copy of the part of a user's graph that a function needs.

Its networkx graph-level attributes say what the function is:
  G.graph["inputs"]  = [node id, ...]        in call order
  G.graph["outputs"] = [node id, ...]        returned in order
  G.graph["updates"] = [(param id, value id), ...]
  G.graph["log"]     = [(pass or rule, node id, trace), ...]   filled by passes (explain)
The user's graph is never mutated: passes work on this copy.
"""
from __future__ import annotations

import networkx as nx

from ..ir.errors import FlowcError, GraphError
from ..ir.tensor import Tensor
from ..ops import api as F
from ..ir.graph import copy_graph, downstream, operands, topological, upstream
from ..passes.rewrite import replace


def build_unit(inputs, outputs, updates, givens=()) -> nx.MultiDiGraph:
    """Check the function's declaration and copy the needed subgraph out of the user's graph.

    `givens` (old, new) pairs make the function compute with `new` wherever `old` was used.
    """
    givens = list(givens.items()) if isinstance(givens, dict) else list(givens or ())
    graph = _graph_of(inputs + outputs + [t for pair in updates + givens for t in pair])
    for old, new in givens:
        if old.dtype != new.dtype or old.ndim != new.ndim:
            raise FlowcError(f"givens: {old.describe()} cannot be replaced by {new.describe()} "
                             "(dtype and number of dimensions must match)")
    for i, x in enumerate(inputs):
        if x.op != "input":
            raise FlowcError(f"function inputs must be flowc.input tensors; input {i} is "
                             f"{x.describe()}" + (" (params are state, not inputs)"
                                                  if x.op == "param" else ""))
    if len({x.id for x in inputs}) != len(inputs):
        raise FlowcError("the same input is listed twice in the function's inputs")
    seen = set()
    for p, v in updates:
        if p.op != "param":
            raise FlowcError(f"updates must target params; {p.describe()} is not one")
        if p.id in seen:
            raise FlowcError(f"param {p.describe()} has two updates")
        seen.add(p.id)
        if p.ndim != v.ndim or any(a is not None and b is not None and a != b
                                   for a, b in zip(p.type.shape, v.type.shape)):
            raise FlowcError(f"update for {p.describe()} has shape {v.type.shape}, "
                             f"expected {p.type.shape} (from {v.describe()})")
    G = graph.nx
    if givens:
        G = copy_graph(G)
        G.graph.update(outputs=[t.id for t in outputs], updates=[(p.id, v.id) for p, v in updates])
        for old, new in givens:
            if old.id in upstream(G, [new.id]):
                raise FlowcError(f"givens: the replacement for {old.describe()} depends on it")
            replace(G, old.id, new.id)
        outputs = [Tensor(graph, n) for n in G.graph["outputs"]]
        updates = [(p, Tensor(graph, v)) for (p, _), (_, v) in zip(updates, G.graph["updates"])]
    roots = [t.id for t in outputs] + [v.id for _, v in updates]
    needed = upstream(G, roots) | {x.id for x in inputs} | {p.id for p, _ in updates}
    given = {x.id for x in inputs}
    missing = [n for n in needed if G.nodes[n]["op"] == "input" and n not in given]
    if missing:
        names = ", ".join(Tensor(graph, n).describe() for n in sorted(missing))
        raise FlowcError(f"the outputs depend on inputs that are not in the function's "
                         f"inputs: {names}")
    H = copy_graph(G)
    H.remove_nodes_from([n for n in G if n not in needed])
    H.graph.update(inputs=[x.id for x in inputs], outputs=[t.id for t in outputs],
                   updates=[(p.id, v.id) for p, v in updates], log=[])
    if givens:
        _retype(H, downstream(H, [new.id for _, new in givens]))
    _mark_update_phase(H)
    return H, graph


def _retype(H, nodes):
    """Infer the types again below a givens replacement (its shape may be better known)."""
    from ..ops.registry import get_op
    for n in topological(H):
        d = H.nodes[n]
        if n in nodes and d["op"] not in ("input", "param", "const"):
            d["type"] = get_op(d["op"]).infer([H.nodes[a]["type"] for a in operands(H, n)],
                                              d["attrs"])


def with_default_updates(outputs, updates, skip=False):
    """`updates` plus the default updates (random stream states) of the params the outputs
    and update values use and no update targets; `skip`: True for none, or params to leave."""
    tensors = [t for t in outputs if isinstance(t, Tensor)] + [
        t for pair in updates for t in pair if isinstance(t, Tensor)]
    if skip is True or not tensors:
        return updates
    graph = tensors[0].graph
    defaults = getattr(graph, "default_updates", None)
    if not defaults:
        return updates
    skipped = {p.id for p in (skip or ())} | {p.id for p, _ in updates if isinstance(p, Tensor)}
    used = upstream(graph.nx, [t.id for t in tensors if t.graph is graph])
    return list(updates) + [(Tensor(graph, p), Tensor(graph, v)) for p, v in defaults.items()
                            if p in used and p not in skipped]


def cast_updates(updates):
    """Cast update values whose dtype differs from their param's (same kind only)."""
    out = []
    for p, v in updates:
        if not isinstance(v, Tensor):
            v = F.as_tensor(v, like=p)
        if v.dtype != p.dtype:
            import numpy as np
            if not np.can_cast(v.dtype, p.dtype, "same_kind"):
                raise FlowcError(f"update for {p.describe()} has dtype {v.dtype}, which does "
                                 f"not convert to {p.dtype} (from {v.describe()})")
            v = F.cast(v, p.dtype)
        out.append((p, v))
    return out


def _mark_update_phase(H):
    """Nodes that only feed updates (not outputs) are drawn and reported as the update phase."""
    out_anc = upstream(H, H.graph["outputs"])
    for n in upstream(H, [v for _, v in H.graph["updates"]]):
        d = H.nodes[n]
        if n not in out_anc and d["phase"] == "forward" and d["op"] not in (
                "input", "param", "const"):
            d["phase"] = "update"


def _graph_of(tensors):
    graphs = {id(t.graph): t.graph for t in tensors if isinstance(t, Tensor)}
    bad = [t for t in tensors if not isinstance(t, Tensor)]
    if bad:
        raise FlowcError(f"expected Tensors, got {type(bad[0]).__name__}: {bad[0]!r}")
    if len(graphs) != 1:
        raise GraphError("a function's inputs, outputs and updates must come from one graph"
                         if graphs else "a function needs at least one input, output or update")
    return next(iter(graphs.values()))
