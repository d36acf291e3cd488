"""The IR graph as JSON: networkx node-link data (the keys `nx.node_link_data(G,
edges="edges")` writes) with the node attributes of the IR schema.

    {"directed": true, "multigraph": true,
     "graph": {"format": "flowc-graph", "version": 1, "outputs": [node id, ...],
               "roles": {...}},                     # optional: what a trainer needs
     "nodes": [{"id": 3, "op": "matmul", "attrs": {}, "type": ["float64", [null, 64]],
                "name": "dense1", "phase": "forward", "trace": "model.toml:12",
                "origin": 7, "grad_of": [9, 2],     # backward nodes only
                "scope": "dense1",                  # made inside a layer or fc.scope
                "value": {"dtype": "float64", "shape": [64, 64], "data": [[...], ...]}},
               ...],                                # value: const and param nodes only
     "edges": [{"source": 1, "target": 3, "key": 0}, ...]}   # key = operand port

A None dimension is JSON null; const and param values are nested lists with their dtype.
A loop's or cond's type is ["tuple", [[dtype, shape], ...]] and its body (attrs `body`,
`cond`, `branches`) the frozen body of flowc/ir/body.py as nested lists; the scopes of the
nodes inside a body are not kept (bodies carry none).
Loading builds a MultiDiGraph and passes it through fc.Graph.from_networkx, so the one
verifier checks it (known ops, ports, attrs, stored types).
"""
from __future__ import annotations

import difflib
import json
import os
import re

import networkx as nx
import numpy as np

from ..ir.errors import FlowcError
from ..ir.graph import Graph
from ..ir.tensor import Tensor
from ..ir.types import TensorType, TupleType
from ..ir.verify import LEAVES
from ..ops.registry import OPS

FORMAT = "flowc-graph"
VERSION = 1
_NODE_KEYS = ("op", "attrs", "type", "name", "phase", "trace", "origin", "grad_of", "scope")


class GraphFileError(FlowcError):
    """A graph JSON file cannot be read or breaks the schema."""


