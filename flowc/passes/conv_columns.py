"""Sharing a conv's im2col columns with its weight gradient (O2).

The vjp of conv(x, w) computes dw as another conv, of x with its batch and channel axes
swapped by the cotangent: run as written, that conv copies x's windows a second time. Its
im2col matrix holds exactly the forward's columns, transposed, so where the forward would
run im2col anyway (the shape rule, runtime/cpu/conv.py `modelled`), the pass makes

    cols = im2col(x);  y = conv_cols(cols, w[, b]);  dw' = conv_wgrad(cols, g')

one window copy and two GEMMs (a hand-written layer keeps its columns the same way). Every
other conv the rule runs as im2col becomes im2col + conv_cols alone. The columns are a
value of the graph, so the memory plan places them in the arena. Only with
every size known but the batch (a batch known only at run time is taken as TYPICAL_BATCH
for the rule), groups == 1, and no FLOWC_CONV_ALGO forcing an algorithm.
"""
from __future__ import annotations

import os

import networkx as nx
import numpy as np

from flowc_runtime.cpu.conv import modelled

from .cleanup import prune
from .rewrite import add_like, copy_graph, fresh_ids, log, move_roots, operands, replace, topo

VIEWS = ("reshape", "transpose")


def _known(t, batch=None):
    """Every size of t known, but dim `batch`."""
    return all(d is not None for k, d in enumerate(t.shape) if k != batch)


def _through_views(G, n):
    """(root, (shape, flat index into the root of each element of n)): n followed back
    through reshapes and transposes of static shape; None where a size is unknown."""
    chain = []
    while G.nodes[n]["op"] in VIEWS and G.in_degree(n) == 1:
        chain.append(n)
        n = operands(G, n)[0]
    t = G.nodes[n]["type"]
    if not _known(t) or np.prod(t.shape) > 1 << 24:
        return None
    idx = np.arange(int(np.prod(t.shape)), dtype=np.int64).reshape(t.shape)
    for v in reversed(chain):
        a = G.nodes[v]["attrs"]
        idx = idx.reshape(a["shape"]) if G.nodes[v]["op"] == "reshape" \
            else idx.transpose(a["axes"])
    return n, (idx.shape, idx.tobytes())


def _swap_of(G, n, by_x):
    """The forward convs whose x node n is, through transposes alone, with axes 0 and 1
    exchanged (the vjp's form when groups == 1; sizes need not be known)."""
    axes = tuple(range(G.nodes[n]["type"].ndim))
    swap = (1, 0) + axes[2:]
    while True:
        if axes == swap and n in by_x:
            return by_x[n]
        if G.nodes[n]["op"] != "transpose" or G.in_degree(n) != 1:
            return []
        a = G.nodes[n]["attrs"]["axes"]
        if a is None:  # x.T: every axis reversed (fuzz seed 1309 crashed here)
            a = tuple(reversed(range(len(axes))))
        axes = tuple(a[p] for p in axes)
        n = operands(G, n)[0]


def _swapped(view):
    """The view with its first two axes exchanged (a dw conv's x is its forward's x so)."""
    shape, data = view
    idx = np.swapaxes(np.frombuffer(data, dtype=np.int64).reshape(shape), 0, 1)
    return idx.shape, np.ascontiguousarray(idx).tobytes()


TYPICAL_BATCH = 64  # the rule's batch for a conv whose batch is known only at run time


def _lowerable(G, n):
    """A conv (or conv_bias) whose rule picks im2col, with every size known but the batch:
    its x."""
    d = G.nodes[n]
    if d["op"] not in ("conv", "conv_bias"):
        return None
    x, w = operands(G, n)[:2]
    tx, tw, ty = G.nodes[x]["type"], G.nodes[w]["type"], d["type"]
    if not (_known(tx, 0) and _known(tw) and _known(ty, 0)):
        return None
    xshape = (tx.shape[0] or TYPICAL_BATCH,) + tx.shape[1:]
    algo = modelled(xshape, tw.shape, d["attrs"]["groups"], d["attrs"]["lhs_dilation"],
                    ty.shape[2:], np.dtype(tx.dtype).itemsize)
    return x if algo == "im2col" else None


def _forward(G, n):
    """A forward-phase, one-group conv that _lowerable takes: its x."""
    d = G.nodes[n]
    if d["op"] not in ("conv", "conv_bias") or d["attrs"]["groups"] != 1 or \
            d["phase"] != "forward":
        return None
    return _lowerable(G, n)


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
    return G.nodes[D]["type"].shape[2:] == K and _known(g, 1) and g.shape[2:] == P


def share_conv_columns(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Rewrite each forward conv whose weight gradient's conv is in the unit into im2col +
    conv_cols + conv_wgrad sharing one columns value, and every other conv the rule runs as
    im2col into im2col + conv_cols. Guarantee: same values (up to the order of the GEMMs'
    sums; bit for bit the kernel's im2col) and types."""
    if os.environ.get("FLOWC_CONV_ALGO"):
        return G
    by_x, by_view = {}, {}  # F's x node, and (root, how F's x indexes it) -> forward convs
    for n in topo(G):
        x = _forward(G, n)
        if x is None:
            continue
        by_x.setdefault(x, []).append(n)
        seen = _through_views(G, x)
        if seen is not None:
            by_view.setdefault(seen, []).append(n)
    pairs = []
    for D in topo(G) if by_x else ():
        if G.nodes[D]["op"] != "conv" or G.nodes[D]["phase"] == "forward":
            continue
        found = [F for F in _swap_of(G, operands(G, D)[0], by_x) if _is_weight_grad_of(G, D, F)]
        if not found and by_view:  # through reshapes too, where every size is known
            seen = _through_views(G, operands(G, D)[0])
            if seen is not None:
                found = [F for F in by_view.get((seen[0], _swapped(seen[1])), [])
                         if _is_weight_grad_of(G, D, F)]
        if found:
            pairs.append((found[0], D))
    paired = {n for pair in pairs for n in pair}
    # Every other conv the rule runs as im2col: the same two steps, so its window copy is a
    # buffer of the memory plan too, not the kernel's own allocation.
    alone = [n for n in topo(G) if n not in paired and _lowerable(G, n) is not None]
    if not pairs and not alone:
        return G
    H, moved, cols = copy_graph(G), {}, {}
    ids = fresh_ids(H)

    def lower(F, why):
        a = H.nodes[F]["attrs"]
        x, w, *b = operands(H, F)
        K = tuple(H.nodes[w]["type"].shape[2:])
        c = add_like(H, F, "im2col", [x], dict(
            kernel=K, stride=a["stride"], pad=a["pad"], dilation=a["dilation"],
            lhs_dilation=a["lhs_dilation"]), next(ids), same_value=False)
        new = add_like(H, F, "conv_cols", [c, w] + b, dict(
            spatial=tuple(H.nodes[F]["type"].shape[2:]), flip=a["flip"], groups=a["groups"]),
            next(ids))
        replace(H, F, new, moved)
        log(H, why, F)
        return c, K

    for F, D in pairs:
        if F not in cols:
            cols[F] = lower(F, "share_conv_columns")
        c, K = cols[F]
        new = add_like(H, D, "conv_wgrad", [c, operands(H, D)[1]], dict(kernel=K), next(ids))
        replace(H, D, new, moved)
    for n in alone:
        lower(n, "conv_columns")
    move_roots(H, moved)
    return prune(H)
