"""The data_parallel pass: each gradient an update reads goes through an allreduce first.

Gradients that feed `updates` are packed, in the order backward makes them (the last layer's
first, as in PyTorch's DDP), into buckets of one dtype each and at most `bucket_bytes`
(a larger gradient gets a bucket of its own): grad_pack(mean) → allreduce(sum) → grad_unpack
views. Scalar float outputs (a loss, an accuracy) are averaged the same way. The mean of
the processes' gradients of a mean loss over equal shards is the gradient of the mean over
the global batch, so N processes compute what one does, up to float reassociation.
The schedule is static and the same on every process, as MPI and NCCL require.

Random draws whose leading size is known only at call time (the batch: a dropout mask) are
marked `sharded`: each process draws the elements of its shard's place in the global batch
(rank * local size onwards), so dropout too gives the one-process numbers. Draws inside a loop
body are not marked (they are drawn per process, as in other frameworks).
"""
from __future__ import annotations

from math import prod

import networkx as nx

from ..ir.errors import FlowcError
from ..ir.graph import downstream
from ..ops.registry import canonical_attrs, get_op
from .rewrite import copy_graph, fresh_ids, log, topo, upstream

DEFAULT_BUCKET_BYTES = 4 << 20  # CPU: MPI's in-place bandwidth peaks at 256 KB-4 MB


def data_parallel(G: nx.MultiDiGraph, bucket_bytes=DEFAULT_BUCKET_BYTES,
                  reduce_outputs=True) -> nx.MultiDiGraph:
    """Insert the gradient exchange (see the module docstring); bucket_bytes=0: one bucket
    per gradient. Returns G unchanged when there is nothing to reduce."""
    updated = {p for p, _ in G.graph["updates"]}
    need = upstream(G, [v for _, v in G.graph["updates"]])
    grads = [n for n in topo(G) if n in need and G.nodes[n].get("grad_of") is not None
             and G.nodes[n]["grad_of"][1] in updated]
    grad_set = set(grads)
    metrics = [n for n in dict.fromkeys(G.graph["outputs"]) if n not in grad_set
               and G.nodes[n]["type"].ndim == 0 and G.nodes[n]["type"].dtype.startswith("float")
               and G.nodes[n]["op"] not in ("input", "param", "const")] if reduce_outputs else []
    draws = [n for n in G.nodes if G.nodes[n]["op"] == "random_uniform"
             and G.nodes[n]["type"].shape[:1] == (None,)]
    if not grads and not metrics and not draws:
        return G
    for n in grads:
        if None in G.nodes[n]["type"].shape:
            raise FlowcError(f"data_parallel: the gradient %{n} has a size known only at run "
                             f"time {G.nodes[n]['type'].shape}; bucket layouts need static shapes")
    H = copy_graph(G)
    ids = fresh_ids(H)
    for n in draws:
        # A draw as long as the batch (a dropout mask): each process draws its shard's rows of
        # the global batch's numbers, so N processes drop what one process does.
        H.nodes[n]["attrs"] = dict(H.nodes[n]["attrs"], sharded=True)
        log(H, "data_parallel: random draw keyed by the global example", n)
    # Readers of a gradient that themselves lead to another gradient keep the local value
    # (it is summed into that gradient, which is reduced in turn).
    inner = upstream(H, grads) if grads else set()
    for bucket in buckets(H, grads, bucket_bytes):
        views = _exchange(H, bucket, ids, "backward")
        for g, u in zip(bucket, views):
            for _, v, k in list(H.out_edges(g, keys=True)):
                if v not in inner and v != u and H.nodes[v]["op"] != "grad_pack":
                    H.remove_edge(g, v, key=k)
                    H.add_edge(u, v, key=k)
            H.graph["updates"] = [(p, u if x == g else x) for p, x in H.graph["updates"]]
            H.graph["outputs"] = [u if x == g else x for x in H.graph["outputs"]]
            log(H, "data_parallel: gradient allreduce", g)
    local = _local_updates(H) if reduce_outputs else []
    for bucket in buckets(H, local, 1 << 30):
        for v, u in zip(bucket, _exchange(H, bucket, ids, "forward")):
            H.graph["updates"] = [(p, u if x == v else x) for p, x in H.graph["updates"]]
            log(H, "data_parallel: state update mean over processes", v)
    moved = {}
    for bucket in buckets(H, metrics, 0 if not metrics else 1 << 30):
        for m, u in zip(bucket, _exchange(H, bucket, ids, "forward")):
            moved[m] = u
            log(H, "data_parallel: output mean over processes", m)
    H.graph["outputs"] = [moved.get(x, x) for x in H.graph["outputs"]]
    H.graph.pop("_roots", None)
    return H


def _local_updates(H):
    """Float updates computed from the process's own rows other than through a reduced
    gradient (BatchNorm's running statistics): their mean over the processes keeps every
    process's state the same. Updates from reduced gradients (SGD, Adam) are already equal."""
    batch = [n for n in H.nodes if H.nodes[n]["op"] == "input"
             and H.nodes[n]["type"].shape[:1] == (None,)]
    reduced = {n for n in H.nodes if H.nodes[n]["op"] == "allreduce"}
    local = downstream(H, batch, blocked=reduced)
    return list(dict.fromkeys(v for _, v in H.graph["updates"] if v in local
                              and H.nodes[v]["type"].dtype.startswith("float")
                              and None not in H.nodes[v]["type"].shape))


def buckets(G, nodes, cap):
    """`nodes` (in order) grouped greedily into lists of one dtype, each at most `cap` bytes."""
    out, open_ = [], {}
    for n in nodes:
        t = G.nodes[n]["type"]
        size = prod(t.shape) * _itemsize(t.dtype)
        b = open_.get(t.dtype)
        if b is not None and b[1] + size > cap:
            out.append(b[0])
            b = None
        if b is None:
            b = open_[t.dtype] = [[], 0]
        b[0].append(n)
        b[1] += size
    out.extend(b[0] for b in open_.values())
    out.sort(key=lambda b: nodes.index(b[0]))  # reduce in the order the values are made
    return out


def _itemsize(dtype):
    import numpy as np
    return np.dtype(dtype).itemsize


def _exchange(H, bucket, ids, phase):
    """Add grad_pack(mean) → allreduce(sum) → grad_unpack nodes for `bucket`; the unpack ids."""
    trace = H.nodes[bucket[0]].get("trace")  # errors name the user's line of the first value
    # The mean's 1/N is taken while packing (a copy made anyway), not in a pass of its own
    # after the reduction; N is read at run time, so the Program fits any number of processes.
    pack = _add(H, next(ids), "grad_pack", bucket, {"mean": True}, phase, trace=trace)
    red = _add(H, next(ids), "allreduce", [pack], {"op": "sum"}, phase, trace=trace)
    views, offset = [], 0
    for g in bucket:
        shape = H.nodes[g]["type"].shape
        views.append(_add(H, next(ids), "grad_unpack", [red],
                          {"offset": offset, "shape": shape}, phase, like=g))
        offset += prod(shape)
    return views


def _add(H, nid, op, args, attrs, phase, like=None, trace=None):
    opdef = get_op(op)
    attrs = canonical_attrs(opdef, attrs)
    t = opdef.infer([H.nodes[a]["type"] for a in args], attrs)
    d = H.nodes[like] if like is not None else {}
    H.add_node(nid, op=op, attrs=attrs, type=t, name=d.get("name"), phase=phase,
               trace=d.get("trace", trace))
    for port, a in enumerate(args):
        H.add_edge(a, nid, key=port)
    return nid
