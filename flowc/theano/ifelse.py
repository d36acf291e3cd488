"""theano.ifelse.ifelse(condition, then, else): a lazy choice between already-built tensors.

flowc's cond runs bodies, so each branch's exclusive cone (the nodes only that branch's
values need) moves into a body, as PyTensor's lazy VM computes only what the branch taken
needs; nodes either side shares stay outside and are computed first."""
from __future__ import annotations

from ..ir.body import freeze, with_inputs
from ..ir.graph import upstream
from ..ir.tensor import Tensor
from ..ops import api as F
from ..ops.build import apply, as_tensor


def _exclusive(G, roots):
    """The nodes computed only for `roots`: every consumer is in the set (leaves stay out)."""
    region = upstream(G, [r for r in roots])
    mine = set()
    for n in sorted(region, reverse=True):  # consumers before their operands (ids grow)
        if G.nodes[n]["op"] in ("input", "param", "const"):
            continue
        if n in roots or (G._succ[n] and all(v in mine for v in G._succ[n])):
            mine.add(n)
    return mine


def _branch(G, outs):
    """(the nodes to move, the tensors they read from outside) for a branch's outputs."""
    mine = _exclusive(G, {o.id for o in outs})
    reads = []
    for n in sorted(mine):
        for a in G._pred[n]:
            if a not in mine and a not in reads:
                reads.append(a)
    reads += [o.id for o in outs if o.id not in mine and o.id not in reads]
    return mine, reads


def ifelse(condition, then_branch, else_branch, name=None):
    """then_branch if condition else else_branch, computing only the branch taken."""
    single = isinstance(then_branch, Tensor)
    thens = [then_branch] if single else list(then_branch)
    elses = [else_branch] if single else list(else_branch)
    if len(thens) != len(elses):
        raise ValueError(f"ifelse: {len(thens)} then values and {len(elses)} else values")
    graph = next(t.graph for t in thens + elses + [condition] if isinstance(t, Tensor))
    thens = [as_tensor(t, graph=graph) for t in thens]
    elses = [as_tensor(t, graph=graph) for t in elses]
    cond = as_tensor(condition, graph=graph)
    pred = cond if cond.dtype == "bool" else F.not_equal(cond, 0)
    G = graph.nx
    mine_t, reads_t = _branch(G, thens)
    mine_f, reads_f = _branch(G, elses)
    body_t = freeze(G, reads_t, [t.id for t in thens])
    body_f = freeze(G, reads_f, [t.id for t in elses])
    types = lambda ids: [G.nodes[i]["type"] for i in ids]  # noqa: E731
    body_t = with_inputs(body_t, len(reads_t), types(reads_f))
    body_f = with_inputs(body_f, 0, types(reads_t))
    args = [Tensor(graph, i) for i in reads_t + reads_f]
    node = apply("cond", [pred] + args, branches=(body_t, body_f))
    G.remove_nodes_from((mine_t | mine_f) - {a.id for a in args})
    parts = [apply("part", [node], index=i) for i in range(len(thens))]
    return parts[0] if single else parts
