"""Sequence work out of a scan: the part of a step that reads the step's slices but no carry
(an RNN's input projection x_t @ W_x + b) is computed for every step at once before the loop,
by batching it over the sequences' step axis, and the body reads it as one more sequence.

One GEMM over all steps replaces a small one per step, and its gradient (through the batched
matmul's rule) is one product after the backward loop instead of an accumulation in it. Only
work that holds a matrix product moves: cheaper elementwise work is not worth a stacked copy
of its result (T times a step's value). A loop with a condition keeps its body (it may stop
early, and the hoisted work would run for steps that never happen).
"""
from __future__ import annotations

from ..ir.body import freeze, in_types, inputs_read, reorder_inputs, thaw
from ..ir.errors import FlowcError

# Products whose per-step calls are worth one call over all steps.
CONTRACTIONS = frozenset({"matmul", "gemm", "tensordot", "einsum", "dot", "conv",
                          "conv_bias"})
# Ops never moved: draws (each step's numbers differ), checks that must fail at their step,
# and nested control flow.
KEPT = frozenset({"random_uniform", "random_check", "loop", "cond", "part", "select"})


def hoistable(body, ns, nc):
    """Indices of the body nodes to compute before the loop: nodes that read a slice, no
    carry, hold a contraction, and are read by the per-step rest (or are an output)."""
    nodes = body[1]
    seq, carry, mm = [False] * len(nodes), [False] * len(nodes), [False] * len(nodes)
    for k, (op, _, refs, _, _) in enumerate(nodes):
        for r in refs:
            if r < 0:
                i = -1 - r
                seq[k] |= i < ns
                carry[k] |= ns <= i < ns + nc
            else:
                seq[k] |= seq[r]
                carry[k] |= carry[r]
                mm[k] |= mm[r]
        mm[k] |= op in CONTRACTIONS
        carry[k] |= op in KEPT  # pinned to the step, as if it read a carry
    movable = [seq[k] and not carry[k] for k in range(len(nodes))]
    read_by_step = set(r for r in body[2] if r >= 0)
    for k, (_, _, refs, _, _) in enumerate(nodes):
        if not movable[k]:
            read_by_step.update(r for r in refs if r >= 0)
    return [k for k in range(len(nodes)) if movable[k] and mm[k] and k in read_by_step]


def hoist_sequence_work(graph, body, seqs, others, ns, nc):
    """(body, sequences, others) with the step's sequence-only products done before the loop;
    `others` are the loop's other operands (carries, then consts) in the body's input order."""
    from ..autodiff.loops import batched_body
    moved = hoistable(body, ns, nc)
    if not moved:
        return body, seqs, others
    U = thaw(body)
    n_in = len(body[0])
    ins = list(U.graph["inputs"])
    ids = [n_in + k for k in moved]
    values = list(seqs) + list(others)
    first = graph._next_id
    try:
        stacked = batched_body(graph, freeze(U, ins, ids), values,
                               [True] * ns + [False] * (n_in - ns), in_types(body))
    except FlowcError:  # an op without a batching rule for this case: the step keeps it
        graph.nx.remove_nodes_from([n for n in list(graph.nx.nodes) if n >= first])
        return body, seqs, others
    fresh = []
    for k, n in enumerate(ids):
        new = max(U.nodes) + 1
        U.add_node(new, op="input", attrs={}, type=U.nodes[n]["type"], name=f"hoisted{k}",
                   phase="forward", trace=None)
        for _, v, key in list(U.out_edges(n, keys=True)):
            U.remove_edge(n, v, key=key)
            U.add_edge(new, v, key=key)
        U.graph["outputs"] = [new if o == n else o for o in U.graph["outputs"]]
        fresh.append(new)
    new_body = freeze(U, ins[:ns] + fresh + ins[ns:], list(U.graph["outputs"]))
    # Slices and consts the step no longer reads are not taken (the hoisted sequences set
    # the length; an unread const would get a zero gradient summed every step).
    read, nh = inputs_read(new_body), len(fresh)
    keep = [i for i in range(ns) if i in read]
    rest = [i for i in range(ns + nh + nc, len(new_body[0])) if i in read]
    order = keep + list(range(ns, ns + nh + nc)) + rest
    others = list(others[:nc]) + [others[i - ns - nh] for i in rest]
    return (reorder_inputs(new_body, order), [seqs[i] for i in keep] + list(stacked),
            others)
