"""Specialization: a matrix product and the scaled add that consumes it become one GEMM; a
conv and the per-channel bias added to it become one conv_bias; max pooling's gradient
scatter over disjoint windows assigns instead of summing.

BLAS computes C := alpha * A @ B + beta * C in one call, so `x @ W + b` (a layer) and
`W - lr * (X.T @ g)` (an SGD update of a weight matrix) need no second pass over the
product. Transposed operands stay views: the runtime hands BLAS the transpose flags. A
conv's bias is added to its GEMM's (N * positions, O) rows before the copy to (N, O, ...)
layout, in cache, instead of in a pass of its own over the output. Windows that do not
overlap (stride >= kernel in every dim) pick distinct positions, so put_along_axis_grad of
their picks has nothing to add up (`unique`: one assignment, 4x faster than the float64
bincount a sum needs).
"""
from __future__ import annotations

import networkx as nx

from ..ops.conv import bias_channels
from .algebra import _const
from .cleanup import prune
from .rewrite import (add_like, copy_graph, fresh_ids, log, move_roots, operands, replace,
                      roots, topo)
from .shapes import shape_read


def _shape_readers(H, n):
    """Edges (consumer, port) through which n is read for its shape only."""
    return [(v, k) for _, v, k in H.out_edges(n, keys=True) if shape_read(H, v, k)]


def _single_consumer(H, n, keep):
    """The one node that reads n's values (through one edge), or None; returned values and
    values read twice stay as they are. Readers of n's shape alone do not count."""
    if n in keep:
        return None
    shape_only = _shape_readers(H, n)
    if H.out_degree(n) - len(shape_only) != 1:
        return None
    return next(v for _, v, k in H.out_edges(n, keys=True) if (v, k) not in shape_only)


def _move_shape_readers(H, n, new):
    """Shape-only readers of n read `new` instead (same type), so n can be dropped."""
    for v, k in _shape_readers(H, n):
        H.remove_edge(n, v, key=k)
        H.add_edge(new, v, key=k)


def _scalar(H, n):
    v = _const(H, n)
    return float(v.reshape(())) if v is not None and v.size == 1 and v.dtype.kind == "f" \
        else None


def _scaled(H, m, keep):
    """(node carrying k * (A @ B), k, its consumer): m itself, or mul(m, scalar const)."""
    u = _single_consumer(H, m, keep)
    if u is None:
        return None
    if H.nodes[u]["op"] == "mul":
        a, b = operands(H, u)
        k = _scalar(H, b) if a == m else _scalar(H, a) if b == m else None
        if k is not None and H.nodes[u]["type"] == H.nodes[m]["type"]:
            n = _single_consumer(H, u, keep)
            return (u, k, n) if n is not None else None
    return m, 1.0, u


def _gemm_form(H, m, keep):
    """(A, B, C, alpha, beta, node replaced, k * (A @ B) node) when m's value flows into
    C +- k * (A @ B)."""
    found = _scaled(H, m, keep)
    if found is None:
        return None
    side, k, n = found
    op = H.nodes[n]["op"]
    if op not in ("add", "sub") or H.nodes[n]["type"] != H.nodes[m]["type"]:
        return None
    x, y = operands(H, n)
    if x == y:
        return None
    if op == "add":
        c, alpha, beta = (y if x == side else x), k, 1.0
    elif y == side:
        c, alpha, beta = x, -k, 1.0
    else:
        c, alpha, beta = y, k, -1.0
    if H.nodes[c]["type"].dtype != H.nodes[m]["type"].dtype:
        return None
    a, b = operands(H, m)
    return a, b, c, alpha, beta, n, side


def _conv_bias_form(H, m, keep):
    """(bias, add node) when conv m's value flows only into m + b, b per channel."""
    n = _single_consumer(H, m, keep)
    if n is None or H.nodes[n]["op"] != "add" or H.nodes[n]["type"] != H.nodes[m]["type"]:
        return None
    x, y = operands(H, n)
    b = y if x == m else x
    return (b, n) if b != m and bias_channels(H.nodes[m]["type"], H.nodes[b]["type"]) \
        else None


