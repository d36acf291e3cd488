"""Cleanup passes: dead-code elimination, common-subexpression elimination, constant folding."""
from __future__ import annotations

import networkx as nx
import numpy as np

from flowc_runtime.cpu.kernels import KERNELS

from ..ir.types import TensorType
from .rewrite import copy_graph, log, operands, replace, roots, topo, upstream

# Ops whose results are not a function of their operands alone (none yet; random ops later).
IMPURE = frozenset()
FOLD_LIMIT = 1 << 16  # do not fold constants bigger than this many elements into the program


def dce(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Remove nodes no output or update needs. Keeps the function's inputs and updated params."""
    H = copy_graph(G)
    H.graph["log"] = list(G.graph.get("log", []))
    prune(H)
    return H


def prune(H: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """dce in place, for a pass that already works on its own copy."""
    keep = upstream(H, roots(H)) | set(H.graph["inputs"]) | {p for p, _ in H.graph["updates"]}
    dead = [n for n in H if n not in keep]
    for n in dead:
        if H.nodes[n]["op"] not in ("input", "param", "const"):
            log(H, "dce", n)
    H.remove_nodes_from(dead)
    return H


def _const_key(d):
    v = d["value"]
    if v.size > 64:
        return None
    return ("const", v.dtype.str, v.shape, v.tobytes())


def cse(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Merge nodes that compute the same op on the same operands (and equal small constants).

    Guarantee: the merged node has the same type; commutative ops match either operand order.
    """
    from ..ops.registry import get_op
    H = copy_graph(G)
    seen = {}
    for n in topo(H):
        d = H.nodes[n]
        op = d["op"]
        if op in ("input", "param") or op in IMPURE:
            continue
        if op == "const":
            key = _const_key(d)
        else:
            args = tuple(operands(H, n))
            if get_op(op).commutative:
                args = tuple(sorted(args))
            key = (op, args, tuple(sorted(d["attrs"].items())), d["type"])
        if key is None:
            continue
        if key in seen:
            replace(H, n, seen[key])
            log(H, "cse", n)
        else:
            seen[key] = n
    return prune(H)


def _all_const(G, n):
    if G._node[n]["op"] in ("input", "param", "const") or not G._pred[n]:
        return False
    return all(G._node[a]["op"] == "const" for a in G._pred[n])


def known_shape(G, n):
    """The value of a shape or dim node whose operand's sizes are known statically (a graph
    read from a file may hold one), else None."""
    d = G._node[n]
    if d["op"] not in ("shape", "dim"):
        return None
    (a,) = G._pred[n]
    shape = G._node[a]["type"].shape
    if d["op"] == "dim":
        shape = shape[d["attrs"]["axis"]]
    if shape is None or (isinstance(shape, tuple) and None in shape):
        return None
    v = np.array(shape, dtype=np.int64)
    v.setflags(write=False)
    return v


def fold_constants(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Evaluate nodes whose operands are all constants with the runtime's NumPy kernels, and
    shape reads of sizes known when the graph is built."""
    if not any(_all_const(G, n) or known_shape(G, n) is not None for n in G):
        return G  # nothing to fold: no copy
    H = copy_graph(G)
    for n in topo(H):
        d = H.nodes[n]
        if d["op"] in ("input", "param", "const") or d["op"] in IMPURE:
            continue
        value = known_shape(H, n)
        args = operands(H, n)
        if value is None and (not args or any(H.nodes[a]["op"] != "const" for a in args)):
            continue
        if value is None:
            value = evaluate(d, [H.nodes[a]["value"] for a in args])
        if value is None:
            continue
        for u, _, k in list(H.in_edges(n, keys=True)):
            H.remove_edge(u, n, key=k)
        H.nodes[n].update(op="const", attrs={}, value=value)
        log(H, "fold", n)
    return prune(H)


def evaluate(d, values):
    """The value of node data `d` applied to operand arrays `values`, as folding computes it
    (the runtime's NumPy kernel, read-only, of exactly d's type), or None where it cannot."""
    if d["op"] in IMPURE:
        return None
    kernel = KERNELS.get(d["op"])
    if kernel is None or kernel.fn is None:
        return None
    try:
        with np.errstate(all="ignore"):
            value = np.asarray(kernel.fn(*values, **d["attrs"]))
    except IndexError:
        return None  # an index out of bounds: the run raises it, naming the user's line
    if value.size > FOLD_LIMIT:
        return None
    value = np.array(value, dtype=d["type"].dtype)
    value.setflags(write=False)
    if TensorType(value.dtype.name, value.shape) != d["type"]:
        return None  # an unknown dim in the type: keep the node, types must not change
    return value
