"""Passes see into loop bodies: each body is thawed into a compile unit, run through the
same pipeline as the outer graph, and frozen again. Constants that folding makes inside a
body are lifted out as extra operands (a body holds no arrays)."""
from __future__ import annotations

from ..ir.body import freeze, inputs_read, reorder_inputs, thaw
from ..ir.graph import fresh_ids
from ..ir.types import TensorType, TupleType
from .cleanup import prune
from .rewrite import builder, copy_graph, log, operands, replace


def _optimized(body, level):
    """(the body optimized at level, the constants lifted out of it: (type, value) pairs)."""
    from .pipeline import optimize
    unit = optimize(thaw(body), level)
    consts = [m for m, e in unit.nodes(data=True) if e["op"] == "const"]
    frozen = freeze(unit, list(unit.graph["inputs"]) + consts, list(unit.graph["outputs"]))
    return frozen, [(unit.nodes[m]["type"], unit.nodes[m]["value"]) for m in consts]


def _lifted(H, ids, const, d):
    """An outer const node for a constant lifted out of a body."""
    k = next(ids)
    H.add_node(k, op="const", attrs={}, type=const[0], name=None, value=const[1],
               phase=d["phase"], trace=d.get("trace"))
    return k


def merge_loops(G):
    """A loop that computes another's results and more (the values a gradient saves) serves
    both: the other's readers read it instead. It must have the other's operands first (it
    may capture more), its body the other's inputs and nodes first, and its outputs the
    other's first (a body traced from the other's, as flowc/autodiff/loops.py makes)."""
    loops = [n for n, d in G.nodes(data=True) if d["op"] == "loop"]
    if len(loops) < 2:
        return G
    groups = {}
    for n in loops:
        a = G.nodes[n]["attrs"]
        groups.setdefault(tuple((k, v) for k, v in sorted(a.items()) if k != "body"),
                          []).append(n)
    H, gone = None, set()
    for ns in groups.values():
        ns.sort(key=lambda n: -len(G.nodes[n]["attrs"]["body"][2]))
        for i, small in enumerate(ns):
            for big in ns[:i]:
                if big not in gone and small not in gone and _serves(G, big, small):
                    H = H if H is not None else copy_graph(G)
                    for _, v, k in list(H.out_edges(small, keys=True)):
                        H.remove_edge(small, v, key=k)  # part(small, i) -> part(big, i)
                        H.add_edge(big, v, key=k)
                    gone.add(small)
                    log(H, "merge_loops", big)
                    break
    return G if H is None else prune(H)


def _serves(G, big, small):
    """Whether loop `big` computes every result of loop `small` (see merge_loops)."""
    ob, os_ = operands(G, big), operands(G, small)
    bb, bs = G.nodes[big]["attrs"]["body"], G.nodes[small]["attrs"]["body"]
    return (ob[:len(os_)] == os_ and bb[0][:len(bs[0])] == bs[0]
            and bb[1][:len(bs[1])] == bs[1] and bb[2][:len(bs[2])] == bs[2])


def optimize_bodies(G, level):
    """G with every loop body optimized at `level` (loops nested in a body included)."""
    loops = [n for n, d in G.nodes(data=True) if d["op"] == "loop"]
    if not loops:
        return G
    H = copy_graph(G)
    ids = fresh_ids(H)
    for n in loops:
        d = H.nodes[n]
        args = operands(H, n)
        n_cond = d["attrs"]["n_cond"]
        body, body_consts = _optimized(d["attrs"]["body"], level)
        cond, cond_consts = (None, []) if d["attrs"]["cond"] is None else \
            _optimized(d["attrs"]["cond"], level)
        if body == d["attrs"]["body"] and cond == d["attrs"]["cond"]:
            continue
        split = len(args) - n_cond  # body operands, then the condition's
        args = (args[:split] + [_lifted(H, ids, v, d) for v in body_consts] + args[split:]
                + [_lifted(H, ids, v, d) for v in cond_consts])
        new = next(ids)
        H.add_node(new, **dict(d, attrs=dict(d["attrs"], body=body, cond=cond,
                                             n_cond=n_cond + len(cond_consts))))
        for port, a in enumerate(args):
            H.add_edge(a, new, key=port)
        replace(H, n, new)
        H.remove_node(n)
        log(H, "loop_body", new)
    return H


