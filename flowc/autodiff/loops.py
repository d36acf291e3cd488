"""The derivative rule of `loop` (flowc/ops/control.py): the backward of a loop is a loop
running the other way.

Policy "carries" (Theano's): a second forward loop stacks the carry each step starts from;
the backward loop gets those, the sequences and the ys' cotangents as its sequences, and
carries the carries' cotangents and the sums of the consts' cotangents. Its body recomputes
the step from the saved carry and differentiates it (flowc's own vjp on the inlined body), so
memory is one carry per step and the cost one more forward pass.
"""
from __future__ import annotations

from ..ir.body import in_types, inline, inputs_read, out_types, reorder_inputs, trace, with_inputs
from ..ir.errors import GradError
from ..ir.types import is_float
from ..ops import api as F
from ..ops.api_control import cond_node
from ..ops.build import apply


def _parts(node, first, n):
    return [apply("part", [node], index=first + i) for i in range(n)]


def loop_vjp(c):
    """Cotangents of a loop's operands (seqs, inits, consts) from those of its parts."""
    a = c.attrs
    body, ns, nc, rev = a["body"], a["n_seq"], a["n_carry"], a["reverse"]
    graph = c.out.graph
    n_in = len(c.inputs) - a["n_cond"]
    seqs, inits, consts = c.inputs[:ns], c.inputs[ns:ns + nc], c.inputs[ns + nc:n_in]
    cond_args = c.inputs[n_in:]
    if a["cond"] is not None and a["length"] is None and not ns:
        raise GradError("reverse mode through a while_loop needs a bound on its steps: give "
                        "max_steps= (the backward pass stores one carry per step)")
    bin_, bout = in_types(body), out_types(body)
    ny = len(bout) - nc
    g_final, g_ys = c.g[:nc], list(c.g[nc:])
    k = a["stack_axis"]
    if k:  # the ys' cotangents are scanned as sequences: their step axis goes first
        g_ys = [None if g is None else F.transpose(
            g, (k,) + tuple(i for i in range(g.ndim) if i != k)) for g in g_ys]
    fc = [i for i in range(nc) if is_float(inits[i].dtype)]
    fk = [j for j in range(len(consts)) if is_float(consts[j].dtype)]
    fx = [i for i in range(ns) if is_float(seqs[i].dtype)]
    gy = [i for i in range(ny) if g_ys[i] is not None]
    if not (fc or gy) or not (fc or fk or fx):
        return [None] * len(c.inputs)

    # 1. The backward body: the step recomputed from its saved carry, then flowc's vjp.
    # With save="carries" the carries a step makes are the next step's saved ones: the
    # vjp reads those (tanh's derivative reads tanh's output) instead of recomputing them.
    n_gy, n_gc, n_k = len(gy), len(fc), len(bin_) - ns - nc
    nxt = a["save"] in ("carries", "products")

    def backward(*h):
        p = 0
        cts_y = h[p:p + n_gy]; p += n_gy
        xs = h[p:p + ns]; p += ns
        cs = h[p:p + nc]; p += nc
        cts_c = h[p:p + n_gc]; p += n_gc
        accs = h[p:p + len(fk)]; p += len(fk)
        ks = h[p:p + n_k]; p += n_k
        outs = inline(body, graph, list(xs) + list(cs) + list(ks))
        from .reverse import vjp_many
        wrt = [cs[i] for i in fc] + [xs[i] for i in fx] + [ks[j] for j in fk]
        grads = vjp_many([outs[i] for i in fc] + [outs[nc + i] for i in gy],
                         list(cts_c) + list(cts_y), wrt)
        g_c, g_x, g_k = grads[:n_gc], grads[n_gc:n_gc + len(fx)], grads[n_gc + len(fx):]
        result = list(g_c) + [acc + g for acc, g in zip(accs, g_k)] + list(g_x)
        if nxt:
            _read_saved(graph, outs[:nc], h[p:], set(map(id, h)), result)
        return result

    types = ([bout[nc + i] for i in gy] + bin_[:ns] + bin_[ns:ns + nc]
             + [inits[i].type for i in fc] + [consts[j].type for j in fk] + bin_[ns + nc:]
             + (bout[:nc] if nxt else []))  # the step's own types: as specific as it made them
    back_body, back_cap, _ = trace(graph, types, backward)
    used_next = []
    if nxt:  # the saved next carries the body reads become sequences after the saved ones
        read, at = inputs_read(back_body), len(types) - nc
        used_next = [i for i in range(nc) if at + i in read]
        head = n_gy + ns + nc
        back_body = reorder_inputs(back_body, list(range(head)) + [at + i for i in used_next]
                                   + list(range(head, at))
                                   + list(range(len(types), len(back_body[0]))))
    layout = (n_gy, ns, nc + len(used_next), n_gc, len(fk))
    residuals = split_residuals(back_body, layout, a["save"] == "products") \
        if a["save"] in ("residuals", "products") else None

    # 2. The forward loop again, stacking what the backward loop reads: the carry each step
    # starts from, and with save="residuals" the step's values the vjp reads. Its first
    # results are the forward loop's own, so the optimizer merges the two.
    def forward(*h):
        outs = inline(body, graph, h)
        extra = [] if residuals is None else inline(
            residuals[0], graph, list(h[:ns + nc]) + [outs[i] for i in used_next]
            + list(h[ns + nc:]) + list(back_cap))
        return outs + [h[ns + i] for i in range(nc)] + list(extra)
    res_body, res_cap, _ = trace(graph, bin_, forward)
    if residuals is not None:  # the saved values are the step's own: one copy of each
        res_body = _merged_duplicates(res_body)
    res = apply("loop", list(c.inputs[:n_in]) + res_cap + list(cond_args), body=res_body,
                n_seq=ns, n_carry=nc, reverse=rev, length=a["length"], cond=a["cond"],
                n_cond=a["n_cond"], save=a["save"])
    n_res = 0 if residuals is None else len(residuals[2])
    starts = _parts(res, nc + ny, nc)
    saved = (starts + [_next_rows(starts[i], apply("part", [res], index=i), rev)
                       for i in used_next] + _parts(res, nc + ny + nc, n_res))
    if a["cond"] is not None:  # the steps that ran: as many rows as the saved carries have
        seqs = [s[:saved[0].shape[0]] for s in seqs]
    if residuals is not None:  # the backward body reads the saved values instead
        back_body = residuals[1]
    window = None
    if a["truncate"] >= 0:  # Theano's truncate_gradient: only the last k steps run back
        steps = saved[0].shape[0] if saved else seqs[0].shape[0]
        first = F.maximum(steps - a["truncate"], 0)
        cut = (lambda v: v[:a["truncate"]]) if rev else (lambda v: v[first:])
        g_ys = [None if g is None else cut(g) for g in g_ys]
        seqs, saved = [cut(v) for v in seqs], [cut(v) for v in saved]
        window = (steps, first)

    # 3. The backward loop, over the steps the other way.
    start = [g_final[i] if g_final[i] is not None else F.zeros_like(inits[i]) for i in fc]
    start = [F.cast(s, inits[i].dtype) if s.dtype != inits[i].dtype else s
             for s, i in zip(start, fc)]
    zeros = [F.zeros_like(consts[j]) for j in fk]
    length = None if a["cond"] is not None else a["length"]
    back = apply("loop", [g_ys[i] for i in gy] + list(seqs) + saved + start + zeros
                 + list(consts) + back_cap, body=back_body,
                 n_seq=n_gy + ns + nc + n_res + len(used_next),
                 n_carry=n_gc + len(fk), reverse=not rev, length=length, save=a["save"])
    outs = _parts(back, 0, n_gc + len(fk) + len(fx))
    if window is not None:
        outs = _untruncated(outs, window, n_gc, len(fk), [c.inputs[i] for i in fx], rev,
                            a["truncate"])
    cts = [None] * len(c.inputs)
    for k, i in enumerate(fc):
        cts[ns + i] = outs[k]
    for k, j in enumerate(fk):
        cts[ns + nc + j] = outs[n_gc + k]
    for k, i in enumerate(fx):
        cts[i] = outs[n_gc + len(fk) + k]
    return cts


