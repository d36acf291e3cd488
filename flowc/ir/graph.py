"""The Graph: a networkx.MultiDiGraph of nodes in the IR schema, plus parameter storage."""
from __future__ import annotations

import contextlib
import functools
import gc
from typing import Dict, Optional

import networkx as nx
import numpy as np

from flowc_runtime.storage import Cell
from .scope import current as current_scope

PHASES = ("forward", "backward", "update")


class Graph:
    """A static computation graph; `g.nx` is the networkx.MultiDiGraph holding it.

    Node ids are integers in creation order; one node produces one tensor; the in-edge key is
    the operand's port. Parameter values live in `Cell`s shared with every compiled function.
    """

    def __init__(self, nxgraph: Optional[nx.MultiDiGraph] = None):
        self.nx = nxgraph if nxgraph is not None else nx.MultiDiGraph()
        self.cells: Dict[int, Cell] = {}
        # User gradient rules of custom_vjp nodes, by the key in the node's attrs.
        self.custom_rules: Dict[int, tuple] = {}
        # {param id: value id} added to every function using the param (random streams'
        # state; flowc/random.py), unless the function says no_default_updates.
        self.default_updates: Dict[int, int] = {}
        # Placeholders that stand for a random stream's state inside a loop body being traced
        # (flowc/ops/api_control.py: a loop nested in it carries them on, step by step).
        self.random_carries: set = set()
        # Tensor.eval's compiled functions, by (tensor id, input ids).
        self.eval_cache: Dict[tuple, tuple] = {}
        self._next_id = max(max(self.nx.nodes, default=-1) + 1, self.nx.graph.get("next_id", 0))
        # Where new nodes come from: set by autodiff (phase, origin) and by passes (trace).
        self._phase = "forward"
        self._origin = None
        self._trace = None

    # -- default-graph stack ------------------------------------------------------------
    def __enter__(self):
        _STACK.append(self)
        return self

    def __exit__(self, *exc):
        _STACK.remove(self)

    @contextlib.contextmanager
    def emitting(self, phase: str, origin=None, trace=None):
        """Nodes added inside get this phase/origin (and trace, if given) instead of the defaults."""
        saved = (self._phase, self._origin, self._trace)
        self._phase, self._origin, self._trace = phase, origin, trace
        try:
            yield
        finally:
            self._phase, self._origin, self._trace = saved

    # -- nodes --------------------------------------------------------------------------
    def add_node(self, op, inputs, attrs, ttype, name=None, trace=None, value=None) -> int:
        """Add one node (operands by id, in port order) and return its id."""
        nid = self._next_id
        self._next_id += 1
        self.nx.graph["next_id"] = self._next_id  # ids are never reused (see fresh_ids)
        data = dict(op=op, attrs=attrs, type=ttype, name=name, phase=self._phase,
                    trace=self._trace or trace)
        if self._origin is not None:
            data["origin"] = self._origin
        where = current_scope()
        if where is not None:  # drawn as a cluster (flowc/render/scopes.py)
            data["scope"] = where
        if value is not None:
            data["value"] = value
        self.nx.add_node(nid, **data)
        for port, src in enumerate(inputs):
            self.nx.add_edge(src, nid, key=port)
        return nid

    def operands(self, nid: int):
        """Operand ids of a node, in port order."""
        return operands(self.nx, nid)

    def tensor(self, nid: int):
        """The Tensor handle for node `nid`."""
        from .tensor import Tensor
        if nid not in self.nx:
            raise KeyError(f"no node {nid} in this graph")
        return Tensor(self, nid)

    def __getitem__(self, name: str):
        """The tensor with this user-given name (the last one made, if several)."""
        hits = [n for n, d in self.nx.nodes(data=True) if d.get("name") == name]
        if not hits:
            raise KeyError(f"no node named {name!r}; names are: "
                           + ", ".join(sorted({str(d.get('name')) for _, d in self.nx.nodes(data=True) if d.get('name')})))
        return self.tensor(max(hits))

    def __len__(self):
        return self.nx.number_of_nodes()

    @staticmethod
    def from_networkx(G: nx.MultiDiGraph) -> "Graph":
        """Check a hand-built MultiDiGraph against the schema and wrap a normalized copy of it."""
        from .verify import normalize_and_verify
        H = normalize_and_verify(G)
        g = Graph(H)
        for nid, d in H.nodes(data=True):
            if d["op"] == "param":
                g.cells[nid] = Cell(np.array(d["value"], dtype=d["type"].dtype))
        return g

    def __repr__(self):
        return f"<flowc.Graph with {len(self)} nodes>"