def last_row_reads(G):
    """ys[-1] of a forward loop whose y is a new carry is the final carry (when the loop runs
    at least one step, known statically): read the carry, so the stack may go unused."""
    H = None
    for n, d in list(G.nodes(data=True)):
        if d["op"] != "getitem" or d["attrs"]["index"] != (("int", -1),):
            continue
        (p,) = operands(G, n)
        pd = G.nodes[p]
        if pd["op"] != "part":
            continue
        (loop,) = operands(G, p)
        a = G.nodes[loop]["attrs"]
        steps = G.nodes[p]["type"].shape[0] if G.nodes[p]["type"].ndim else None
        if (G.nodes[loop]["op"] != "loop" or a["reverse"] or a["stack_axis"] or a["cond"]
                is not None or not steps):
            continue
        nc, outs, i = a["n_carry"], a["body"][2], pd["attrs"]["index"]
        row = G.nodes[p]["type"]
        if i < nc or outs[i] not in outs[:nc] or G.nodes[n]["type"] != TensorType(
                row.dtype, row.shape[1:]):
            continue
        H = H if H is not None else copy_graph(G)
        carry = outs[:nc].index(outs[i])
        k = next(fresh_ids(H))
        H.add_node(k, **dict(pd, attrs={"index": carry}, type=G.nodes[n]["type"]))
        H.add_edge(loop, k, key=0)
        replace(H, n, k)
        log(H, "last_row_is_carry", k)
    return G if H is None else prune(H)


def dead_ys(G):
    """A loop's per-step outputs that nothing reads are not stacked: the loop loses them."""
    H = None
    for n, d in list(G.nodes(data=True)):
        if d["op"] != "loop":
            continue
        nc, body = d["attrs"]["n_carry"], d["attrs"]["body"]
        used = {G.nodes[v]["attrs"]["index"] for v in G._succ[n] if G.nodes[v]["op"] == "part"}
        if any(G.nodes[v]["op"] != "part" for v in G._succ[n]):
            continue  # read whole (a select): keep every part
        keep = [i for i in range(len(body[2])) if i < nc or i in used]
        if len(keep) == len(body[2]):
            continue
        H = H if H is not None else copy_graph(G)
        unit = thaw(body)
        outs = [unit.graph["outputs"][i] for i in keep]
        new_body = freeze(unit, list(unit.graph["inputs"]), outs)
        new = next(fresh_ids(H))
        H.add_node(new, **dict(H.nodes[n], attrs=dict(d["attrs"], body=new_body),
                               type=TupleType(tuple(d["type"].parts[i] for i in keep))))
        for port, a in enumerate(operands(H, n)):
            H.add_edge(a, new, key=port)
        for v in list(H._succ[n]):
            H.nodes[v]["attrs"] = dict(H.nodes[v]["attrs"], index=keep.index(
                H.nodes[v]["attrs"]["index"]))
            for key in list(H._succ[n][v]):
                H.remove_edge(n, v, key=key)
                H.add_edge(new, v, key=0)
        H.remove_node(n)
        log(H, "dead_ys", new)
    return G if H is None else prune(H)


def dead_inputs(G):
    """Sequences and consts a loop's body does not read are not handed to it (a backward
    loop that reads a saved value instead of recomputing the step leaves the step's slices
    unread). The first sequence stays when it alone sets the number of steps."""
    H = None
    for n, d in list(G.nodes(data=True)):
        a = d["attrs"]
        if d["op"] != "loop":
            continue
        ns, nc, body = a["n_seq"], a["n_carry"], a["body"]
        read, n_in = inputs_read(body), len(body[0])
        keep = [i for i in range(n_in) if i in read or ns <= i < ns + nc]
        if ns and a["length"] is None and not any(i < ns for i in keep):
            keep.insert(0, 0)
        if len(keep) == n_in:
            continue
        H = H if H is not None else copy_graph(G)
        args = operands(H, n)
        new_args = [args[i] for i in keep] + args[n_in:]  # the condition's operands stay
        new = next(fresh_ids(H))
        H.add_node(new, **dict(H.nodes[n], attrs=dict(a, body=reorder_inputs(body, keep),
                                                      n_seq=sum(i < ns for i in keep))))
        for port, x in enumerate(new_args):
            H.add_edge(x, new, key=port)
        replace(H, n, new)
        H.remove_node(n)
        log(H, "dead_inputs", new)
    return G if H is None else prune(H)


