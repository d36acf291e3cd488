"""Sharing a conv's im2col columns with its weight gradient (O2).

The vjp of conv(x, w) computes dw as another conv, of x with its batch and channel axes
swapped by the cotangent: run as written, that conv copies x's windows a second time. Its
im2col matrix holds exactly the forward's columns, transposed, so where the forward would
run im2col anyway (the shape rule, runtime/cpu/conv.py `modelled`), the pass makes

    cols = im2col(x);  y = conv_cols(cols, w[, b]);  dw' = conv_wgrad(cols, g')

one window copy and two GEMMs (a hand-written layer keeps its columns the same way). The
columns are a value of the graph, so the memory plan places them in the arena. Only with
every size known, groups == 1, and no FLOWC_CONV_ALGO forcing an algorithm.
"""
from __future__ import annotations

import os

import networkx as nx
import numpy as np

from flowc_runtime.cpu.conv import modelled

from .cleanup import prune
from .rewrite import add_like, copy_graph, fresh_ids, log, move_roots, operands, replace, topo

VIEWS = ("reshape", "transpose")


def _known(t):
    return None not in t.shape


def _through_views(G, n):
    """(root, flat index into the root of each element of n): n followed back through
    reshapes and transposes of static shape; None when an index array would be too big."""
    chain = []
    while G.nodes[n]["op"] in VIEWS and G.in_degree(n) == 1:
        chain.append(n)
        n = operands(G, n)[0]
    shape = G.nodes[n]["type"].shape
    if not _known(G.nodes[n]["type"]) or np.prod(shape) > 1 << 24:
        return None
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    for v in reversed(chain):
        a = G.nodes[v]["attrs"]
        idx = idx.reshape(a["shape"]) if G.nodes[v]["op"] == "reshape" \
            else idx.transpose(a["axes"])
    return n, idx


def _forward(G, n):
    """A conv (or conv_bias) whose rule picks im2col, with every size known: its x."""
    d = G.nodes[n]
    if d["op"] not in ("conv", "conv_bias") or d["attrs"]["groups"] != 1 or \
            d["phase"] != "forward":
        return None
    x, w = operands(G, n)[:2]
    tx, tw, ty = G.nodes[x]["type"], G.nodes[w]["type"], d["type"]
    if not (_known(tx) and _known(tw) and _known(ty)):
        return None
    algo = modelled(tx.shape, tw.shape, 1, d["attrs"]["lhs_dilation"], ty.shape[2:],
                    np.dtype(tx.dtype).itemsize)
    return x if algo == "im2col" else None


def _is_weight_grad_of(G, D, F):
    """Is conv D the weight gradient's conv of forward conv F (the vjp's form: D reads F's
    x with batch and channels swapped, its geometry F's with stride and dilation
    exchanged, and makes F's kernel positions)."""
    a, b = G.nodes[D]["attrs"], G.nodes[F]["attrs"]
    if G.nodes[D]["op"] != "conv" or a["groups"] != 1 or a["flip"] or \
            G.nodes[D]["phase"] == "forward":
        return False
    if (a["stride"], a["dilation"], a["lhs_dilation"]) != \
            (b["dilation"], b["stride"], b["lhs_dilation"]):
        return False
    if any(p[0] != q[0] for p, q in zip(a["pad"], b["pad"])):
        return False
    K = G.nodes[operands(G, F)[1]]["type"].shape[2:]
    P = G.nodes[F]["type"].shape[2:]
    g = G.nodes[operands(G, D)[1]]["type"]
    return G.nodes[D]["type"].shape[2:] == K and _known(g) and g.shape[2:] == P


def share_conv_columns(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Rewrite each forward conv whose weight gradient's conv is in the unit into im2col +
    conv_cols + conv_wgrad sharing one columns value. Guarantee: same values (up to the
    order of the GEMMs' sums) and types."""
    if os.environ.get("FLOWC_CONV_ALGO"):
        return G
    forwards = {}  # (root, index bytes) of a forward conv's x -> the conv
    for n in topo(G):
        x = _forward(G, n)
        if x is None:
            continue
        seen = _through_views(G, x)
        if seen is not None:
            root, idx = seen
            forwards.setdefault((root, idx.shape, idx.tobytes()), []).append(n)
    if not forwards:
        return G
    pairs = []
    for D in topo(G):
        if G.nodes[D]["op"] != "conv" or G.nodes[D]["phase"] == "forward":
            continue
        seen = _through_views(G, operands(G, D)[0])
        if seen is None or seen[1].ndim < 3:
            continue
        root, idx = seen
        xidx = np.swapaxes(idx, 0, 1)  # what F's x would be: batch and channels back
        for F in forwards.get((root, xidx.shape, np.ascontiguousarray(xidx).tobytes()), []):
            if _is_weight_grad_of(G, D, F):
                pairs.append((F, D))
                break
    if not pairs:
        return G
    H, ids, moved, cols = copy_graph(G), None, {}, {}
    ids = fresh_ids(H)
    for F, D in pairs:
        if F not in cols:
            a = H.nodes[F]["attrs"]
            x, w, *b = operands(H, F)
            K = tuple(H.nodes[w]["type"].shape[2:])
            c = add_like(H, F, "im2col", [x], dict(
                kernel=K, stride=a["stride"], pad=a["pad"], dilation=a["dilation"],
                lhs_dilation=a["lhs_dilation"]), next(ids), same_value=False)
            new = add_like(H, F, "conv_cols", [c, w] + b, dict(
                spatial=tuple(H.nodes[F]["type"].shape[2:]), flip=a["flip"]), next(ids))
            replace(H, F, new, moved)
            log(H, "share_conv_columns", F)
            cols[F] = c, K
        c, K = cols[F]
        new = add_like(H, D, "conv_wgrad", [c, operands(H, D)[1]], dict(kernel=K), next(ids))
        replace(H, D, new, moved)
    move_roots(H, moved)
    return prune(H)
