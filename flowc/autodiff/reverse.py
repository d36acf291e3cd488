"""Reverse-mode autodiff: add backward nodes for d(cost)/d(wrt) to the same graph."""
from __future__ import annotations

import warnings

import networkx as nx

from ..ir.errors import DisconnectedGradientWarning, GradError
from ..ir.graph import downstream, paused_gc, upstream
from ..ir.tensor import Tensor
from ..ir.trace import user_stacklevel
from ..ir.types import TupleType, is_float
from ..ops import api as F
from ..ops.registry import VjpCtx, get_op
from .stable_chain import stable_vjp


@paused_gc
def grad(cost, wrt, disconnected="warn", consider_constant=None):
    """Symbolic gradient of a scalar `cost` with respect to `wrt` (a tensor or a list of them).

    Backward nodes are added to cost's graph with phase="backward" and `origin` set to the
    forward node whose rule made them. A list in gives a list out, one tensor in gives one out.
    For a `wrt` the cost does not depend on, `disconnected="warn"` (the default) returns
    zeros with a DisconnectedGradientWarning naming it, `"zero"` returns zeros silently and
    `"raise"` raises GradError (Theano's default). Grad of grad works: backward nodes are ordinary nodes.
    `consider_constant` lists tensors treated as constants: no gradient flows through them.
    """
    single = isinstance(wrt, Tensor)
    wrts = [wrt] if single else list(wrt)
    _check(cost, wrts, disconnected)
    graph = cost.graph
    with graph.emitting("backward", origin=cost.id):
        seed = F.constant(1.0, dtype=cost.dtype, graph=graph)
    grads = _backprop(cost, {cost.id: seed}, wrts, disconnected,
                      blocked={t.id for t in consider_constant or ()})
    return grads[0] if single else grads


def vjp_many(outputs, cotangents, wrts, disconnected="zero"):
    """Gradients of sum_i <outputs[i], cotangents[i]> with respect to wrts (Lop)."""
    if not outputs:
        raise GradError("vjp needs at least one output")
    _check_graph(outputs + wrts)
    seeds = {}
    for o, ct in zip(outputs, cotangents):
        seeds[o.id] = seeds[o.id] + ct if o.id in seeds else ct
    return _backprop(outputs[0], seeds, wrts, disconnected)


def _check(cost, wrts, disconnected):
    if not isinstance(cost, Tensor):
        raise GradError(f"grad needs a Tensor cost, got {type(cost).__name__}")
    if cost.ndim != 0:
        raise GradError(f"grad needs a scalar cost, but {cost.describe()} has shape "
                        f"{cost.type.shape}; reduce it first (flowc.sum or flowc.mean), or use "
                        "flowc.vjp with an explicit cotangent")
    if not is_float(cost.dtype):
        raise GradError(f"cost {cost.describe()} is not floating point; it has no gradient")
    if disconnected not in ("warn", "zero", "raise"):
        raise GradError(f"disconnected must be 'warn', 'zero' or 'raise', got {disconnected!r}")
    _check_graph([cost] + wrts)


def _check_graph(tensors):
    for t in tensors:
        if not isinstance(t, Tensor):
            raise GradError(f"expected Tensors, got {type(t).__name__}")
        if t.graph is not tensors[0].graph:
            raise GradError(f"{t.describe()} is in another graph than {tensors[0].describe()}")
    for t in tensors[1:]:
        if not is_float(t.dtype):
            raise GradError(f"cannot differentiate with respect to {t.describe()}: it is "
                            f"{t.dtype}, and gradients exist only for floating tensors")


