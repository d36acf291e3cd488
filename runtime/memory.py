"""The memory plan: where each instruction output lives, decided from real shapes.

Sizes are known only at call time (dims may be None in the Program), so the plan is made at
the first call of each shape signature, from the arrays that call allocated and the last-use
lists the compiler put in the Program.

NumPy arrays get offsets in one byte arena (as XLA's and TFLite's buffer assignment do):
values whose live ranges overlap get disjoint bytes, others may share bytes whatever their
shapes, so the arena is close to the liveness lower bound. Exact-shape pooling, which
lets only arrays of the same shape and dtype share, kept 2.3x the bound on an MLP step
whose layers all have different shapes. An elementwise instruction may write over an
operand of the same shape that dies there (in place). Views keep the buffer they look
into alive. Update values keep their own arrays (they are swapped into the parameters).
Other array types (CuPy) are pooled by exact shape and dtype.
"""
from __future__ import annotations


# Operands these kernels read only for their shape (or dtype). An array object keeps its
# shape when its bytes are reused, so such a read does not keep the bytes alive; gradients
# hold `sum_like(g, x)` on forward activations, which would otherwise live all step.
SHAPE_ONLY = {"sum_like": (1,), "broadcast_like": (1,), "reshape_like": (1,), "count": (0,),
              "zeros_like": (0,), "ones_like": (0,)}


def value_args(ins):
    """The operands whose values (not just shapes) instruction `ins` reads."""
    skip = SHAPE_ONLY.get(ins.kernel)
    return ins.args if skip is None else [a for p, a in enumerate(ins.args) if p not in skip]


def live_ends(program, kinds):
    """For each slot, the last instruction that reads its values or any view made from it."""
    last = {}
    for i, ins in enumerate(program.instrs):
        for a in value_args(ins):
            last[a] = i
    # A view's reads extend the life of whatever it looks into (walk views last to first).
    for i in reversed(range(len(program.instrs))):
        ins = program.instrs[i]
        if kinds[i] == "view":
            end = last.get(ins.out, i)
            for a in value_args(ins):
                last[a] = max(last.get(a, i), end)
    return last


ALIGN = 64  # bytes: every arena offset is cache-line aligned (and SIMD/BLAS friendly)


def plan(program, kinds, inplace, arrays, exclusive, groups=()):
    """Assign buffers: {slot: array}. `arrays` holds the first call's results per buffered
    slot; `exclusive` slots (update values) keep their own; `inplace[i]` allows instruction i
    to write over an operand that dies there; every value a loop group (runtime/loop_groups)
    reads or writes stays live over the whole group, since its members run interleaved."""
    import numpy as np
    if arrays and all(type(a) is np.ndarray for a in arrays.values()):
        return _arena(program, kinds, inplace, arrays, exclusive, groups)
    return _pooled(program, kinds, inplace, arrays, exclusive)


def _arena(program, kinds, inplace, arrays, exclusive, groups):
    import numpy as np
    ends = live_ends(program, kinds)
    start = {ins.out: i for i, ins in enumerate(program.instrs)}
    span = {}
    for members in groups:  # interleaved members: everything they touch is live throughout
        lo, hi = members[0], members[-1]
        for k in members:
            for s in list(program.instrs[k].args) + [program.instrs[k].out]:
                a, b = span.get(s, (start.get(s, -1), ends.get(s, start.get(s, -1))))
                span[s] = (min(a, lo), max(b, hi))
    # 1. In place: a slot takes over an operand's bytes when the operand dies at its
    #    instruction and has the same shape and dtype. Chains of such slots are one buffer.
    owner, buffers = {}, {}  # slot -> buffer id; buffer id -> [first, last, nbytes, slots]
    for i, ins in enumerate(program.instrs):
        s = ins.out
        if s not in arrays or s in exclusive:
            continue
        arr, took = arrays[s], None
        if inplace[i] and s not in span:
            for a in ins.args:
                b = owner.get(a)
                if (b is not None and ends.get(a) == i and a not in span
                        and _key(arrays[a]) == _key(arr) and buffers[b][1] == i):
                    took = b
                    break
        first, last = span.get(s, (i, max(ends.get(s, i), i)))
        if took is None:
            took = len(buffers)
            buffers[took] = [first, last, arr.nbytes, []]
        buf = buffers[took]
        buf[1] = max(buf[1], last)
        buf[3].append(s)
        owner[s] = took
    # 2. Offsets: largest buffers first, each at the lowest offset free of every placed
    #    buffer whose live range meets its own (ranges are closed: an operand read by the
    #    instruction that writes another value still needs its bytes).
    placed, offset, size = [], {}, 0
    for b, (first, last, nbytes, _) in sorted(buffers.items(), key=lambda kv: -kv[1][2]):
        busy = sorted((o, o + n) for f, l, n, o in placed if f <= last and first <= l)
        at = 0
        for lo, hi in busy:
            if at + nbytes <= lo:
                break
            at = max(at, _up(hi))
        placed.append((first, last, nbytes, at))
        offset[b] = at
        size = max(size, at + nbytes)
    raw = np.empty(size + ALIGN, np.uint8)  # NumPy aligns to 16 bytes: shift to ALIGN
    shift = -raw.ctypes.data % ALIGN
    arena = raw[shift:shift + size]
    assigned = {}
    for b, (_, _, nbytes, slots) in buffers.items():
        for s in slots:
            a = arrays[s]
            assigned[s] = arena[offset[b]:offset[b] + nbytes].view(a.dtype).reshape(a.shape)
    for s in arrays:
        if s in exclusive:
            assigned[s] = arrays[s]
    return assigned


def _up(n):
    return -(-n // ALIGN) * ALIGN


def _pooled(program, kinds, inplace, arrays, exclusive):
    ends = live_ends(program, kinds)
    pool, assigned, holds, dying = {}, {}, {}, {}
    for s in arrays:
        dying.setdefault(ends.get(s, -1), []).append(s)
    for i, ins in enumerate(program.instrs):
        s = ins.out
        if s in arrays:
            arr = arrays[s]
            key = _key(arr)
            chosen = arr if s in exclusive else None
            if chosen is None and inplace[i]:
                for a in ins.args:
                    b = holds.get(a)
                    if b is not None and ends.get(a) == i and a not in exclusive and _key(b) == key:
                        chosen, holds[a] = b, None  # handed over, so not pooled again
                        break
            if chosen is None:
                free = pool.get(key)
                chosen = free.pop() if free else arr
            assigned[s] = holds[s] = chosen
        for d in dying.get(i, ()):
            b = holds.get(d)
            if b is not None and d not in exclusive:
                pool.setdefault(_key(b), []).append(b)
                holds[d] = None
    return assigned


def _key(a):
    return a.shape, a.dtype.str


def report(program, kinds, arrays, buffers):
    """(plan bytes, liveness lower bound bytes) for one shape signature."""
    ends = live_ends(program, kinds)
    distinct = {}
    for b in buffers.values():
        while getattr(b, "base", None) is not None:  # arena views count as their arena
            b = b.base
        if b is not None:
            distinct[id(b)] = b.nbytes
    # Update values are committed only after every value is computed (Theano's semantics),
    # so they live to the end of the call however early their last read is.
    committed = {u["slot"] for u in program.updates}
    bound = 0
    live = {}
    for i, ins in enumerate(program.instrs):
        if ins.out in arrays:
            live[ins.out] = arrays[ins.out].nbytes
        bound = max(bound, sum(live.values()))
        for s in [s for s in live if ends.get(s, -1) <= i and s not in committed]:
            del live[s]
    return sum(distinct.values()), bound
