"""The batching transform (in the spirit of JAX's vmap) over graph fragments.

batch(outputs, {x: xb, ...}) rewrites the fragment that computes `outputs` from the tensors
x so that it runs over a new leading axis: each x is replaced by xb of shape (B,) + x.shape,
and every op on the way is replaced by its batching rule (OpDef.batch; elementwise ops share
one rule). The original nodes are left untouched; the batched ones are new nodes.
"""
from __future__ import annotations

import networkx as nx

from ..ir.graph import downstream, upstream
from ..ir.errors import GradError, ShapeError
from ..ir.tensor import Tensor
from ..ops import api as F
from ..ops.batchutil import batch_elementwise, materialize
from ..ops.build import apply
from ..ops.registry import BatchCtx, get_op


def batch(outputs, replacements):
    """Outputs computed over a new leading axis; `replacements` maps tensors to batched ones."""
    single = isinstance(outputs, Tensor)
    outs = [outputs] if single else list(outputs)
    if not replacements:
        raise ShapeError("batch needs at least one tensor to batch over")
    graph = outs[0].graph
    G = graph.nx
    vals, size = {}, None
    same = {}  # node -> an unbatched replacement (for values that do not vary with the batch)
    for x, xb in replacements.items():
        if xb.ndim != x.ndim + 1 or any(a is not None and b is not None and a != b
                                        for a, b in zip(xb.type.shape[1:], x.type.shape)):
            raise ShapeError(f"batched value for {x.describe()} must have shape (B,) + "
                             f"{x.type.shape}, got {xb.type.shape}")
        if size is not None and xb.type.shape[0] is not None and xb.type.shape[0] != size:
            raise ShapeError(f"batched values disagree on the batch size ({size} vs {xb.type.shape[0]})")
        size = size if xb.type.shape[0] is None else xb.type.shape[0]
        vals[x.id] = xb
    down = downstream(G, list(vals)) - set(vals)
    up = upstream(G, [o.id for o in outs])
    path = (down & up) - set(vals)
    for nid in nx.topological_sort(G.subgraph(path)):
        node = G.nodes[nid]
        ins = [Tensor(graph, u) for u in graph.operands(nid)]
        flags = [u.id in vals for u in ins]
        args = [vals.get(u.id, same.get(u.id, u)) for u in ins]
        if not any(flags):
            if any(u.id in same for u in ins):
                # Operands that are the same for every entry, but rebuilt: rebuild this too.
                with graph.emitting(node["phase"], node.get("origin"), node.get("trace")):
                    same[nid] = apply(node["op"], args, **node["attrs"])
            continue
        opdef = get_op(node["op"])
        rule = opdef.batch or (batch_elementwise if opdef.elementwise else None)
        if rule is None:
            raise GradError(f"op {node['op']!r} has no batching rule")
        with graph.emitting(node["phase"], node.get("origin"), node.get("trace")):
            res = rule(BatchCtx(args, flags, Tensor(graph, nid), node["attrs"], node["op"], size))
        if isinstance(res, tuple):  # (tensor, False): equal for every batch entry
            same[nid] = res[0]
            continue
        vals[nid] = res
    ref = next(iter(vals.values()))
    results = []
    for o in outs:
        if o.id in vals:
            results.append(vals[o.id])
        else:  # does not depend on the batched tensors: the same value for every batch entry
            results.append(materialize(same.get(o.id, o), ref))
    return results[0] if single else results
