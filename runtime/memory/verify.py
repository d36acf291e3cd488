"""The plan verifier: proves that a memory plan never overwrites bytes a later read needs.

It rederives, from the Program alone, when every value is written and read, and checks
byte ranges against that schedule, independently of how runtime/memory/plan.py and
runtime/memory/arena.py reason:

- a value is written at its instruction; a loop group's members all run at the group's
  first step (they interleave chunk by chunk), and their reads last until then too;
- a value is read by the instructions that take it as a value operand (not shape-only
  operands), and outputs and update values are read after the last instruction (copied
  out, or swapped into the parameter);
- a view is made at its instruction, which reads what it looks into, and is read like
  any other value; its bytes are those of what it looks into.

A write conflicts with every other value whose bytes it meets and that was written before
and is read at or after it, except one in-place hand-over: an elementwise kernel outside
a loop group writing over an operand it reads for the last time, with exactly that
operand's layout (same address, shape and strides). Another operand that views the same
bytes with a different layout (`t + t.T` written over t) is a conflict.

    runtime.verify_plan(exe)           # every kept plan of a linked Executable; raises PlanError
    exe.verify_calls()                 # from now on: every new plan and every call's arrays
    check_plan(program, kinds, inplace, groups, B)       # one plan (memory.liveness.Buffers)
    check_call(program, kinds, inplace, groups, values)  # the real arrays of one call
    check_outputs(outputs, internal)                     # returned arrays own their bytes

`ENABLED` (the environment variable FLOWC_VERIFY_PLAN=1, or enable()) makes every
Executable linked afterwards call verify_calls(); the test suite turns it on in
tests/conftest.py. Checked plans also keep the first call's memory order
(check_layouts), so every call adds in the same order.
"""
from __future__ import annotations

import os
from bisect import bisect_left, insort

import numpy as np

from ..errors import PlanError
from .liveness import value_args

ENABLED = os.environ.get("FLOWC_VERIFY_PLAN", "") not in ("", "0")


def enable(on=True):
    """Make every Executable linked from now on verify its plans and calls (or stop)."""
    global ENABLED
    ENABLED = bool(on)


def verify_plan(exe):
    """Check every plan a linked Executable keeps (one per shape signature); return how
    many were checked. Raises PlanError naming the instruction and the clobbered value."""
    plans = getattr(exe, "_bufs", {})
    for B in plans.values():
        verify_buffers(exe, B)
    return len(plans)


def verify_buffers(exe, B):
    """Check one plan of a linked Executable: its loop groups in B.chunked interleave."""
    groups = [exe.loop_groups[g] for g in getattr(B, "chunked", ())]
    check_plan(exe.program, exe._kinds, exe._inplace, groups, B)


def check_layouts(arrays, B):
    """Raise PlanError if a planned buffer has another memory order than the first call's
    array for that slot: later calls would add in another order (other bits)."""
    for s, a in arrays.items():
        b = B.get(s)
        if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or b is a:
            continue
        dense = a.flags.c_contiguous or a.flags.f_contiguous or _dense(a)
        if dense and a.size > 1 and _order(a) != _order(b):
            raise PlanError(f"memory plan: the buffer of slot {s} has strides {b.strides}, "
                            f"the first call's array {a.strides} (shape {a.shape})")


def _dense(a):
    return byte_range(a) is not None and byte_range(a)[1] - byte_range(a)[0] == a.nbytes


def _order(a):
    """The axes from fastest to slowest varying (size-1 axes left out)."""
    return [k for k in sorted(range(a.ndim), key=lambda k: a.strides[k]) if a.shape[k] > 1]