def _backprop(anchor, seeds, wrts, disconnected, blocked=frozenset()):
    graph = anchor.graph
    G = graph.nx
    first_new = graph._next_id
    wrt_ids = {t.id for t in wrts}
    # Nodes on a path wrt -> seeds: descendants of some wrt that are ancestors of some seed.
    down = downstream(G, wrt_ids, blocked)
    up = upstream(G, seeds)
    on_path = down & up
    contribs = {nid: [ct] for nid, ct in seeds.items()}
    order = sorted(on_path, reverse=True)  # ids grow with creation, so operands come first
    if not _ids_topological(G, on_path):
        order = list(reversed(list(nx.topological_sort(G.subgraph(on_path)))))
    for nid in order:
        if nid in wrt_ids or nid not in contribs:
            continue
        node = G.nodes[nid]
        if node["op"] == "part":  # one result of a loop: its cotangent waits for the loop
            if is_float(node["type"].dtype):
                with graph.emitting("backward", origin=nid):
                    g = _total(contribs.pop(nid))
                tup = graph.operands(nid)[0]
                contribs.setdefault(tup, []).append((node["attrs"]["index"], g))
            continue
        opdef = get_op(node["op"])
        if not opdef.differentiable or not is_float(node["type"].dtype) or opdef.vjp is None:
            continue
        inputs = [Tensor(graph, u) for u in graph.operands(nid)]
        with graph.emitting("backward", origin=nid):
            if isinstance(node["type"], TupleType):  # a list, one cotangent (or None) per part
                g = [None] * len(node["type"].parts)
                for i, ct in contribs.pop(nid):
                    g[i] = ct if g[i] is None else g[i] + ct
            else:
                g = _total(contribs.pop(nid))
            fused = None if isinstance(g, list) else stable_vjp(graph, nid, g, on_path)
            if fused is not None:
                pairs = [(Tensor(graph, z), ct) for z, ct in fused]
            else:
                pairs = zip(inputs, opdef.vjp(VjpCtx(inputs, Tensor(graph, nid), g,
                                                     node["attrs"])))
            for x, ct in pairs:
                if ct is None or x.id not in on_path or not is_float(x.dtype):
                    continue
                if isinstance(ct, list):  # a tuple operand: one cotangent per part
                    contribs.setdefault(x.id, []).extend(
                        (i, g) for i, g in enumerate(ct) if g is not None)
                    continue
                if not opdef.unbroadcasts or ct.ndim != x.ndim:
                    ct = F.unbroadcast(ct, x)
                if ct.dtype != x.dtype:
                    ct = F.cast(ct, x.dtype)
                contribs.setdefault(x.id, []).append(ct)
    out = []
    for w in wrts:
        if w.id in contribs:
            with graph.emitting("backward", origin=w.id):
                gw = _total(contribs[w.id])
                if gw.type.shape != w.type.shape:
                    gw = F.broadcast_like(gw, w)
        elif disconnected == "raise":
            raise GradError(f"the cost does not depend on {w.describe()} "
                            "(pass disconnected='zero' to get zeros instead)")
        else:
            if disconnected == "warn":
                warnings.warn(f"fc.grad: the cost does not depend on {w.describe()}: its "
                              f"gradient is zeros (disconnected='zero' says that is meant, "
                              f"'raise' makes it an error)", DisconnectedGradientWarning,
                              stacklevel=user_stacklevel())
            with graph.emitting("backward", origin=w.id):
                gw = F.zeros_like(w)
        if gw.id >= first_new:
            G.nodes[gw.id]["grad_of"] = (anchor.id, w.id)
            if G.nodes[gw.id].get("name") is None:
                G.nodes[gw.id]["name"] = f"d{_label(anchor)}/d{_label(w)}"
        out.append(gw)
    _prune(graph, first_new, [g.id for g in out])
    return out


def _total(parts):
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _ids_topological(G, nodes) -> bool:
    return all(u < v for v in nodes for u in G.predecessors(v))


def _label(t):
    return t.name or f"%{t.id}"


def _prune(graph, first_new, keep):
    """Drop backward nodes made by this call that no returned gradient needs."""
    G = graph.nx
    live = set(keep)
    stack = list(keep)
    while stack:
        v = stack.pop()
        for u in G.predecessors(v):
            if u >= first_new and u not in live:
                live.add(u)
                stack.append(u)
    G.remove_nodes_from([n for n in list(G.nodes) if n >= first_new and n not in live])