def _disjoint_picks(H, m):
    """Whether put_along_axis_grad m scatters at max pooling's picks from windows that do
    not overlap into rows that are the pooled input's (image, channel) pairs: the indices
    are pool_argmax's reshaped to rank 3, and the scattered-into value is the pooled input
    reshaped to (N, C, -1) with its own N and C, as flowc.max_pool writes them. The kernel
    assigns only where the indices' leading shape is then that (N, C) too, so each of
    their rows is one (image, channel) of the picks: distinct."""
    d = H.nodes[m]
    x3, idx, _ = operands(H, m)
    if d["attrs"].get("unique") or d["type"].ndim != 3 or d["attrs"]["axis"] % 3 != 2:
        return False
    views = ("reshape", "reshape_dyn")
    if H.nodes[idx]["op"] not in views or H.nodes[x3]["op"] not in views:
        return False
    pool = operands(H, idx)[0]
    if H.nodes[pool]["op"] != "pool_argmax" or H.nodes[idx]["type"].ndim != 3:
        return False
    a, x = H.nodes[pool]["attrs"], operands(H, pool)[0]
    if any(s < k for k, s in zip(a["kernel"], a["stride"])):
        return False
    shape, args = H.nodes[x3]["attrs"]["shape"], operands(H, x3)
    n, c = H.nodes[x]["type"].shape[:2]
    if args[0] != x or len(shape) != 3 or shape[2] != -1 or c is None or shape[1] != c:
        return False
    if shape[0] == ("dim", 0):  # the batch of x3's own operand, x
        return True
    if shape[0] == "arg":  # the batch from a dim node: dim 0 of x
        dim = args[1]
        return H.nodes[dim]["op"] == "dim" and H.nodes[dim]["attrs"]["axis"] == 0 and \
            operands(H, dim)[0] == x
    return n is not None and shape[0] == n


def _candidate(G, m):
    d = G.nodes[m]
    if d["op"] in ("put_along_axis_grad", "conv"):
        return True
    if d["op"] != "matmul" or d["type"].dtype not in ("float32", "float64"):
        return False
    return all(G.nodes[a]["type"].ndim == 2 for a in operands(G, m))


def specialize(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Fold `C +- k * (A @ B)` (2-D float A, B; C broadcasting into the product) into one
    gemm node, `conv(x, w) + b` (b per channel) into one conv_bias node, and mark max
    pooling's scatter over disjoint windows `unique`. Guarantee: same values (up to BLAS's
    rounding; an assigned -0.0 stays -0.0 where a sum gave 0.0) and types."""
    H = None
    for m in topo(G):
        if not _candidate(G, m):
            continue
        if H is None:  # copy on the first match only: no-op passes return their input
            H = copy_graph(G)
            keep = set(roots(H))
            ids = fresh_ids(H)
            moved = {}
        if m not in H:
            continue
        if H.nodes[m]["op"] == "put_along_axis_grad":
            if _disjoint_picks(H, m):
                H.nodes[m]["attrs"] = dict(H.nodes[m]["attrs"], unique=True)
                log(H, "unique_scatter", m)
            continue
        if H.nodes[m]["op"] == "conv":
            form = _conv_bias_form(H, m, keep)
            if form is not None:
                b, n = form
                x, w = operands(H, m)
                new = add_like(H, n, "conv_bias", [x, w, b], dict(H.nodes[m]["attrs"]),
                               next(ids))
                _move_shape_readers(H, m, new)
                replace(H, n, new, moved)
                log(H, "conv_bias", n)
            continue
        form = _gemm_form(H, m, keep)
        if form is None:
            continue
        a, b, c, alpha, beta, n, side = form
        new = add_like(H, n, "gemm", [a, b, c], dict(alpha=alpha, beta=beta), next(ids))
        for old in {m, side}:  # both have the product's type, as the gemm has
            _move_shape_readers(H, old, new)
        replace(H, n, new, moved)
        log(H, "gemm", n)
    if H is None:
        return G
    move_roots(H, moved)
    return prune(H)