def _read_saved(graph, made, saved, placeholders, keep):
    """Make the recomputed step's readers of each new carry in `made` read the saved one
    instead (unless the carry is an input passed through, or a result of the body)."""
    G = graph.nx
    kept = {t.id for t in keep}
    for m, s in zip(made, saved):
        if id(m) in placeholders or m.id in kept or m.id == s.id or m.type != s.type:
            continue
        for _, v, key in list(G.out_edges(m.id, keys=True)):
            G.remove_edge(m.id, v, key=key)
            G.add_edge(s.id, v, key=key)


def _next_rows(starts, final, rev):
    """Per step, the carry the step made: the next step's saved carry, the final carry
    last (first for a reverse loop); as many rows as `starts`, none for a loop of 0 steps."""
    row = F.expand_dims(final, 0)
    if rev:
        return F.concatenate([row, starts], 0)[:-1]
    return F.concatenate([starts, row], 0)[1:]


def _untruncated(outs, window, n_gc, n_k, xs, rev, k):
    """The truncated backward loop's results as the whole loop's cotangents: zeros for the
    steps before the window (and for the initial carries unless the window reached them)."""
    steps, first = window
    reached = F.less_equal(steps, k)
    out = [F.where(reached, g, F.zeros_like(g)) for g in outs[:n_gc]] + list(outs[n_gc:n_gc + n_k])
    for g, x in zip(outs[n_gc + n_k:], xs):
        pad = F.zeros_like(x)[k:] if rev else F.zeros_like(x)[:first]
        out.append(F.concatenate([g, pad] if rev else [pad, g], 0))
    return out