def operands(G: nx.MultiDiGraph, nid: int):
    """Operand ids of node `nid` of a MultiDiGraph, in port order."""
    # Straight from the adjacency dicts: this runs for every node in every pass.
    pairs = [(k, u) for u, keys in G._pred[nid].items() for k in keys]
    pairs.sort()
    return [u for _, u in pairs]


_STACK = [Graph()]


def default_graph() -> Graph:
    """The graph new leaves go into: the innermost `with Graph()`, else the global default."""
    return _STACK[-1]


def paused_gc(fn):
    """Run fn with Python's cyclic garbage collector paused (the outermost call resumes it).

    Compiling allocates a graph's worth of small dicts per pass, and each full collection
    walks every live object: with the collector running, compile time grew faster than the
    graph (W4 400 -> 1600 layers: x7.4). Garbage cycles made meanwhile (networkx graphs
    hold views of themselves) are collected once it resumes.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()
    return wrapper


def upstream(G: nx.MultiDiGraph, sources) -> set:
    """The sources and every node they depend on (one walk for all sources: linear time)."""
    seen = set(sources)
    stack = list(seen)
    pred = G._pred  # the adjacency dict itself: this walk is on every compile's hot path
    while stack:
        for u in pred[stack.pop()]:
            if u not in seen:
                seen.add(u)
                stack.append(u)
    return seen


def downstream(G: nx.MultiDiGraph, sources, blocked=()) -> set:
    """The sources and every node that depends on them, not walking through `blocked`."""
    seen = set(sources)
    stack = list(seen)
    succ = G._succ
    while stack:
        for v in succ[stack.pop()]:
            if v not in seen and v not in blocked:
                seen.add(v)
                stack.append(v)
    return seen


def fresh_ids(G: nx.MultiDiGraph):
    """New node ids for G, above every id G holds or held before a pass removed it (kept in
    G.graph["next_id"]): a node id then names one value at every level, which checked mode
    relies on when it compares the optimized program with the O0 one."""
    i = max(max(G.nodes, default=-1) + 1, G.graph.get("next_id", 0))
    while True:
        G.graph["next_id"] = i + 1
        yield i
        i += 1


def copy_graph(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy of G whose node, edge and graph attribute dicts are new (values are shared).

    Same result as G.copy(), several times faster: passes copy the unit once each.
    """
    H = G.__class__()
    H.graph.update(G.graph)
    H._node.update((n, d.copy()) for n, d in G._node.items())
    succ, pred = H._succ, H._pred
    for n in G._node:
        succ[n] = {}
        pred[n] = {}
    for u, nbrs in G._succ.items():
        su = succ[u]
        for v, keydict in nbrs.items():
            kd = dict(keydict)  # edge data dicts are shared: no pass writes edge data
            su[v] = kd
            pred[v][u] = kd  # networkx shares one key dict between _succ and _pred
    return H


def topological(G: nx.MultiDiGraph) -> list:
    """Node ids in a deterministic topological order (Kahn's algorithm, ties by id)."""
    import heapq
    indeg = {n: len(p) for n, p in G._pred.items()}
    ready = [n for n, d in indeg.items() if d == 0]
    heapq.heapify(ready)
    order = []
    succ = G._succ
    while ready:
        n = heapq.heappop(ready)
        order.append(n)
        for v in succ[n]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, v)
    if len(order) != len(indeg):
        raise nx.NetworkXUnfeasible("graph has a cycle")
    return order
