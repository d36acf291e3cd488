"""Loops as users write them: fc.scan (JAX's signature) and fc.fori_loop, built on the
`loop` op (flowc/ops/control.py) with the body traced from a Python function."""
from __future__ import annotations

from ..ir.body import trace, with_inputs
from ..ir.errors import MissingInputError
from ..ir.graph import default_graph
from ..ir.tensor import Tensor
from ..ir.types import TensorType
from .build import apply, as_tensor, op_error


def _flat(v, what):
    """(kind, tensors) of a tensor, a tuple/list of tensors, or None."""
    if v is None:
        return None, []
    if isinstance(v, (tuple, list)):
        return type(v), list(v)
    return "one", [v]


def _pack(kind, items):
    if kind is None:
        return None
    if kind == "one":
        return items[0]
    return kind(items)


def _graph_of(values):
    for v in values:
        if isinstance(v, Tensor):
            return v.graph
    return default_graph()


def scan(f, init, xs=None, length=None, reverse=False, save="products", truncate=-1,
         carried=None, cond=None, allowed_params=None):
    """Run f(carry, x) -> (new_carry, y) once per step: x is the step's slice of xs (a
    tensor, a tuple/list of them, or None with `length` steps), carry a tensor or a
    tuple/list of them. Returns (final carry, ys stacked over the steps). reverse=True walks
    the steps from last to first (ys stay in step order). The body is traced once; work in
    it that reads no carry or slice is done once, before the loop, and products that read
    slices but no carry (an RNN's x_t @ W) are done for all steps at once before it
    (flowc/ops/loop_hoist.py). `carried` ({outer tensor:
    carry index}) makes the body read that carry wherever f reads the outer tensor (how
    theano.scan threads a shared variable that f updates). `cond(carry)`, when given, runs
    each step only while it is true (checked before the step; see while_loop).

    `save` is what reverse mode keeps per step, besides the carry each step starts from
    (the carry a step makes is the next one's, so the backward pass never recomputes it):
    "products" (the default, JAX's dots_saveable: the matrix products the derivative needs,
    e.g. an LSTM's gate pre-activations; the elementwise work between is recomputed),
    "carries" (nothing more: the backward loop recomputes the rest of the step, products
    included) or "residuals" (every value of the step the derivative reads: nothing
    recomputed, the most memory). tools/bench_loops.py measures them against hand-written
    NumPy BPTT; an LSTM step (T=28, B=64, H=128) ran products 1.36x, carries 1.51x and
    residuals 1.55x the hand step, and an RNN step saves no product (products = carries).
    save=("every", k) checkpoints: a loop over chunks of k steps
    whose body is a loop over the k steps, so the backward pass keeps one carry per chunk and
    one chunk's carries at a time (memory about T/k + k carries, one more forward pass).
    `truncate=k` (k >= 0) differentiates through the last k steps only (Theano's
    truncate_gradient: truncated backpropagation through time). `allowed_params`, when
    given, lists the parameters f may read (theano.scan(strict=True)): reading another is
    an error naming it."""
    if isinstance(save, tuple) and len(save) == 2 and save[0] == "every":
        return _checkpointed(f, init, xs, length, reverse, save[1], truncate, carried, cond)
    if save not in ("residuals", "carries", "products"):
        raise op_error("scan", [], f"save must be 'carries', 'products', 'residuals' or "
                       f"('every', k), got {save!r}")
    ckind, carries = _flat(init, "init")
    xkind, seqs = _flat(xs, "xs")
    if ckind is None:
        raise op_error("scan", [], "init must be a tensor or a tuple/list of tensors")
    graph = _graph_of(carries + seqs)
    carries = [as_tensor(c, graph=graph) for c in carries]
    seqs = [as_tensor(s, graph=graph) for s in seqs]
    for s in seqs:
        if s.ndim == 0:
            raise op_error("scan", [s], "a sequence needs a leading (step) axis")
    if length is not None and (not isinstance(length, int) or length < 0):
        raise op_error("scan", [], f"length must be a non-negative int, got {length!r}")
    ns, nc = len(seqs), len(carries)
    ykind, states = [], []  # states: random streams drawn from in the step (see below)

    def step(*holders):
        x = _pack(xkind, list(holders[:ns]))
        c = _pack(ckind, list(holders[ns:ns + nc]))
        graph.random_carries.update(h.id for h in holders[ns + nc:])
        out = f(c, x)
        if not isinstance(out, tuple) or len(out) != 2:
            raise op_error("scan", [], f"the step function must return (new_carry, y), got "
                           f"{type(out).__name__}")
        kind, new = _flat(out[0], "carry")
        if kind != ckind and not (kind in (tuple, list) and ckind in (tuple, list)) \
                or len(new) != nc:
            raise op_error("scan", [], f"the step returns {len(new)} carries, it was given {nc}")
        new = [as_tensor(v, like=holders[ns + i]) for i, v in enumerate(new)]
        for i, (v, h) in enumerate(zip(new, holders[ns:])):
            if v.dtype != h.dtype:
                raise op_error("scan", [v, h], f"carry {i}: the step returns {v.type.short()} "
                               f"for a carry of {h.type.short()}; cast it (a carry keeps its "
                               "dtype)")
        k, ys = _flat(out[1], "y")
        ykind.append(k)
        keys = [_next_key(h) for h in holders[ns + nc:]]
        return new + keys + [as_tensor(y, graph=graph) for y in ys]

    slice_types = [TensorType(s.dtype, s.type.shape[1:]) for s in seqs]
    # A random stream drawn from inside the step is carried with a key that changes every
    # step (the draws are new numbers each step, and each call, as outside a loop): a
    # second trace reads those carries wherever the step read the stream's state.
    for _ in range(2):
        alias = {t.id: ns + k for t, k in (carried or {}).items()}
        alias.update({t.id: ns + nc + j for j, t in enumerate(states)})
        del ykind[:]
        first = graph._next_id
        body, captured, _ = trace(graph, slice_types + [c.type for c in carries]
                                  + [t.type for t in states], step, alias=alias)
        found = _streams_read(graph, captured, first, states)
        if not found:
            break
        states = states + found
    if allowed_params is not None:
        ok = {t.id for t in allowed_params} | {t.id for t in states} | \
            {t.id for t in (carried or {})}
        stray = [t for t in captured if t.op == "param" and t.id not in ok]
        if stray:
            raise op_error("scan", stray, "the step reads a shared variable that is not among "
                           f"non_sequences (strict=True): {stray[0].name or stray[0].describe()}",
                           MissingInputError)
    starts = [_next_key(t) for t in states]
    test, test_args = None, []
    if cond is not None:
        def check(*h):
            r = as_tensor(cond(_pack(ckind, list(h[:nc]))), graph=graph)
            if r.ndim != 0:
                raise op_error("while_loop", [r], f"the condition must be a scalar, got "
                               f"{r.type.short()}")
            return [r if r.dtype == "bool" else apply("cast", [r], dtype="bool")]
        test, test_args, _ = trace(graph, [c.type for c in carries] + [t.type for t in states],
                                   check)
    if test is None and ns:
        from .loop_hoist import hoist_sequence_work
        body, seqs, rest = hoist_sequence_work(graph, body, seqs, carries + starts + captured,
                                               ns, nc + len(states))
        ns, captured = len(seqs), rest[nc + len(states):]
    node = apply("loop", seqs + carries + starts + captured + test_args, body=body, n_seq=ns,
                 n_carry=nc + len(states), reverse=bool(reverse), length=length, cond=test,
                 n_cond=len(test_args), save=save, truncate=int(truncate))
    n_out = len(node.type.parts)
    parts = [apply("part", [node], index=i) for i in range(n_out)]
    return _pack(ckind, parts[:nc]), _pack(ykind[0], parts[nc + len(states):])