def _merged_duplicates(body):
    """The body with nodes computing the same thing merged (CSE), in the same order."""
    from ..ir.body import freeze, thaw
    from ..passes.cleanup import cse
    U = cse(thaw(body))
    return freeze(U, list(U.graph["inputs"]), list(U.graph["outputs"]))


def split_residuals(back_body, layout, products=False):
    """For save="residuals": (a body computing, from a step's slices, carries, consts and
    captured tensors, the values the backward body's vjp part reads; the backward body with
    those values as inputs (sequences after the saved carries); their count), or None when
    the vjp reads nothing worth saving. Values that depend on no slice or carry are left
    to the backward body (stacking them would repeat one value every step).

    products=True (save="products", JAX's dots_saveable): only the matrix products those
    values are computed from are saved; the elementwise work between is recomputed."""
    from ..ir.body import freeze, thaw
    from ..ir.graph import downstream
    n_gy, ns, nc, n_gc, n_k = layout
    U = thaw(back_body)
    ins = list(U.graph["inputs"])
    cot = ins[:n_gy] + ins[n_gy + ns + nc:n_gy + ns + nc + n_gc + n_k]
    fwd = ins[n_gy:n_gy + ns + nc]
    consts = ins[n_gy + ns + nc + n_gc + n_k:]
    after = downstream(U, cot)
    varying = downstream(U, fwd)
    outs = set(U.graph["outputs"])
    res = [n for n in U.nodes if n not in after and n in varying and n not in ins
           and (n in outs or any(v in after for v in U._succ[n]))]
    if products:
        res = _products_behind(U, res, set(ins))
    if not res:
        return None
    res.sort()
    body_r = freeze(U, fwd + consts, res)
    back = freeze(U, ins[:n_gy + ns + nc] + res + ins[n_gy + ns + nc:], U.graph["outputs"])
    return body_r, back, res


def _products_behind(U, needed, ins):
    """The matrix products the `needed` values are computed from: walking up from them,
    stop at each product (kept) and at the inputs."""
    from ..ops.loop_hoist import CONTRACTIONS
    found, seen, stack = set(), set(), list(needed)
    while stack:
        n = stack.pop()
        if n in seen or n in ins:
            continue
        seen.add(n)
        if U.nodes[n]["op"] in CONTRACTIONS:
            found.add(n)
            continue
        stack.extend(U._pred[n])
    return list(found)