def accumulate_after(G):
    """A carry that only sums a per-step term (a weight gradient in a backward loop:
    acc + h_t^T @ g_t, acc + sum(g_t, 0)) becomes per-step outputs and one reduction after
    the loop: one GEMM over all steps instead of a small one per step. The term's factors
    are stacked (a factor that is a slice of a sequence is that sequence)."""
    H = None
    for n, d in list(G.nodes(data=True)):
        a = d["attrs"]
        if d["op"] != "loop" or a["cond"] is not None or a["stack_axis"] or any(
                G.nodes[v]["op"] != "part" for v in G._succ[n]):
            continue
        moves = _sums(a["body"], a["n_seq"], a["n_carry"])
        if moves:
            H = H if H is not None else copy_graph(G)
            _move_sums(H, n, moves)
    return G if H is None else prune(H)


def _sums(body, ns, nc):
    """[(carry, kind, factor refs)] for the carries of a body that only add a term of a
    kind accumulate_after moves: "mm" (acc + transpose(p) @ q) or "sum" (acc + sum(q, 0))."""
    nodes, outs = body[1], body[2]
    readers = {}
    for k, (_, _, refs, _, _) in enumerate(nodes):
        for r in refs:
            readers.setdefault(r, []).append(k)
    found = []
    for i in range(nc):
        c, o = -1 - (ns + i), outs[i]
        if o < 0 or readers.get(c) != [o] or c in outs or list(outs).count(o) != 1 \
                or readers.get(o):
            continue
        op, _, refs, t, _ = nodes[o]
        if op != "add" or len(refs) != 2 or refs.count(c) != 1:
            continue
        e = refs[1] if refs[0] == c else refs[0]
        if e < 0 or nodes[e][3] != t:
            continue
        e_op, e_attrs, e_refs, _, _ = nodes[e]
        e_attrs = dict(e_attrs)
        if e_op == "matmul" and len(t[1]) == 2 and e_refs[0] >= 0:
            tr = nodes[e_refs[0]]
            if tr[0] == "transpose" and dict(tr[1]).get("axes") == (1, 0) and \
                    _ndim(body, tr[2][0]) == 2 and _ndim(body, e_refs[1]) == 2:
                found.append((i, "mm", (tr[2][0], e_refs[1])))
        elif e_op == "sum" and e_attrs.get("axis") == (0,) and not e_attrs.get("keepdims"):
            found.append((i, "sum", (e_refs[0],)))
    # A factor that is a const or another carry's input is not a per-step value worth moving.
    return [m for m in found if all(r >= 0 or -1 - r < ns for r in m[2])]


def _ndim(body, r):
    return len(body[0][-1 - r][1]) if r < 0 else len(body[1][r][3][1])


def _move_sums(H, n, moves):
    """Rebuild loop n of H without the carries in `moves`, their terms' factors stacked."""
    from ..ir.tensor import Tensor
    from ..ops import api as F
    from ..ops.registry import get_op
    d = H.nodes[n]
    a = d["attrs"]
    body, ns, nc = a["body"], a["n_seq"], a["n_carry"]
    args = operands(H, n)
    moved = {i for i, _, _ in moves}
    kept = [i for i in range(nc) if i not in moved]
    U = thaw(body)
    ins, outs = list(U.graph["inputs"]), list(U.graph["outputs"])
    n_in = len(ins)

    def uid(r):
        return ins[-1 - r] if r < 0 else n_in + r
    old_ys = outs[nc:]
    new_ys = []  # body node ids stacked as extra per-step outputs (unless already a y)
    for _, _, factors in moves:
        for r in factors:
            if r >= 0 and uid(r) not in new_ys and uid(r) not in old_ys:
                new_ys.append(uid(r))
    body_outs = [outs[i] for i in kept] + outs[nc:] + new_ys
    body_ins = ins[:ns] + [ins[ns + i] for i in kept] + ins[ns + nc:]
    new_body = freeze(U, body_ins, body_outs)
    new_args = args[:ns] + [args[ns + i] for i in kept] + args[ns + nc:]
    attrs = dict(a, body=new_body, n_carry=len(kept))
    t = get_op("loop").infer([H.nodes[x]["type"] for x in new_args], attrs)
    new = next(fresh_ids(H))
    H.add_node(new, **dict(d, attrs=attrs, type=t))
    for port, x in enumerate(new_args):
        H.add_edge(x, new, key=port)
    g = builder(H)
    ys_at = {u: len(kept) + k for k, u in enumerate(old_ys + new_ys)}  # part index
    with g.emitting(d["phase"], d.get("origin"), d.get("trace")):
        loop = Tensor(g, new)

        def stacked(r):  # all steps of a factor: its sequence, or its new stack
            if r < 0:
                return Tensor(g, args[-1 - r])
            return _part(loop, ys_at[uid(r)])
        results = {}
        for i, kind, factors in moves:
            if kind == "mm":
                p, q = (stacked(r) for r in factors)
                p2 = F.reshape(p, (-1, p.type.shape[-1]))
                q2 = F.reshape(q, (-1, q.type.shape[-1]))
                total = F.matmul(F.transpose(p2, (1, 0)), q2)
            else:
                (q,) = (stacked(r) for r in factors)
                total = F.sum(q, axis=(0, 1))
            if H.nodes[args[ns + i]]["op"] != "zeros_like":  # a gradient starts from zeros
                total = Tensor(g, args[ns + i]) + total
            results[i] = total.id
    for v in list(H._succ[n]):
        j = H.nodes[v]["attrs"]["index"]
        if j in results:
            replace(H, v, results[j])
            continue
        H.nodes[v]["attrs"] = dict(H.nodes[v]["attrs"], index=kept.index(j) if j < nc
                                   else j - len(moved))
        for key in list(H._succ[n][v]):
            H.remove_edge(n, v, key=key)
            H.add_edge(new, v, key=0)
    log(H, "accumulate_after", new)