# -- the schedule ----------------------------------------------------------------------------
def schedule(program, kinds, groups=()):
    """(step of each instruction, {slot: defining step}, {slot: last reading step})."""
    n = len(program.instrs)
    step = list(range(n))
    for members in groups:
        for k in members:
            step[k] = members[0]
    made, last = {}, {}
    for d in program.inputs + program.params + program.consts:
        made[d["slot"]] = -1
    for i, ins in enumerate(program.instrs):
        made[ins.out] = step[i]
        for a in value_args(ins):
            last[a] = max(last.get(a, -1), step[i])
    for s in list(program.outputs) + [u["slot"] for u in program.updates]:
        last[s] = n
    return step, made, last


# -- footprints ------------------------------------------------------------------------------
def byte_range(a):
    """[lo, hi) of the bytes array `a` touches (empty for an empty array)."""
    if not hasattr(a, "__array_interface__") or a.size == 0:
        return None
    lo = hi = a.__array_interface__["data"][0]
    for n, st in zip(a.shape, a.strides):
        if st < 0:
            lo += (n - 1) * st
        else:
            hi += (n - 1) * st
    return lo, hi + a.itemsize


def _layout(a, lo=None):
    """What makes two arrays the same elements at the same bytes."""
    ptr = a.__array_interface__["data"][0] if lo is None else lo
    return ptr, tuple(a.shape), tuple(a.strides), a.dtype.str


def plan_footprints(program, kinds, B):
    """{slot: ([(lo, hi)], layout)} of a plan. Bytes lent by an update's spare are placed
    in a made-up address range per spare (the spare is another array every call); values
    the plan does not hold get a range of their own; views get what they look into."""
    foot = {}
    spare_base = {}
    fake = [-(1 << 62)]  # made-up addresses: far below any real one

    def fresh(size):
        lo = fake[0]
        fake[0] += max(size, 1) + 64
        return lo

    for s, e, at, nbytes, dtype, shape, strides in getattr(B, "lent", ()):
        if e not in spare_base:
            spare_base[e] = fresh(B[e].nbytes)
        lo = spare_base[e] + at
        a = np.ndarray(shape, dtype, np.empty(nbytes, np.uint8), 0, strides)
        foot[s] = ([(lo, lo + nbytes)], _layout(a, lo))
    for e, base in spare_base.items():
        foot[e] = ([(base, base + B[e].nbytes)], _layout(B[e], base))
    for s, a in B.items():
        if s not in foot:
            r = byte_range(a)
            foot[s] = ([r] if r else [], _layout(a))
    for i, ins in enumerate(program.instrs):
        s = ins.out
        if s in foot:
            continue
        if kinds[i] == "view":
            ranges = []
            for a in value_args(ins):
                ranges += [r for r in _own(foot, a, fresh) if r not in ranges]
            foot[s] = (ranges, None)
        else:
            foot[s] = ([(fresh(1), fake[0] - 64)], None)
    return foot


def _own(foot, s, fresh):
    if s not in foot:  # an input, parameter or constant: bytes no plan hands out
        lo = fresh(1)
        foot[s] = ([(lo, lo + 1)], None)
    return foot[s][0]


def call_footprints(values):
    """{slot: ([(lo, hi)], layout)} of the real arrays of one call."""
    foot = {}
    for s, a in values.items():
        r = byte_range(a) if isinstance(a, np.ndarray) else None
        foot[s] = ([r] if r else [], _layout(a) if r else None)
    return foot


# -- the check -------------------------------------------------------------------------------
def check_plan(program, kinds, inplace, groups, B):
    """Raise PlanError if plan B lets a write clobber a value still to be read."""
    _check(program, kinds, inplace, groups, plan_footprints(program, kinds, B), "plan")


def check_call(program, kinds, inplace, groups, values):
    """The same check on the arrays one call really used ({slot: array})."""
    _check(program, kinds, inplace, groups, call_footprints(values), "call")


