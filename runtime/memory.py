"""The memory plan: where each instruction output lives, decided from real shapes.

Sizes are known only at call time (dims may be None in the Program), so the plan is made at
the first call of each shape signature, from the arrays that call allocated and the last-use
lists the compiler put in the Program.

NumPy arrays get offsets in one byte arena (runtime/arena.py, as XLA's and TFLite's buffer
assignment do): values whose live ranges overlap get disjoint bytes, others may share bytes
whatever their shapes. Exact-shape pooling, kept here for other array types (CuPy), lets
only arrays of the same shape and dtype share; it kept 2.3x the liveness bound on an MLP
step whose layers all have different shapes. Either way an elementwise instruction may
write over an operand of the same shape that dies there (in place) unless another operand
views it, views keep the buffer they look into alive, outputs and update values are read
at the end of the call, and update values keep their own arrays (they are swapped into the
parameters). runtime/plan_verify.py checks a plan against the Program independently.
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


def live_ends(program, kinds, groups=()):
    """For each slot, the last instruction that reads its values or any view made from it.

    Outputs and update values are read after the last instruction (copied out, or swapped
    into a parameter), so they and what they view live to len(instrs). A loop group's
    members run interleaved chunk by chunk, so what any member reads is read until the
    group's last member. A view's reads are reads of what it looks into.
    """
    last = {}
    for i, ins in enumerate(program.instrs):
        for a in value_args(ins):
            last[a] = i
    for members in groups:
        hi = members[-1]
        for k in members:
            for a in value_args(program.instrs[k]):
                last[a] = max(last[a], hi)
    end = len(program.instrs)
    for s in list(program.outputs) + [u["slot"] for u in program.updates]:
        last[s] = end
    # A view's reads extend the life of whatever it looks into (walk views last to first).
    for i in reversed(range(len(program.instrs))):
        ins = program.instrs[i]
        if kinds[i] == "view":
            end = last.get(ins.out, i)
            for a in value_args(ins):
                last[a] = max(last.get(a, i), end)
    return last


def view_roots(program, kinds):
    """{view slot: tuple of the non-view slots whose bytes it may look into}."""
    roots = {}
    for i, ins in enumerate(program.instrs):
        if kinds[i] == "view":
            found = []
            for a in value_args(ins):
                for r in roots.get(a, (a,)):
                    if r not in found:
                        found.append(r)
            roots[ins.out] = tuple(found)
    return roots


def viewed_by_another(ins, operand, roots):
    """Whether an operand of `ins` other than `operand` itself is a view into its bytes:
    then `ins` may not write its result over `operand` (fused kernels work in blocks)."""
    return any(a != operand and operand in roots.get(a, ()) for a in value_args(ins))


class Buffers(dict):
    """{slot: array} for one shape signature, the slots whose bytes are lent by a spare
    (see runtime/arena.py; the linker refreshes those with lend() before each call), and
    the loop groups planned as chunked (others run their members one by one)."""

    lent = ()
    chunked = frozenset()


def plan(program, kinds, inplace, arrays, exclusive, groups=()):
    """Assign buffers: {slot: array}. `arrays` holds the first call's results per buffered
    slot; `exclusive` slots (update values) keep their own; `inplace[i]` allows instruction i
    to write over an operand that dies there; every value a loop group (runtime/loop_groups)
    reads or writes stays live over the whole group, since its members run interleaved."""
    import numpy as np
    if arrays and all(type(a) is np.ndarray for a in arrays.values()):
        from .arena import plan_arena
        return plan_arena(program, kinds, inplace, arrays, exclusive, groups)
    return Buffers(_pooled(program, kinds, inplace, arrays, exclusive))


def _pooled(program, kinds, inplace, arrays, exclusive):
    ends, roots = live_ends(program, kinds), view_roots(program, kinds)
    pool, assigned, holds, dying = {}, {}, {}, {}
    for s in arrays:
        dying.setdefault(ends.get(s, -1), []).append(s)
    for i, ins in enumerate(program.instrs):
        s = ins.out
        if s in arrays:
            arr = arrays[s]
            key = shape_key(arr)
            chosen = arr if s in exclusive else None
            if chosen is None and inplace[i]:
                for a in ins.args:
                    b = holds.get(a)
                    if (b is not None and ends.get(a) == i and a not in exclusive
                            and shape_key(b) == key and not viewed_by_another(ins, a, roots)):
                        chosen, holds[a] = b, None  # handed over, so not pooled again
                        break
            if chosen is None:
                free = pool.get(key)
                chosen = free.pop() if free else arr
            assigned[s] = holds[s] = chosen
        for d in dying.get(i, ()):
            b = holds.get(d)
            if b is not None and d not in exclusive:
                pool.setdefault(shape_key(b), []).append(b)
                holds[d] = None
    return assigned


def shape_key(a):
    """(shape, dtype) of an array: buffers of one key may stand in for each other."""
    return a.shape, a.dtype.str


def report(program, kinds, arrays, buffers):
    """(plan bytes, liveness lower bound bytes) for one shape signature."""
    ends = live_ends(program, kinds)
    distinct = {}
    lent = {s for s, *_ in getattr(buffers, "lent", ())}  # their bytes are a spare's
    for s, b in buffers.items():
        if s in lent:
            continue
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
