"""The memory plan: where each instruction output lives, decided from real shapes.

Sizes are known only at call time (dims may be None in the Program), so the plan is made at
the first call of each shape signature, from the arrays that call allocated and the last-use
lists the compiler put in the Program.

NumPy arrays get offsets in one byte arena (runtime/memory/arena.py, as XLA's and TFLite's buffer
assignment do): values whose live ranges overlap get disjoint bytes, others may share bytes
whatever their shapes. Exact-shape pooling, kept here for other array types (CuPy), lets
only arrays of the same shape and dtype share; it kept 2.3x the liveness bound on an MLP
step whose layers all have different shapes. Either way an elementwise instruction may
write over an operand of the same shape that dies there (in place) unless another operand
views it, views keep the buffer they look into alive, outputs and update values are read
at the end of the call, and update values keep their own arrays (they are swapped into the
parameters). runtime/memory/verify.py checks a plan against the Program independently.
"""
from __future__ import annotations

import numpy as np

from .arena import plan_arena
from .liveness import Buffers, live_ends, shape_key, view_roots, viewed_by_another  # noqa: F401

def plan(program, kinds, inplace, arrays, exclusive, groups=()):
    """Assign buffers: {slot: array}. `arrays` holds the first call's results per buffered
    slot; `exclusive` slots (update values) keep their own; `inplace[i]` allows instruction i
    to write over an operand that dies there; every value a loop group (runtime/cpu/loop_groups.py)
    reads or writes stays live over the whole group, since its members run interleaved."""
    if arrays and all(type(a) is np.ndarray for a in arrays.values()):
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


def report(program, kinds, arrays, buffers, stacks=False):
    """(plan bytes, liveness lower bound bytes) for one shape signature; with stacks=True also
    the bytes of the loops' stacked per-step outputs (loop_stacks). `arrays` maps slots to
    the first call's arrays or to their byte counts (sizes()); a loop's value, a tuple, is
    counted only in loop_stacks: the loop kernel allocates it outside the plan."""
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
        v = arrays.get(ins.out)
        if v is not None and not isinstance(v, (tuple, list)):
            live[ins.out] = value_bytes(v)
        bound = max(bound, sum(live.values()))
        for s in [s for s in live if ends.get(s, -1) <= i and s not in committed]:
            del live[s]
    if stacks:
        return sum(distinct.values()), bound, loop_stacks(program, arrays)
    return sum(distinct.values()), bound


def value_bytes(v):
    """Bytes of a value: an array, a byte count, or a tuple of them (a loop's value: its
    final carries, then its per-step outputs stacked; a cond's results)."""
    if isinstance(v, (tuple, list)):
        return sum(value_bytes(p) for p in v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    return int(getattr(v, "nbytes", 0))


def sizes(arrays):
    """{slot: bytes} of a call's values (a tuple value: a tuple of its parts' bytes): all
    report() reads, without keeping the arrays themselves alive after the call."""
    return {s: tuple(value_bytes(p) for p in v) if isinstance(v, (tuple, list))
            else value_bytes(v) for s, v in arrays.items()}


def loop_stacks(program, arrays):
    """Bytes of the per-step outputs stacked by the program's loops (a loop's parts after
    its carries), from the loops' values (or their sizes()) in `arrays`."""
    total = 0
    for ins in program.instrs:
        v = arrays.get(ins.out)
        if ins.kernel == "loop" and isinstance(v, (tuple, list)):
            total += sum(value_bytes(p) for p in v[ins.attrs["n_carry"]:])
    return total
