"""Loop bodies: a subgraph frozen into a hashable, JSON-able tuple kept in a node's attrs
(as `fused` keeps its expression), traced from a Python function and inlined back.

A Body is (in_types, nodes, outputs):
  in_types: ((dtype, shape), ...)                       the body's inputs, in order
  nodes:    ((op, attrs items, refs, type json, trace), ...)   in topological order
  outputs:  refs
A ref is a node index (>= 0) or an input, -1 - i. Constants, parameters and every outer
tensor the function reads become inputs too (captured), so a body holds no arrays.
"""
from __future__ import annotations

import networkx as nx

from .graph import downstream, operands, topological, upstream
from .types import TensorType, TupleType


def in_types(body):
    """The body's input types."""
    return [TensorType(d, s) for d, s in body[0]]


def out_types(body):
    """The body's output types."""
    nodes = body[1]
    types = in_types(body)
    return [types[-1 - r] if r < 0 else TensorType.from_json(nodes[r][3]) for r in body[2]]


def freeze(G, inputs, outputs, alias=None):
    """The Body of the nodes between `inputs` and `outputs` (ids of the networkx graph G);
    every operand of those nodes must be an input or one of them (or a key of `alias`, read
    as the input it names)."""
    ref = {n: -1 - i for i, n in enumerate(inputs)}
    for a, n in (alias or {}).items():
        ref[a] = ref[n]
    region, stack = set(), [n for n in outputs if n not in ref]
    while stack:  # the outputs' ancestors, stopping at the inputs
        n = stack.pop()
        if n not in region:
            region.add(n)
            stack.extend(a for a in G._pred[n] if a not in ref)
    # Ids grow with creation (operands first) in traced graphs; passes may break that.
    ordered = sorted(region)
    if any(a in region and a > n for n in ordered for a in G._pred[n]):
        ordered = [n for n in topological(G) if n in region]
    nodes = []
    for n in ordered:
        d = G.nodes[n]
        refs = []
        for a in operands(G, n):
            if a not in ref:
                raise ValueError(f"body node {n} reads {a}, which is neither an input nor in "
                                 "the body")
            refs.append(ref[a])
        ref[n] = len(nodes)
        nodes.append((d["op"], tuple(sorted(d["attrs"].items())), tuple(refs),
                      _type_json(d["type"]), d.get("trace")))
    types = tuple((G.nodes[n]["type"].dtype, tuple(G.nodes[n]["type"].shape)) for n in inputs)
    return types, tuple(nodes), tuple(ref[n] for n in outputs)


def thaw(body):
    """The body as a compile unit (flowc/lower/unit.py): input nodes, its nodes, and
    graph attrs inputs/outputs/updates/log, so every pass and the lowering run on it."""
    H = nx.MultiDiGraph()
    ids = []
    for i, (dtype, shape) in enumerate(body[0]):
        H.add_node(i, op="input", attrs={}, type=TensorType(dtype, shape), name=f"in{i}",
                   phase="forward", trace=None)
        ids.append(i)
    made = []
    for k, (op, attrs, refs, t, trace) in enumerate(body[1]):
        nid = len(ids) + k
        H.add_node(nid, op=op, attrs=dict(attrs), type=TensorType.from_json(t), name=None,
                   phase="forward", trace=trace)
        for port, r in enumerate(refs):
            H.add_edge(ids[-1 - r] if r < 0 else made[r], nid, key=port)
        made.append(nid)
    H.graph.update(inputs=ids, outputs=[ids[-1 - r] if r < 0 else made[r] for r in body[2]],
                   updates=[], log=[])
    return H


def _type_json(t):
    if isinstance(t, TupleType):
        return ("tuple", tuple((p.dtype, tuple(p.shape)) for p in t.parts))
    return (t.dtype, tuple(t.shape))


def inline(body, graph, inputs, phase=None, origin=None):
    """Build the body's nodes into `graph` reading the tensors `inputs`; its output tensors.
    Each node keeps the user's line it was traced at."""
    from ..ops.build import apply
    vals = list(inputs)
    made = []
    for op, attrs, refs, _, trace in body[1]:
        args = [vals[-1 - r] if r < 0 else made[r] for r in refs]
        with graph.emitting(phase or graph._phase, origin if origin is not None else
                            graph._origin, trace):
            made.append(apply(op, args, **dict(attrs)))
    return [vals[-1 - r] if r < 0 else made[r] for r in body[2]]


def trace(graph, types, fn, names=None, alias=None):
    """Trace fn over placeholders of `types` in `graph`: (body, captured tensors, outputs
    fn returned). The body's inputs are the placeholders, then the captured outer tensors
    (constants, parameters, values fn read or made without using a placeholder: those are
    hoisted out of the loop). `alias` ({outer tensor id: placeholder index}) makes the body
    read that placeholder wherever fn reads the outer tensor (a shared variable a loop
    updates). The traced nodes are removed from the graph again."""
    from ..ops.build import leaf
    from .tensor import Tensor
    G = graph.nx
    first = graph._next_id
    holders = [leaf("input", t, name=(names[i] if names else None), graph=graph)
               for i, t in enumerate(types)]
    try:
        outs = fn(*holders)
    except BaseException:
        _drop(G, [n for n in list(G.nodes) if n >= first])
        raise
    hold = {h.id for h in holders}
    alias = {a: holders[i].id for a, i in (alias or {}).items()}
    new = {n for n in G.nodes if n >= first}
    out_ids = [o.id for o in outs]
    inner = (downstream(G, hold | set(alias)) & new & upstream(G, out_ids)) - hold
    captured = []
    for n in sorted(inner) + out_ids:
        for a in (operands(G, n) if n in inner else [n]):
            if a not in inner and a not in hold and a not in alias and a not in captured:
                captured.append(a)
    body = freeze(G, [h.id for h in holders] + captured, out_ids, alias)
    keep = upstream(G, captured)  # hoisted values stay in the outer graph; the rest goes
    for p, v in graph.default_updates.items():  # a random stream made inside: its update
        if p in keep and v in new:
            keep |= upstream(G, [v])
    _drop(G, [n for n in new if n not in keep])
    return body, [Tensor(graph, c) for c in captured], outs


def _drop(G, nodes):
    G.remove_nodes_from(nodes)



def with_inputs(body, at, types):
    """The body with unused inputs of `types` inserted before input `at` (a condition that
    ignores the tangent carries a jvp loop adds)."""
    n = len(types)

    def fix(r):
        return r if r >= 0 or -1 - r < at else r - n
    extra = tuple((t.dtype, tuple(t.shape)) for t in types)
    nodes = tuple((op, attrs, tuple(fix(r) for r in refs), t, tr)
                  for op, attrs, refs, t, tr in body[1])
    return body[0][:at] + extra + body[0][at:], nodes, tuple(fix(r) for r in body[2])


def reorder_inputs(body, order):
    """The body taking its inputs in `order` (old positions): an input left out must be one
    the body does not read."""
    pos = {old: new for new, old in enumerate(order)}

    def fix(r):
        if r >= 0:
            return r
        if -1 - r not in pos:
            raise ValueError(f"body input {-1 - r} is read but left out")
        return -1 - pos[-1 - r]
    nodes = tuple((op, attrs, tuple(fix(r) for r in refs), t, tr)
                  for op, attrs, refs, t, tr in body[1])
    return tuple(body[0][i] for i in order), nodes, tuple(fix(r) for r in body[2])


def inputs_read(body):
    """The positions of the inputs the body reads (its nodes or its outputs)."""
    refs = [r for node in body[1] for r in node[2]] + list(body[2])
    return {-1 - r for r in refs if r < 0}
