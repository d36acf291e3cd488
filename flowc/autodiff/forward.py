"""Forward-mode autodiff (jvp / Rop) from per-op jvp rules, and vjp / Lop with a cotangent."""
from __future__ import annotations

import networkx as nx

from ..ir.graph import downstream, upstream
from ..ir.errors import GradError
from ..ir.tensor import Tensor
from ..ir.types import is_float
from ..ops import api as F
from ..ops.registry import JvpCtx, get_op
from .reverse import _check_graph, _prune, vjp_many


def _listify(v):
    return (True, [v]) if isinstance(v, Tensor) or not isinstance(v, (list, tuple)) else (False, list(v))


def _as_like(v, like, what):
    t = F.as_tensor(v, like=like) if not isinstance(v, Tensor) else v
    if t.ndim != like.ndim or any(a is not None and b is not None and a != b
                                  for a, b in zip(t.type.shape, like.type.shape)):
        raise GradError(f"{what} for {like.describe()} has shape {t.type.shape}, expected {like.type.shape}")
    return F.cast(t, like.dtype) if t.dtype != like.dtype else t


def _may_be_smaller(opdef, ins, ts, out):
    """Can an elementwise op's tangent be smaller than its output at run time?

    The tangent is the broadcast of the operands that carry one; an operand without a tangent
    (a condition, an integer, a constant) may broadcast the output past it where a `None` dim
    turns out to be 1 (`where(c, relu(x), y)` with x (1, None) = (1, 1) and y (3,)). The
    static shapes agree then, so only the run time can tell: broadcast_like decides there, and
    the shape-class pass drops it where the shapes are proven equal."""
    if not opdef.elementwise or None not in out.type.shape:
        return False
    return any(t is None and any(d != 1 for d in x.type.shape) for x, t in zip(ins, ts))


def jvp(outputs, wrt, tangents):
    """Forward mode: J(outputs, wrt) @ tangents, one result per output, shaped like it.

    Built from each op's jvp rule (never by transposing a vjp). Single tensors or lists.
    """
    single, outs = _listify(outputs)
    _, wrts = _listify(wrt)
    _, tans = _listify(tangents)
    if len(wrts) != len(tans):
        raise GradError(f"jvp got {len(tans)} tangents for {len(wrts)} wrt tensors")
    _check_graph(outs + wrts)
    graph = outs[0].graph
    G = graph.nx
    first_new = graph._next_id
    tangent = {}
    for w, t in zip(wrts, tans):
        with graph.emitting("backward", origin=w.id):
            tangent[w.id] = _as_like(t, w, "tangent")
    down = downstream(G, list(tangent)) - set(tangent)
    up = upstream(G, [o.id for o in outs])
    path = (down & up) - set(tangent)
    for nid in sorted(path) if all(u < v for v in path for u in G.predecessors(v)) \
            else nx.topological_sort(G.subgraph(path)):
        node = G.nodes[nid]
        ins = [Tensor(graph, u) for u in graph.operands(nid)]
        ts = [tangent.get(x.id) if is_float(x.dtype) else None for x in ins]
        if all(t is None for t in ts) or not is_float(node["type"].dtype):
            continue
        opdef = get_op(node["op"])
        if not opdef.differentiable:
            continue
        if opdef.jvp is None:
            raise GradError(f"op {node['op']!r} has no forward-mode (jvp) rule; use reverse mode")
        out = Tensor(graph, nid)
        with graph.emitting("backward", origin=nid):
            t = opdef.jvp(JvpCtx(ins, ts, out, node["attrs"]))
            if t is not None:
                if t.type.shape != out.type.shape or _may_be_smaller(opdef, ins, ts, out):
                    t = F.broadcast_like(t, out)
                if t.dtype != out.dtype:
                    t = F.cast(t, out.dtype)
                tangent[nid] = t
    results = []
    for o in outs:
        if o.id in tangent:
            results.append(tangent[o.id])
        else:
            with graph.emitting("backward", origin=o.id):
                results.append(F.zeros_like(o) if is_float(o.dtype) else F.zeros_like(F.cast(o, "float64")))
    _prune(graph, first_new, [r.id for r in results])
    return results[0] if single else results


def vjp(outputs, wrt, cotangents, disconnected="zero"):
    """Reverse mode with explicit cotangents: sum_i cotangents[i] @ J(outputs[i], wrt).

    Results are shaped like `wrt` (Theano's Lop convention). Single tensors or lists.
    """
    _, outs = _listify(outputs)
    single, wrts = _listify(wrt)
    _, cts = _listify(cotangents)
    if len(outs) != len(cts):
        raise GradError(f"vjp got {len(cts)} cotangents for {len(outs)} outputs")
    _check_graph(outs + wrts)
    graph = outs[0].graph
    with graph.emitting("backward", origin=outs[0].id):
        cts = [_as_like(c, o, "cotangent") for c, o in zip(cts, outs)]
    res = vjp_many(outs, cts, wrts, disconnected)
    return res[0] if single else res


Rop = jvp
Lop = vjp
