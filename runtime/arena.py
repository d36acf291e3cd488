"""The NumPy memory plan: byte offsets in one arena, and bytes lent by idle update spares.

Every buffered value gets an offset in one 64-byte-aligned arena, the largest first, at the
lowest offset free of every value whose live range meets its own, whatever the shapes.
Ranges are closed: an operand read by the instruction that writes another value still
needs its bytes. An elementwise instruction may instead take over an operand of its shape
that dies there (in place); such chains are one buffer.

Update values are swapped into their parameters after the call, and the parameter's old
array becomes the buffer the next call writes that update into (no copy). Until its update
is computed, that spare holds nothing anyone reads: a value whose whole life ends before
the update's instruction may borrow its bytes. The spare is a different array every call,
so those values are views that lend() remakes at the start of each call (about a
microsecond each); they are planned only where the spare is large enough to matter.
"""
from __future__ import annotations

import numpy as np

from .memory import Buffers, live_ends, shape_key

ALIGN = 64         # bytes: every offset is cache-line aligned (and SIMD/BLAS friendly)
LEND_MIN = 1 << 16  # bytes: smaller spares are not worth a view per call


def plan_arena(program, kinds, inplace, arrays, exclusive, groups=()):
    """Buffers for NumPy arrays (see the module docstring); `exclusive` slots (update values)
    keep their own arrays; every value a loop group touches is live over the whole group."""
    ends = live_ends(program, kinds)
    start = {ins.out: i for i, ins in enumerate(program.instrs)}
    span = _group_spans(program, groups, start, ends)
    buffers = _chain_in_place(program, inplace, arrays, exclusive, ends, span)
    # Spares: swapped update values (buffered ones), free until their instruction.
    spares = [(start[e], arrays[e].nbytes, e) for e in arrays
              if e in exclusive and arrays[e].flags.c_contiguous and arrays[e].nbytes >= LEND_MIN]
    placed = {e: [] for _, _, e in spares}
    placed[None] = []  # the arena itself
    where = {}
    for b, (first, last, nbytes, _) in sorted(buffers.items(), key=lambda kv: -kv[1][2]):
        for until, cap, e in spares:
            if last < until:
                at = _lowest_free(placed[e], first, last, nbytes)
                if at + nbytes <= cap:
                    placed[e].append((first, last, nbytes, at))
                    where[b] = (e, at)
                    break
        else:
            at = _lowest_free(placed[None], first, last, nbytes)
            placed[None].append((first, last, nbytes, at))
            where[b] = (None, at)
    size = max((at + n for _, _, n, at in placed[None]), default=0)
    raw = np.empty(size + ALIGN, np.uint8)  # NumPy aligns to 16 bytes: shift to ALIGN
    shift = -raw.ctypes.data % ALIGN
    arena = raw[shift:shift + size]
    out, lent = Buffers(), []
    for b, (_, _, nbytes, slots) in buffers.items():
        e, at = where[b]
        for s in slots:
            a = arrays[s]
            if e is None:
                out[s] = arena[at:at + nbytes].view(a.dtype).reshape(a.shape)
            else:
                lent.append((s, e, at, nbytes, a.dtype, a.shape))
    for s in arrays:
        if s in exclusive:
            out[s] = arrays[s]
    out.lent = tuple(lent)  # their views are made by lend(), first thing in each call
    return out


def lend(B):
    """Remake the views of the values that borrow bytes from update spares (each call)."""
    for s, e, at, nbytes, dtype, shape in B.lent:
        spare = B[e]
        if spare.flags.c_contiguous and spare.nbytes >= at + nbytes:
            B[s] = spare.reshape(-1).view(np.uint8)[at:at + nbytes].view(dtype).reshape(shape)
        else:  # a parameter set to an array of another layout: no loan this call
            B[s] = np.empty(shape, dtype)


def _group_spans(program, groups, start, ends):
    span = {}
    for members in groups:  # interleaved members: everything they touch is live throughout
        lo, hi = members[0], members[-1]
        for k in members:
            for s in list(program.instrs[k].args) + [program.instrs[k].out]:
                a, b = span.get(s, (start.get(s, -1), ends.get(s, start.get(s, -1))))
                span[s] = (min(a, lo), max(b, hi))
    return span


def _chain_in_place(program, inplace, arrays, exclusive, ends, span):
    """{buffer id: [first, last, nbytes, slots]}: a slot takes over an operand's buffer when
    the operand dies at its instruction and has the same shape and dtype."""
    owner, buffers = {}, {}
    for i, ins in enumerate(program.instrs):
        s = ins.out
        if s not in arrays or s in exclusive:
            continue
        arr, took = arrays[s], None
        if inplace[i] and s not in span:
            for a in ins.args:
                b = owner.get(a)
                if (b is not None and ends.get(a) == i and a not in span
                        and shape_key(arrays[a]) == shape_key(arr) and buffers[b][1] == i):
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
    return buffers


def _lowest_free(placed, first, last, nbytes):
    """The lowest aligned offset free of every placed (first, last, nbytes, offset) whose
    live range meets [first, last]."""
    at = 0
    for lo, hi in sorted((o, o + n) for f, l, n, o in placed if f <= last and first <= l):
        if at + nbytes <= lo:
            break
        at = max(at, _up(hi))
    return at


def _up(n):
    return -(-n // ALIGN) * ALIGN

