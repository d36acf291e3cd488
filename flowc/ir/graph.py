"""The Graph: a networkx.MultiDiGraph of nodes in the IR schema, plus parameter storage."""
from __future__ import annotations

import contextlib
from typing import Dict, Optional

import networkx as nx
import numpy as np

from runtime.storage import Cell

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
        self._next_id = max(self.nx.nodes, default=-1) + 1
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
        data = dict(op=op, attrs=attrs, type=ttype, name=name, phase=self._phase,
                    trace=self._trace or trace)
        if self._origin is not None:
            data["origin"] = self._origin
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
    ins = sorted((k, u) for u, _, k in G.in_edges(nid, keys=True))
    return [u for _, u in ins]


_STACK = [Graph()]


def default_graph() -> Graph:
    """The graph new leaves go into: the innermost `with Graph()`, else the global default."""
    return _STACK[-1]
