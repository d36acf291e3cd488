"""Cleanup passes: dead-code elimination, common-subexpression elimination, constant folding."""
from __future__ import annotations

import networkx as nx
import numpy as np

from runtime.kernels_numpy import KERNELS

from ..ir.types import TensorType
from .rewrite import log, operands, replace, roots, topo

# Ops whose results are not a function of their operands alone (none yet; random ops later).
IMPURE = frozenset()
FOLD_LIMIT = 1 << 16  # do not fold constants bigger than this many elements into the program


def dce(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Remove nodes no output or update needs. Keeps the function's inputs and updated params."""
    keep = set(roots(G)) | set(G.graph["inputs"]) | {p for p, _ in G.graph["updates"]}
    for r in roots(G):
        keep |= nx.ancestors(G, r)
    H = G.subgraph(keep).copy()
    H.graph = dict(G.graph, log=list(G.graph.get("log", [])))
    for n in set(G) - keep:
        if G.nodes[n]["op"] not in ("input", "param", "const"):
            log(H, "dce", n)
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
    H = G.copy()
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
    return dce(H)


def fold_constants(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """Evaluate nodes whose operands are all constants with the runtime's NumPy kernels."""
    H = G.copy()
    for n in topo(H):
        d = H.nodes[n]
        if d["op"] in ("input", "param", "const") or d["op"] in IMPURE:
            continue
        args = operands(H, n)
        if not args or any(H.nodes[a]["op"] != "const" for a in args):
            continue
        kernel = KERNELS.get(d["op"])
        if kernel is None or kernel.fn is None:
            continue
        with np.errstate(all="ignore"):
            value = np.asarray(kernel.fn(*[H.nodes[a]["value"] for a in args], **d["attrs"]))
        if value.size > FOLD_LIMIT:
            continue
        value = np.array(value, dtype=d["type"].dtype)
        value.setflags(write=False)
        if TensorType(value.dtype.name, value.shape) != d["type"]:
            continue  # an unknown dim in the type: keep the node, types must not change
        for u, _, k in list(H.in_edges(n, keys=True)):
            H.remove_edge(u, n, key=k)
        H.nodes[n].update(op="const", attrs={}, value=value)
        log(H, "fold", n)
    return dce(H)