def _part(loop, index):
    from ..ops.build import apply
    return apply("part", [loop], index=index)


def dead_carries(G):
    """Carries whose final value nothing reads and that no other result of the step needs
    (an accumulator of a gradient nobody asked for, such as a constant's) are dropped: the
    loop neither carries nor computes them."""
    H = None
    for n, d in list(G.nodes(data=True)):
        a = d["attrs"]
        if d["op"] != "loop" or a["cond"] is not None or any(
                G.nodes[v]["op"] != "part" for v in G._succ[n]):
            continue
        ns, nc, body = a["n_seq"], a["n_carry"], a["body"]
        used = {G.nodes[v]["attrs"]["index"] for v in G._succ[n]}
        dead = _dead_carries(body, ns, nc, used)
        if not dead:
            continue
        H = H if H is not None else copy_graph(G)
        U = thaw(body)
        ins, outs = list(U.graph["inputs"]), list(U.graph["outputs"])
        keep_c = [i for i in range(nc) if i not in dead]
        new_body = freeze(U, ins[:ns] + [ins[ns + i] for i in keep_c] + ins[ns + nc:],
                          [outs[i] for i in keep_c] + outs[nc:])
        args = operands(H, n)
        new_args = args[:ns] + [args[ns + i] for i in keep_c] + args[ns + nc:]
        parts = d["type"].parts
        new = next(fresh_ids(H))
        H.add_node(new, **dict(d, attrs=dict(a, body=new_body, n_carry=len(keep_c)),
                               type=TupleType(tuple(parts[i] for i in keep_c)
                                              + tuple(parts[nc:]))))
        for port, x in enumerate(new_args):
            H.add_edge(x, new, key=port)
        for v in list(H._succ[n]):
            j = H.nodes[v]["attrs"]["index"]
            H.nodes[v]["attrs"] = dict(H.nodes[v]["attrs"], index=keep_c.index(j) if j < nc
                                       else j - len(dead))
            for key in list(H._succ[n][v]):
                H.remove_edge(n, v, key=key)
                H.add_edge(new, v, key=0)
        H.remove_node(n)
        log(H, "dead_carries", new)
    return G if H is None else prune(H)


def _dead_carries(body, ns, nc, used):
    """The carries of `body` no read part and no live output needs (a fixed point: a dead
    carry's own step does not keep another alive)."""
    nodes, outs = body[1], body[2]
    reads = []  # per node: the inputs it depends on
    for _, _, refs, _, _ in nodes:
        got = set()
        for r in refs:
            got |= {-1 - r} if r < 0 else reads[r]
        reads.append(got)

    def deps(r):
        return {-1 - r} if r < 0 else reads[r]
    dead = {i for i in range(nc) if i not in used}
    changed = True
    while changed:
        changed = False
        live_needs = set()
        for j, r in enumerate(outs):
            if j >= nc or j not in dead:
                live_needs |= deps(r)
        for i in list(dead):
            if ns + i in live_needs:
                dead.discard(i)
                changed = True
    return dead
