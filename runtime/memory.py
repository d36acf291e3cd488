"""The memory plan: which instruction outputs share a buffer, decided from real shapes.

Sizes are known only at call time (dims may be None in the Program), so the plan is made at
the first call of each shape signature, from the arrays that call allocated and the last-use
lists the compiler put in the Program. Two buffered slots share an array when their live
ranges do not overlap; a slot whose operand dies at the same instruction may take that
operand's buffer (in place) if the kernel allows it. Views keep the buffer they look into
alive. Update values keep their own arrays (they are swapped into the parameters).
"""
from __future__ import annotations


def live_ends(program, kinds):
    """For each slot, the last instruction that reads it or any view made from it."""
    last = {}
    for i, ins in enumerate(program.instrs):
        for a in ins.args:
            last[a] = i
    # A view's reads extend the life of whatever it looks into (walk views last to first).
    for i in reversed(range(len(program.instrs))):
        ins = program.instrs[i]
        if kinds[i] == "view":
            end = last.get(ins.out, i)
            for a in ins.args:
                last[a] = max(last.get(a, i), end)
    return last


def plan(program, kinds, inplace, arrays, exclusive):
    """Assign buffers: {slot: array}. `arrays` holds the first call's results per buffered
    slot; `exclusive` slots (update values) keep their own; `inplace[i]` allows instruction i
    to write over an operand that dies there."""
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
    distinct = {id(b): b.nbytes for b in buffers.values() if b is not None}
    bound = 0
    live = {}
    for i, ins in enumerate(program.instrs):
        if ins.out in arrays:
            live[ins.out] = arrays[ins.out].nbytes
        bound = max(bound, sum(live.values()))
        for s in [s for s in live if ends.get(s, -1) <= i]:
            del live[s]
    return sum(distinct.values()), bound