def _jsonify(v):
    if isinstance(v, (list, tuple)):
        return [_jsonify(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonify(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def _value(arr):
    a = np.asarray(arr)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": a.tolist()}


def to_node_link(G: nx.MultiDiGraph, outputs=(), roles=None) -> dict:
    """The JSON-able node-link dict of a graph (see the module doc)."""
    nodes = []
    for n in sorted(G.nodes):
        d = G.nodes[n]
        if d["op"] == "custom_vjp":
            raise FlowcError(f"node {n} is a custom_vjp: its Python gradient rule cannot be "
                             "saved as JSON")
        rec = {"id": int(n)}
        for k in _NODE_KEYS:
            if k in d and d[k] is not None:
                v = d[k]
                rec[k] = v.to_json() if isinstance(v, (TensorType, TupleType)) else _jsonify(v)
        if "value" in d and d["op"] in ("const", "param"):
            rec["value"] = _value(d["value"])
        nodes.append(rec)
    edges = [{"source": int(u), "target": int(v), "key": int(k)}
             for u, v, k in sorted(G.edges(keys=True), key=lambda e: (e[1], e[2]))]
    graph = {"format": FORMAT, "version": VERSION, "outputs": [int(o) for o in outputs]}
    if roles:
        graph["roles"] = _jsonify(roles)
    return {"directed": True, "multigraph": True, "graph": graph, "nodes": nodes,
            "edges": edges}


def _subgraph(what):
    """(graph, node ids, output ids) for a Graph, a Tensor or a list of Tensors."""
    if isinstance(what, Graph):
        return what, set(what.nx.nodes), []
    tensors = [what] if isinstance(what, Tensor) else list(what)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise FlowcError(f"save_graph takes a Graph, a Tensor or a list of Tensors, got "
                         f"{type(what).__name__}")
    g = tensors[0].graph
    keep = set()
    for t in tensors:
        keep |= nx.ancestors(g.nx, t.id) | {t.id}
    return g, keep, [t.id for t in tensors]


def dumps(what, roles=None, extra_nodes=()) -> str:
    """JSON text for `what` (Graph, Tensor or list of Tensors). `roles` (plain data naming
    node ids) is stored with it; `extra_nodes` are kept too (with their ancestors)."""
    g, keep, outs = _subgraph(what)
    for n in extra_nodes:
        keep |= nx.ancestors(g.nx, n) | {n}
    H = g.nx.subgraph(keep).copy()
    for n in H.nodes:
        if H.nodes[n]["op"] == "param" and n in g.cells:  # the current value, not the first
            v = g.cells[n].value
            H.nodes[n]["value"] = v.get() if hasattr(v, "get") else np.asarray(v)
    return json.dumps(to_node_link(H, outs, roles), indent=1)


def save_graph(what, path, roles=None, extra_nodes=()) -> str:
    """Write `what` as graph JSON to `path` (atomically); return the path."""
    path = os.fspath(path)
    text = dumps(what, roles, extra_nodes)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)
    return path


def load_graph(path):
    """(Graph, outputs as Tensors, roles dict) from a graph JSON file, verified."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise GraphFileError(f"{path}: cannot read the file ({e.strerror})") from None
    return loads(text, path)


def loads(text, path="<json>"):
    """Like load_graph, from JSON text; `path` names the source in errors."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise GraphFileError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") \
            from None
    r = _Reader(path, text)
    G = r.graph(doc)
    try:
        g = Graph.from_networkx(G)
    except FlowcError as e:
        m = re.match(r"node (\d+)", str(e))
        line = r.node_line(int(m.group(1))) if m else None
        raise GraphFileError(f"{path}{f':{line}' if line else ''}: {e}") from None
    outs = [g.tensor(o) for o in G.graph.get("outputs", [])]
    return g, outs, G.graph.get("roles") or {}


class _Reader:
    """Checks the node-link structure, naming the file, line and field of a problem."""

    def __init__(self, path, text):
        self.path, self.text = path, text

    def node_line(self, nid):
        m = re.search(rf'"id"\s*:\s*{int(nid)}\b', self.text)
        return self.text.count("\n", 0, m.start()) + 1 if m else None

    def fail(self, field, expected, got, nid=None):
        line = self.node_line(nid) if nid is not None else None
        where = f"{self.path}:{line}" if line else self.path
        raise GraphFileError(f"{where}: {field}: expected {expected}, got {_show(got)}")

    def graph(self, doc):
        if not isinstance(doc, dict):
            self.fail("(top level)", "a JSON object with graph, nodes and edges", doc)
        meta = doc.get("graph")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            self.fail("graph.format", f'"{FORMAT}"',
                      meta.get("format") if isinstance(meta, dict) else meta)
        if meta.get("version") != VERSION:
            self.fail("graph.version", VERSION, meta.get("version"))
        nodes = doc.get("nodes")
        if not isinstance(nodes, list):
            self.fail("nodes", "a list of node objects", nodes)
        edges = doc.get("edges", doc.get("links"))
        if not isinstance(edges, list):
            self.fail("edges", "a list of edge objects", edges)
        G = nx.MultiDiGraph()
        for i, rec in enumerate(nodes):
            nid, data = self.node(i, rec)
            if nid in G:
                self.fail(f"nodes[{i}].id", "a unique node id", nid, nid)
            G.add_node(nid, **data)
        for i, e in enumerate(edges):
            if not isinstance(e, dict):
                self.fail(f"edges[{i}]", "an object with source, target and key", e)
            for k in ("source", "target", "key"):
                if not isinstance(e.get(k), int) or isinstance(e.get(k), bool):
                    self.fail(f"edges[{i}].{k}", "an integer", e.get(k))
            for k in ("source", "target"):
                if e[k] not in G:
                    self.fail(f"edges[{i}].{k}", "the id of a node in the file", e[k])
            G.add_edge(e["source"], e["target"], key=e["key"])
        outs = meta.get("outputs", [])
        if not isinstance(outs, list) or any(o not in G for o in outs if isinstance(o, int)) \
                or not all(isinstance(o, int) for o in outs):
            self.fail("graph.outputs", "a list of node ids in the file", outs)
        G.graph.update(outputs=outs, roles=meta.get("roles") or {})
        return G

    def node(self, i, rec):
        f = f"nodes[{i}]"
        if not isinstance(rec, dict):
            self.fail(f, "a node object", rec)
        nid = rec.get("id")
        if not isinstance(nid, int) or isinstance(nid, bool):
            self.fail(f"{f}.id", "an integer", nid)
        f = f"{f} (id {nid})"
        if not isinstance(rec.get("op"), str):
            self.fail(f"{f}.op", "an op name (a string)", rec.get("op"), nid)
        if rec["op"] not in LEAVES and rec["op"] not in OPS:
            near = difflib.get_close_matches(rec["op"], list(OPS) + list(LEAVES), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            self.fail(f"{f}.op", f"a known op{hint}; `flowc ops` lists them", rec["op"], nid)
        data = {k: rec[k] for k in _NODE_KEYS if k in rec}
        t = rec.get("type")
        if t is not None:
            ok = _type_json(t) or (isinstance(t, list) and len(t) == 2 and t[0] == "tuple"
                                   and isinstance(t[1], list) and all(map(_type_json, t[1])))
            try:
                data["type"] = TensorType.from_json(t) if ok else None
            except TypeError:
                ok = False
            if not ok:
                self.fail(f"{f}.type", '[dtype, shape] such as ["float64", [null, 3]] (or '
                          '["tuple", [[dtype, shape], ...]] for a loop)', t, nid)
        if "attrs" in rec and not isinstance(rec["attrs"], dict):
            self.fail(f"{f}.attrs", "an object", rec["attrs"], nid)
        if "scope" in rec and not (isinstance(rec["scope"], str) and rec["scope"].isprintable()):
            self.fail(f"{f}.scope", 'a scope path such as "encoder/inner"', rec["scope"], nid)
        if "grad_of" in rec:
            data["grad_of"] = tuple(rec["grad_of"])
        if "value" in rec:
            v = rec["value"]
            try:
                arr = np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"])
            except (TypeError, KeyError, ValueError):
                self.fail(f"{f}.value", '{"dtype", "shape", "data"} with data of that shape',
                          v, nid)
            data["value"] = arr
        return nid, data


def _type_json(t):
    """Is t a TensorType's JSON, [dtype, shape]?"""
    return isinstance(t, list) and len(t) == 2 and isinstance(t[0], str) and t[0] != "tuple" \
        and isinstance(t[1], list) and all(d is None or (isinstance(d, int) and d >= 0)
                                           for d in t[1])


def _show(v):
    text = json.dumps(v, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