def loop_jvp(c):
    """Tangents of a loop's parts: one loop over primal and tangent values together (its
    body is the jvp of the step), read back as a tuple lined up with the loop's parts."""
    a = c.attrs
    body, ns, nc = a["body"], a["n_seq"], a["n_carry"]
    graph = c.out.graph
    n_in = len(c.inputs) - a["n_cond"]
    seqs, inits, consts = c.inputs[:ns], c.inputs[ns:ns + nc], c.inputs[ns + nc:n_in]
    ts = c.tangents[:n_in]
    tseq = [i for i in range(ns) if ts[i] is not None]
    tcar = [i for i in range(nc) if is_float(inits[i].dtype)]
    tcon = [j for j in range(len(consts)) if ts[ns + nc + j] is not None]
    bin_, bout = in_types(body), out_types(body)
    ny = len(bout) - nc
    tys = [i for i in range(ny) if is_float(bout[nc + i].dtype)]
    if not (tseq or tcon or any(ts[ns + i] is not None for i in tcar)):
        return None
    from .forward import jvp as fjvp
    n_ts, n_tc = len(tseq), len(tcar)

    def step(*h):
        xs, txs = h[:ns], h[ns:ns + n_ts]
        cs, tcs = h[ns + n_ts:ns + n_ts + nc], h[ns + n_ts + nc:ns + n_ts + nc + n_tc]
        ks, tks = h[ns + n_ts + nc + n_tc:ns + n_ts + nc + n_tc + len(consts)], \
            h[ns + n_ts + nc + n_tc + len(consts):]
        outs = inline(body, graph, list(xs) + list(cs) + list(ks))
        wrt = [xs[i] for i in tseq] + [cs[i] for i in tcar] + [ks[j] for j in tcon]
        tans = list(txs) + list(tcs) + list(tks)
        want = [outs[i] for i in tcar] + [outs[nc + i] for i in tys]
        got = fjvp(want, wrt, tans) if want else []
        return outs[:nc] + got[:n_tc] + outs[nc:] + got[n_tc:]

    types = (bin_[:ns] + [bin_[i] for i in tseq] + bin_[ns:ns + nc] + [bin_[ns + i] for i in tcar]
             + bin_[ns + nc:] + [bin_[ns + nc + j] for j in tcon])
    jbody, cap, _ = trace(graph, types, step)
    start = [ts[ns + i] if ts[ns + i] is not None else F.zeros_like(inits[i]) for i in tcar]
    cond = a["cond"]
    if cond is not None:  # the condition reads the primal carries only
        cond = with_inputs(cond, nc, [inits[i].type for i in tcar])
    j = apply("loop", list(seqs) + [ts[i] for i in tseq] + list(inits) + start + list(consts)
              + [ts[ns + nc + k] for k in tcon] + cap + list(c.inputs[n_in:]), body=jbody,
              n_seq=ns + n_ts, n_carry=nc + n_tc, reverse=a["reverse"], length=a["length"],
              stack_axis=a["stack_axis"], cond=cond, n_cond=a["n_cond"])
    # Parts of j: carries, carry tangents, ys, y tangents. Line the tangents up with c.out's
    # parts (integer parts, which have none, point at their own values).
    idx = [nc + tcar.index(i) if i in tcar else i for i in range(nc)]
    idx += [nc + n_tc + ny + tys.index(i) if i in tys else nc + n_tc + i for i in range(ny)]
    return apply("select", [j], indices=tuple(idx))


def loop_batch(c):
    """The loop over a new leading axis: batched sequences scan their second axis (moved to
    the front first), every carry is batched, ys stack along the axis after the batch. A
    while loop runs while any entry's condition holds; an entry whose condition fails keeps
    its carries (`where`), as JAX's batched while does."""
    from ..ops.batchutil import materialize
    a = c.attrs
    body, ns, nc, cond = a["body"], a["n_seq"], a["n_carry"], a["cond"]
    graph = c.out.graph
    n_body = len(c.inputs) - a["n_cond"]
    ins, flags = list(c.inputs[:n_body]), list(c.batched[:n_body])
    cins, cflags = list(c.inputs[n_body:]), list(c.batched[n_body:])
    if cond is not None and len(out_types(body)) > nc:
        raise GradError("batching a loop with a condition and per-step outputs (scan with "
                        "until) is not supported yet")
    ref = next(x for x, b in zip(c.inputs, c.batched) if b)
    for i in range(ns):  # (B, T, ...) -> (T, B, ...): the steps lead
        if flags[i]:
            ins[i] = F.transpose(ins[i], (1, 0) + tuple(range(2, ins[i].ndim)))
    for i in range(ns, ns + nc):
        if not flags[i]:
            ins[i], flags[i] = materialize(ins[i], ref), True
    bin_ = in_types(body)
    n_in = len(bin_)

    def batched(bdy, values, bflags, types):
        return batched_body(graph, bdy, values, bflags, types)

    def lanes(carries):  # (B,) booleans: which entries' conditions hold
        return batched(cond, list(carries) + cins, [True] * nc + cflags, in_types(cond))[0]

    def step(*h):
        got = batched(body, list(h), flags, bin_)
        if cond is None:
            return got
        live = lanes(h[ns:ns + nc])
        return [F.where(F.reshape(live, (-1,) + (1,) * (g.ndim - 1)), g, old)
                for g, old in zip(got, h[ns:ns + nc])]

    types = [_batched(bin_[i], flags[i], c.size) for i in range(n_in)]
    bbody, cap, _ = trace(graph, types, step)
    test, tcap = None, []
    if cond is not None:  # the loop goes on while any entry's condition holds
        def any_live(*h):
            live = lanes(h[:nc])
            return [F.greater(F.sum(F.cast(live, "int64")), 0)]
        test, tcap, _ = trace(graph, types[ns:ns + nc], any_live)
    return apply("loop", ins + cap + tcap, body=bbody, n_seq=ns, n_carry=nc,
                 reverse=a["reverse"], length=a["length"], stack_axis=a["stack_axis"] + 1,
                 cond=test, n_cond=len(tcap), save=a["save"], truncate=a["truncate"])