def _checkpointed(f, init, xs, length, reverse, k, truncate, carried, cond):
    """scan with save=("every", k): an outer loop over chunks of k steps (its carries are
    the checkpoints) whose body scans the chunk's k steps (recomputed in the backward pass).
    The number of steps must be a known multiple of k."""
    _, seqs = _flat(xs, "xs")
    steps = length if not seqs else seqs[0].type.shape[0] if isinstance(seqs[0], Tensor) \
        else len(seqs[0])
    if not isinstance(k, int) or k < 1:
        raise op_error("scan", [], f"save=('every', k) needs a positive int k, got {k!r}")
    if steps is None or steps % k:
        raise op_error("scan", [], f"save=('every', {k}) needs a number of steps known when "
                       f"the graph is built and a multiple of {k}, got {steps}")
    if cond is not None or carried or truncate >= 0:
        raise op_error("scan", [], "save=('every', k) does not combine with a condition, "
                       "carried shared variables or truncate yet")
    xkind, _ = _flat(xs, "xs")
    graph = _graph_of(list(_flat(init, "init")[1]) + seqs)
    seqs = [as_tensor(s, graph=graph) for s in seqs]
    chunks = [s.reshape((steps // k, k) + tuple(s.shape[1:])) for s in seqs]
    ykinds = []

    def chunk(c, xc):
        def inner(ci, x):
            new, y = f(ci, x)
            ykinds.append(_flat(y, "y")[0])
            return new, y
        return scan(inner, c, xc, length=None if xc is not None else k, reverse=reverse,
                    save="carries")
    final, ys = scan(chunk, init, _pack(xkind, chunks) if seqs else None,
                     length=None if seqs else steps // k, reverse=reverse, save="carries")
    _, flat_ys = _flat(ys, "y")
    flat_ys = [y.reshape((steps,) + tuple(y.shape[2:])) for y in flat_ys]
    return final, _pack(ykinds[0] if ykinds else None, flat_ys)


def _streams_read(graph, captured, first, known):
    """The random states that the step's draws read: captured directly, or behind a draw
    made in the step that the trace hoisted (it reads no carry), as Tensors."""
    from ..ir.graph import upstream
    marks = set(graph.default_updates) | graph.random_carries
    ids = {t.id for t in captured if t.id in marks}
    hoisted = [t.id for t in captured if t.id >= first]
    if hoisted:  # one walk for all of them
        ids |= upstream(graph.nx, hoisted) & marks
    seen = {t.id for t in known}
    return [Tensor(graph, i) for i in sorted(ids - seen)]


def _next_key(state):
    """A random state [key, counter] with the next key of a full-period LCG over 53-bit keys
    (the counter, which advances per call, stays): a stream of its own per loop step."""
    from . import api as F
    key = F.mod(F.cast(state[0], "int64") * 5 + 0x1D2B3C4D5E6F7, 2 ** 53)
    return F.concatenate([F.expand_dims(F.cast(key, "float64"), 0), state[1:]])


def cond(pred, true_fn, false_fn, *operands):
    """true_fn(*operands) if pred else false_fn(*operands), running only the branch taken.
    Both must return the same structure of tensors (dtypes equal, shapes compatible); what
    either reads from outside is passed in. Differentiable in every mode (the predicate gets
    no gradient); under batching with a batched predicate both branches run and `where`
    picks per entry."""
    graph = _graph_of([pred] + list(operands))
    pred = as_tensor(pred, graph=graph)
    if pred.ndim != 0:
        raise op_error("cond", [pred], f"the predicate must be a scalar, got {pred.type.short()}")
    if pred.dtype != "bool":
        pred = apply("cast", [pred], dtype="bool")
    args = [as_tensor(a, graph=graph) for a in operands]
    kinds = []

    def branch(fn):
        def run(*h):
            out = fn(*h)
            kind, outs = _flat(out, "result")
            kinds.append(kind)
            return [as_tensor(o, graph=graph) for o in outs]
        return run
    fns = (true_fn, false_fn)
    node = cond_node(graph, pred, args, lambda k: branch(fns[k]), [a.type for a in args])
    if kinds[0] != kinds[1] and not {kinds[0], kinds[1]} <= {tuple, list}:
        raise op_error("cond", [pred], "the branches return different structures")
    parts = [apply("part", [node], index=i) for i in range(len(node.type.parts))]
    return _pack(kinds[0], parts)


def cond_node(graph, pred, args, run_of, types):
    """A cond node whose branch k is traced from run_of(k) over placeholders of `types`
    (args' types); each branch also takes the tensors the other captured, unused."""
    b0, cap0, _ = trace(graph, types, run_of(0))
    b1, cap1, _ = trace(graph, types, run_of(1))
    n = len(types)
    b0 = with_inputs(b0, n + len(cap0), [t.type for t in cap1])
    b1 = with_inputs(b1, n, [t.type for t in cap0])
    return apply("cond", [pred] + list(args) + cap0 + cap1, branches=(b0, b1))


def while_loop(cond, body, init, max_steps=None):
    """carry = body(carry) while cond(carry) holds (checked before each step, as in JAX);
    the final carry. max_steps bounds the steps (and makes reverse mode possible: the
    backward pass keeps one carry per step that ran); without it the loop runs until cond
    fails, and only forward mode differentiates it."""
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 0):
        raise op_error("while_loop", [], f"max_steps must be a non-negative int, got "
                       f"{max_steps!r}")
    final, _ = scan(lambda c, _: (body(c), None), init, None, length=max_steps, cond=cond)
    return final


def fori_loop(lower, upper, body, init):
    """carry = body(i, carry) for i in range(lower, upper); the final carry. The bounds are
    ints or integer scalar tensors (read at run time)."""
    from .api_make import arange
    steps = arange(lower, upper)
    final, _ = scan(lambda c, i: (body(i, c), None), init, steps)
    return final