def check_outputs(outputs, internal):
    """Raise PlanError if a returned array shares bytes with another returned array or with
    any array the function keeps or was given (buffers, parameters, constants, inputs)."""
    outs = [o for o in outputs if isinstance(o, np.ndarray)]
    for j, o in enumerate(outs):
        for k, p in enumerate(outs[j + 1:], j + 1):
            if np.shares_memory(o, p, max_work=10 ** 6):
                raise PlanError(f"outputs {j} and {k} share memory")
        for name, a in internal:
            if isinstance(a, np.ndarray) and np.may_share_memory(o, a):
                raise PlanError(f"output {j} shares memory with {name}: the next call "
                                f"would change what this one returned")


def _check(program, kinds, inplace, groups, foot, what):
    step, made, last = schedule(program, kinds, groups)
    in_group = {k for members in groups for k in members}
    n = len(program.instrs)
    writes = {}
    for i, ins in enumerate(program.instrs):
        if kinds[i] == "out":
            writes.setdefault(step[i], []).append(i)
    born = {}
    for s, t in made.items():
        born.setdefault(t, []).append(s)
    live = _Live()
    dying = {}
    for t in [-1] + list(range(n)):
        for s in born.get(t, ()):
            end = max(last.get(s, t), t)
            for r in foot.get(s, ([], None))[0]:
                live.add(r, s)
            dying.setdefault(end, []).append(s)
        for i in writes.get(t, ()):
            _check_write(program, i, t, foot, made, last, live, inplace[i] and i not in in_group,
                         what, n)
        for s in dying.pop(t, ()):
            for r in foot.get(s, ([], None))[0]:
                live.remove(r, s)


def _check_write(program, i, t, foot, made, last, live, may_take, what, n):
    ins = program.instrs[i]
    w = ins.out
    ranges, lay = foot.get(w, ([], None))
    for r in ranges:
        for v in live.meeting(r):
            if v == w:
                continue
            v_lay = foot[v][1]
            if (may_take and made[v] < t and last.get(v) == t and lay is not None
                    and v_lay == lay):
                continue  # in place: v's last read is this elementwise instruction
            raise PlanError(_explain(program, i, w, v, made, last, what, n))


def _explain(program, i, w, v, made, last, what, n):
    ins = program.instrs[i]
    end = last.get(v, made[v])
    reader = ("is returned or committed after the last instruction" if end >= n
              else f"is still read at instruction {end} ({program.instrs[end].kernel})")
    return (f"memory {what}: instruction {i} ({ins.kernel}) writes slot {w} over the bytes "
            f"of slot {v} ({_name(program, v)}), which {reader}; the writer is "
            f"{_name(program, w)}")


def _name(program, s):
    """What a slot is: an input, parameter or constant, or the instruction that makes it."""
    for kind in ("inputs", "params", "consts"):
        for d in getattr(program, kind):
            if d["slot"] == s:
                return f"{kind[:-1]} {d.get('name', s)}"
    for k, ins in enumerate(program.instrs):
        if ins.out == s:
            return f"instruction {k} ({ins.kernel}) for {ins.where or 'node ' + str(ins.node)}"
    return "unknown"


class _Live:
    """Live byte ranges, found by overlap in about log n plus their number: ranges are kept
    sorted by start within classes of length (< 2**c bytes), so a range meeting [lo, hi)
    of class c starts after lo - 2**c."""

    def __init__(self):
        self.by_len = {}

    def add(self, r, s):
        c = (r[1] - r[0]).bit_length()
        insort(self.by_len.setdefault(c, []), (r[0], r[1], s))

    def remove(self, r, s):
        blocks = self.by_len[(r[1] - r[0]).bit_length()]
        k = bisect_left(blocks, (r[0], r[1], s))
        if k < len(blocks) and blocks[k] == (r[0], r[1], s):
            del blocks[k]

    def meeting(self, r):
        """The slots of live ranges that share a byte with r."""
        lo, hi = r
        found = []
        for c, blocks in self.by_len.items():
            k = bisect_left(blocks, (lo - (1 << c),))
            while k < len(blocks) and blocks[k][0] < hi:
                if blocks[k][1] > lo:
                    found.append(blocks[k][2])
                k += 1
        return found