def batched_body(graph, body, values, flags, types, ref=None):
    """The body's outputs over the batch: inlined on stand-ins of `types` for the flagged
    (batched) values, then batched with them; an output the batch does not reach is
    repeated along it (after the first flagged value, or `ref`)."""
    from ..ops.batchutil import materialize
    from .batching import batch as fbatch
    stand = [leaf_like(graph, types[i]) if flags[i] else values[i] for i in range(len(values))]
    outs = inline(body, graph, stand)
    repl = {stand[i]: values[i] for i in range(len(values)) if flags[i]}
    got = fbatch(outs, repl) if repl else outs
    bref = next((values[i] for i in range(len(values)) if flags[i]), ref)
    return [g if repl and g.ndim == o.ndim + 1 else materialize(g, bref)
            for g, o in zip(got, outs)]


def _batched(t, flag, size):
    from ..ir.types import TensorType
    return TensorType(t.dtype, ((size,) + tuple(t.shape)) if flag else tuple(t.shape))


def leaf_like(graph, t):
    """A stand-in input of type t (replaced by its batched value right after)."""
    from ..ops.build import leaf
    return leaf("input", t, name="step", graph=graph)


# -- cond: the rules are conds (or, batched over the predicate, a where) -------------------------
def cond_vjp(c):
    """The operands' cotangents: a cond on the same predicate whose branches recompute
    their forward and differentiate it (the predicate gets none)."""
    from .reverse import vjp_many
    pred, args, graph = c.inputs[0], c.inputs[1:], c.out.graph
    branches = c.attrs["branches"]
    fa = [i for i, a in enumerate(args) if is_float(a.dtype)]
    gi = [i for i, g in enumerate(c.g) if g is not None]
    if not fa or not gi:
        return [None] * len(c.inputs)
    n = len(args)

    def run_of(k):
        def run(*h):
            outs = inline(branches[k], graph, list(h[:n]))
            return vjp_many([outs[i] for i in gi], list(h[n:]), [h[i] for i in fa])
        return run
    node = cond_node(graph, pred, list(args) + [c.g[i] for i in gi], run_of,
                      [a.type for a in args] + [c.g[i].type for i in gi])
    cts = [None] * len(c.inputs)
    for k, i in enumerate(fa):
        cts[1 + i] = apply("part", [node], index=k)
    return cts


def cond_jvp(c):
    """Tangents of a cond's parts: a cond of the branches' jvps, lined up by select."""
    from .forward import jvp as fjvp
    pred, args, graph = c.inputs[0], c.inputs[1:], c.out.graph
    branches = c.attrs["branches"]
    ts = c.tangents[1:]
    ti = [i for i, t in enumerate(ts) if t is not None]
    if not ti:
        return None
    n, n_out = len(args), len(c.out.type.parts)
    fo = [k for k, t in enumerate(c.out.type.parts) if is_float(t.dtype)]

    def run_of(k):
        def run(*h):
            outs = inline(branches[k], graph, list(h[:n]))
            tans = fjvp([outs[j] for j in fo], [h[i] for i in ti], list(h[n:])) if fo else []
            return outs + list(tans)
        return run
    node = cond_node(graph, pred, list(args) + [ts[i] for i in ti], run_of,
                      [a.type for a in args] + [ts[i].type for i in ti])
    idx = [n_out + fo.index(k) if k in fo else k for k in range(n_out)]
    return apply("select", [node], indices=tuple(idx))


def cond_batch(c):
    """A cond over a new leading axis: with the predicate the same for every entry, a cond of
    the batched branches (still lazy); with a batched predicate, both branches batched and
    `where` per entry (as JAX does: laziness is lost there)."""
    pred, args, graph = c.inputs[0], c.inputs[1:], c.out.graph
    flags = c.batched[1:]
    branches = c.attrs["branches"]
    n = len(args)

    def batched_outputs(k, h):
        return batched_body(graph, branches[k], list(h), flags, in_types(branches[k]), pred)
    if not c.batched[0]:
        types = [_batched(t, f, c.size) for t, f in zip(in_types(branches[0]), flags)]
        return cond_node(graph, pred, args, lambda k: lambda *h: batched_outputs(k, h), types)
    eager = [batched_outputs(k, args) for k in range(2)]
    out = []
    for a, b in zip(*eager):
        p = pred if a.ndim == 1 else F.expand_dims(pred, tuple(range(1, a.ndim)))
        out.append(F.where(p, a, b))
    return out
