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


def freeze(G, inputs, outputs):
    """The Body of the nodes between `inputs` and `outputs` (ids of the networkx graph G);
    every operand of those nodes must be an input or one of them."""
    ref = {n: -1 - i for i, n in enumerate(inputs)}
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


def trace(graph, types, fn, names=None):
    """Trace fn over placeholders of `types` in `graph`: (body, captured tensors, outputs
    fn returned). The body's inputs are the placeholders, then the captured outer tensors
    (constants, parameters, values fn read or made without using a placeholder: those are
    hoisted out of the loop). The traced nodes are removed from the graph again."""
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
    new = {n for n in G.nodes if n >= first}
    out_ids = [o.id for o in outs]
    inner = (downstream(G, hold) & new & upstream(G, out_ids)) - hold
    captured = []
    for n in sorted(inner) + out_ids:
        for a in (operands(G, n) if n in inner else [n]):
            if a not in inner and a not in hold and a not in captured:
                captured.append(a)
    body = freeze(G, [h.id for h in holders] + captured, out_ids)
    keep = upstream(G, captured)  # hoisted values stay in the outer graph; the rest goes
    _drop(G, [n for n in new if n not in keep])
    return body, [Tensor(graph, c) for c in captured], outs


def _drop(G, nodes):
    G.remove_nodes_from(nodes)
