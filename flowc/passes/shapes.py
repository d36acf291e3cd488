"""Shape classes: prove that two tensors have the same run-time shape, and drop the
shape-fixing nodes (sum_like, broadcast_like, reshape_like) that are identities then.

Two tensors are in one class when their shapes are equal at every call: a fully known shape
is its own class; an elementwise result's class is the union of its operands' classes
(operands whose dims are all 1, such as scalars, broadcast without changing it);
broadcast_like / reshape_like / sum_like results are in the class of the tensor whose shape
they copy. Everything else gets a class of its own.
"""
from __future__ import annotations

import networkx as nx

from ..ir.errors import FlowcError
from ..ops.registry import get_op
from .cleanup import prune
from .rewrite import copy_graph, log, operands, replace, roots, topo

SHAPE_OF = {"broadcast_like": 1, "reshape_like": 1, "sum_like": 1}
# Ops that read one operand for its shape alone: the port. shape and dim read nothing else;
# getitem_grad reads its operand's shape (and dtype: the repointing keeps the node's type),
# so a gradient of hs[-1] does not keep a loop's whole stack of hs alive.
SHAPE_ONLY = dict(SHAPE_OF, shape=0, dim=0, getitem_grad=0)


def shape_read(G, consumer, port):
    """Does `consumer` read its operand at `port` for the shape alone?"""
    return SHAPE_ONLY.get(G.nodes[consumer]["op"]) == port


def shape_classes(G):
    """A class key per node: equal keys mean equal run-time shapes.

    A key is the set of shapes a tensor's shape is the broadcast of: an elementwise result
    takes the union of its operands' sets (broadcasting is associative and commutative), so
    `y * softplus(-z)` and `softplus(z) - y * z` share a class even though neither has the
    class of y or of z.
    """
    cls, static = {}, {}
    for n in topo(G):
        d = G.nodes[n]
        shape = d["type"].shape
        if None not in shape:
            if shape not in static:
                static[shape] = frozenset([("static", shape)])
            cls[n] = static[shape]
            continue
        op = d["op"]
        args = operands(G, n)
        if op in SHAPE_OF:
            cls[n] = cls[args[SHAPE_OF[op]]]
            continue
        if op not in ("input", "param", "const") and get_op(op).elementwise:
            key = None
            # An all-ones operand changes nothing unless it adds leading axes: a (1, 1, 1)
            # next to a (3, None) makes the result (1, 3, None), not the other's shape.
            rank = max((G.nodes[a]["type"].ndim for a in args
                        if not _trivial(G, a, len(shape))), default=0)
            for a in args:
                if _trivial(G, a, rank):
                    continue
                k = cls[a]
                # Most operands share one class object: union only when they differ.
                key = k if key is None or key is k else key | k
            if key is not None:
                cls[n] = key
                continue
        cls[n] = frozenset([("node", n)])
    return cls


def _trivial(G, a, ndim):
    """An operand that broadcasts without changing the other's shape (all dims 1)."""
    shape = G.nodes[a]["type"].shape
    return len(shape) <= ndim and all(d == 1 for d in shape)


def drop_identity_shape_ops(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Simplify with shape classes. Guarantee: same values and types.

    - sum_like / broadcast_like / reshape_like whose operand already has the shape go away;
    - a shape-only operand is replaced by the earliest tensor of its class (often an input),
      so the tensor it named need not be kept for its shape alone;
    - broadcast_like(a, ref) feeding an elementwise op whose other operand has ref's shape
      becomes plain a (the op broadcasts it anyway).
    """
    H, cls = _shape_operands(G, prefer_needed=True)
    if not nx.is_directed_acyclic_graph(H):  # a preferred tensor depended on its reader
        H, cls = _shape_operands(G, prefer_needed=False)
    for n in topo(H):
        d = H.nodes[n]
        if d["op"] in ("input", "param", "const") or not get_op(d["op"]).elementwise:
            continue
        args = operands(H, n)
        for port, a in enumerate(args):
            if H.nodes[a]["op"] != "broadcast_like":
                continue
            src, like = operands(H, a)
            # args is current: an operand unwrapped at an earlier port no longer has
            # like's shape, so it cannot vouch for this one.
            others = [b for i, b in enumerate(args) if i != port]
            if any(cls[b] == cls[like] and H.nodes[b]["type"].shape == H.nodes[like]["type"].shape
                   for b in others) and _set_operand_keeping_type(H, n, port, src):
                args[port] = src
                log(H, "broadcast_into_elementwise", n)
    return prune(H)


def _shape_operands(G, prefer_needed):
    """Drop identity shape ops; point shape-only operands at one tensor of their class: the
    earliest whose value is needed anyway (an input, or an output of the forward pass that
    a gradient reads) when prefer_needed, else the earliest."""
    H = copy_graph(G)
    cls = shape_classes(H)
    order = {n: i for i, n in enumerate(topo(H))}
    first, needed = {}, {}
    live = _values_needed(H, order) if prefer_needed else set()
    for n in order:
        first.setdefault(cls[n], n)
        if n in live:
            needed.setdefault(cls[n], n)
    for n in order:
        d = H.nodes[n]
        port = SHAPE_ONLY.get(d["op"])
        if port is None:
            continue
        like = operands(H, n)[port]
        if d["op"] in SHAPE_OF:
            src = operands(H, n)[0]
            if cls[src] == cls[like] and H.nodes[src]["type"] == d["type"]:
                replace(H, n, src)
                log(H, "identity_" + d["op"], n)
                continue
        pick = needed.get(cls[like])
        # Before n in this order, or a forward value read by a backward node: not n's
        # descendant. (The caller checks for cycles all the same.)
        if pick is None or not (order[pick] < order[n] or (
                H.nodes[pick]["phase"] == "forward" and d["phase"] != "forward")):
            pick = first[cls[like]]
        if pick != like:
            _set_operand_keeping_type(H, n, port, pick)
    return H, cls  # classes hold: every rewrite kept a tensor's shape and its class


def _values_needed(H, order):
    """Nodes whose values the unit needs: inputs, parameters, roots, and whatever those read
    for their values (nodes kept only as shape references are not)."""
    live = set(roots(H))
    for n in reversed(list(order)):
        if n in live or H.nodes[n]["op"] in ("input", "param"):
            live.add(n)
            continue
        if any(v in live and not shape_read(H, v, k) for _, v, k in H.out_edges(n, keys=True)):
            live.add(n)
    return live


def _set_operand(H, n, port, new):
    for u, _, k in list(H.in_edges(n, keys=True)):
        if k == port:
            H.remove_edge(u, n, key=k)
    H.add_edge(new, n, key=port)


def _set_operand_keeping_type(H, n, port, new):
    """Point n's operand `port` at `new` if n's inferred type stays exactly its type.

    Equal shape classes mean equal run-time shapes, but the static types may know different
    dims (f64[3,?] and f64[?,?]): n's type must not change (fusion re-infers it)."""
    old = operands(H, n)[port]
    _set_operand(H, n, port, new)
    d = H.nodes[n]
    try:
        t = get_op(d["op"]).infer([H.nodes[a]["type"] for a in operands(H, n)], d["attrs"])
    except FlowcError:
        t = None
    if t == d["type"]:
        return True
    _set_operand(H, n, port, old)
    return False
