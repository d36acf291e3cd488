"""What a picture shows: the graph, the nodes of the chosen stage, the outputs and updates."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Set, Tuple

import networkx as nx

from ..function import Function, function
from ..ir.errors import FlowcError
from ..ir.graph import Graph
from ..ir.tensor import Tensor
from ..lower.unit import build_unit
from .simplify import fold

STAGES = ("forward", "backward", "optimized", "all")


@dataclass
class View:
    """A graph and the part of it to draw."""

    G: nx.MultiDiGraph
    stage: str
    nodes: Set[int]                 # every node drawn
    context: Set[int]               # forward nodes drawn only as background for the backward pass
    outputs: List[int]              # the outputs in order (drawn where the stage shows them)
    updates: List[Tuple[int, int]]  # (param, new value) pairs drawn as update targets
    folded: int = 0                 # backward bookkeeping nodes left out (flowc/render/simplify.py)


def pick(what, stage: str = "all", origins: bool = False, raw: bool = False) -> View:
    """The View of `what` (Tensor, list of Tensors, Graph, Function or MultiDiGraph) for `stage`;
    raw=False leaves out backward bookkeeping that is an identity for the proven shapes."""
    if stage not in STAGES:
        raise FlowcError(f"stage must be one of {', '.join(STAGES)}; got {stage!r}")
    G, base, outputs, updates = _source(what, stage)
    folded = 0
    if stage in ("backward", "all") and not raw:
        G, base, folded = fold(G, base, set(outputs) | {v for _, v in updates})
    phase = {n: G.nodes[n].get("phase", "forward") for n in base}
    context: Set[int] = set()
    if stage == "forward":
        nodes = {n for n in base if phase[n] == "forward"}
    elif stage == "backward":
        nodes = {n for n in base if phase[n] == "backward"}
        # The backward pass reads forward values; show them (and, for origin links, the
        # forward node each backward group came from) as faded background.
        for n in nodes:
            context.update(u for u in G.predecessors(n) if u not in nodes)
            o = G.nodes[n].get("origin")
            if origins and o is not None and o in G and o not in nodes:
                context.add(o)
        # Close the background upward so it reads as the forward graph, not scattered nodes.
        for n in list(context):
            context |= {u for u in nx.ancestors(G, n) if phase.get(u, "forward") == "forward"}
        nodes |= context
        updates = []
    else:
        nodes = set(base)
    return View(G, stage, nodes, context, outputs,
                [(p, v) for p, v in updates if v in nodes], folded)


def _source(what, stage):
    """(graph, nodes it covers, outputs, updates) for anything the user may pass."""
    if isinstance(what, Function):
        G = what.graph if stage == "optimized" else \
            build_unit(what.inputs, what.outputs, what.updates)[0]
        return G, set(G.nodes), list(G.graph["outputs"]), list(G.graph["updates"])
    if isinstance(what, nx.MultiDiGraph):
        return what, set(what.nodes), list(what.graph.get("outputs", [])), \
            [tuple(u) for u in what.graph.get("updates", [])]
    if isinstance(what, Graph):
        if stage == "optimized":
            sinks = [what.tensor(n) for n in sorted(what.nx.nodes)
                     if what.nx.out_degree(n) == 0
                     and what.nx.nodes[n]["op"] not in ("input", "param", "const")]
            if not sinks:
                raise FlowcError("this graph has no computed node to optimize and draw")
            return _source(sinks, stage)
        return what.nx, set(what.nx.nodes), [], []
    tensors = [what] if isinstance(what, Tensor) else list(what) \
        if isinstance(what, (list, tuple)) else None
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise FlowcError("render/to_dot draw a Tensor, a list of Tensors, a Graph or a compiled "
                         f"Function; got {type(what).__name__}: {what!r}")
    graph = tensors[0].graph
    if any(t.graph is not graph for t in tensors):
        raise FlowcError("the tensors to draw come from different graphs")
    if stage == "optimized":
        return _source(_compile(graph, tensors), stage)
    base = {t.id for t in tensors}
    for t in tensors:
        base |= nx.ancestors(graph.nx, t.id)
    return graph.nx, base, list(dict.fromkeys(t.id for t in tensors)), []


def _compile(graph, tensors) -> Function:
    """Compile the tensors at O1 with every input they read, to draw what the compiler makes."""
    need = set()
    for t in tensors:
        need |= nx.ancestors(graph.nx, t.id) | {t.id}
    inputs = [graph.tensor(n) for n in sorted(need) if graph.nx.nodes[n]["op"] == "input"]
    return function(inputs, list(tensors), optimize="O1")
