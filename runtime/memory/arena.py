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

from bisect import bisect_left, bisect_right, insort

import numpy as np

from .liveness import Buffers, live_ends, shape_key, view_roots, viewed_by_another

ALIGN = 64         # bytes: every offset is cache-line aligned (and SIMD/BLAS friendly)
LEND_MIN = 1 << 16  # bytes: smaller spares are not worth a view per call


def plan_arena(program, kinds, inplace, arrays, exclusive, groups=()):
    """Buffers for NumPy arrays (see the module docstring); `exclusive` slots (update values)
    keep their own arrays; every value a loop group touches is live over the whole group."""
    ends = live_ends(program, kinds, groups)
    start = {ins.out: i for i, ins in enumerate(program.instrs)}
    span = _group_spans(program, groups, start, ends)
    buffers = _chain_in_place(program, kinds, inplace, arrays, exclusive, ends, span)
    # Spares: swapped update values (buffered ones), free until their instruction (until
    # their group's first member: members run interleaved).
    spares = [(span.get(e, (start[e],))[0], arrays[e].nbytes, e) for e in arrays
              if e in exclusive and arrays[e].flags.c_contiguous and arrays[e].nbytes >= LEND_MIN]
    steps = len(program.instrs) + 1  # live ranges end at len(instrs) (outputs, updates)
    placed = {e: _Placed(steps) for _, _, e in spares}
    placed[None] = _Placed(steps)  # the arena itself
    where = {}
    for b, (first, last, nbytes, _) in sorted(buffers.items(), key=lambda kv: -kv[1][2]):
        for until, cap, e in spares:
            if last < until:
                at = placed[e].lowest_free(first, last, nbytes)
                if at + nbytes <= cap:
                    placed[e].add(first, last, nbytes, at)
                    where[b] = (e, at)
                    break
        else:
            at = placed[None].lowest_free(first, last, nbytes)
            placed[None].add(first, last, nbytes, at)
            where[b] = (None, at)
    size = placed[None].top
    raw = np.empty(size + ALIGN, np.uint8)  # NumPy aligns to 16 bytes: shift to ALIGN
    shift = -raw.ctypes.data % ALIGN
    arena = raw[shift:shift + size]
    out, lent = Buffers(), []
    for b, (_, _, nbytes, slots) in buffers.items():
        e, at = where[b]
        for s in slots:
            a = arrays[s]
            if e is None:
                out[s] = _like(arena[at:at + nbytes], a)
            else:
                lent.append((s, e, at, nbytes, a.dtype, a.shape, _dense_strides(a)))
    for s in arrays:
        if s in exclusive:
            out[s] = arrays[s]
    out.lent = tuple(lent)  # their views are made by lend(), first thing in each call
    return out


def lend(B):
    """Remake the views of the values that borrow bytes from update spares (each call)."""
    for s, e, at, nbytes, dtype, shape, strides in B.lent:
        spare = B[e]
        if spare.flags.c_contiguous and spare.nbytes >= at + nbytes:
            raw = spare.reshape(-1).view(np.uint8)[at:at + nbytes]
            B[s] = np.ndarray(shape, dtype, raw, 0, strides)
        else:  # a parameter set to an array of another layout: no loan this call
            B[s] = np.ndarray(shape, dtype, np.empty(nbytes, np.uint8), 0, strides)


def _dense_strides(a):
    """The strides of `a` if it fills its bytes exactly in some axis order (C, Fortran, a
    transpose of either), else C order's. Kernels write a buffer the way they were handed
    it, and reductions over it add in memory order: a buffer laid out like the first call's
    array gives later calls the first call's bits (an F-ordered input gives F-ordered
    results)."""
    if a.flags.c_contiguous or a.ndim < 2:
        return None
    order = sorted(range(a.ndim), key=lambda k: a.strides[k])
    step = a.itemsize
    for k in order:
        if a.shape[k] > 1 and a.strides[k] != step:
            return None
        step *= a.shape[k]
    return a.strides


def _like(raw, a):
    """A view of the bytes `raw` with the shape, dtype and layout of array `a`."""
    return np.ndarray(a.shape, a.dtype, raw, 0, _dense_strides(a))


def _group_spans(program, groups, start, ends):
    span = {}
    for members in groups:  # interleaved members: everything they touch is live throughout
        lo, hi = members[0], members[-1]
        for k in members:
            for s in list(program.instrs[k].args) + [program.instrs[k].out]:
                a, b = span.get(s, (start.get(s, -1), ends.get(s, start.get(s, -1))))
                span[s] = (min(a, lo), max(b, hi))
    return span


def _chain_in_place(program, kinds, inplace, arrays, exclusive, ends, span):
    """{buffer id: [first, last, nbytes, slots]}: a slot takes over an operand's buffer when
    the operand dies at its instruction, has the same shape, dtype and layout, and no other
    operand of that instruction looks into it (a view, say `t + t.T`)."""
    owner, buffers, roots = {}, {}, view_roots(program, kinds)
    for i, ins in enumerate(program.instrs):
        s = ins.out
        if s not in arrays or s in exclusive:
            continue
        arr, took = arrays[s], None
        if inplace[i] and s not in span:
            for a in ins.args:
                b = owner.get(a)
                if (b is not None and ends.get(a) == i and a not in span
                        and shape_key(arrays[a]) == shape_key(arr) and buffers[b][1] == i
                        and _dense_strides(arrays[a]) == _dense_strides(arr)
                        and not viewed_by_another(ins, a, roots)):
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


FIRST_FIT_MAX = 64  # meeting blocks above which a block goes on top of them (no gap search)


class _Placed:
    """Placed blocks (first, last, nbytes, offset), indexed by live range so that finding the
    blocks whose lives meet a new one costs about log n plus their number (the first call of
    a long chain was quadratic in its length with a scan of every placed block). Where more
    than FIRST_FIT_MAX blocks meet (a wide fan-out, all live at once), the block goes just
    above the highest of them, found in log n (`_Skyline`), instead of into the lowest gap."""

    def __init__(self, steps):
        self.by_len = {}  # length class c (live ranges of < 2**c steps): sorted blocks by first
        self.top = 0      # bytes: the end of the highest block
        self.sky = _Skyline(steps)

    def add(self, first, last, nbytes, at):
        c = (last - first + 1).bit_length()
        insort(self.by_len.setdefault(c, []), (first, last, at, at + nbytes))
        self.top = max(self.top, at + nbytes)
        self.sky.raise_to(first, last, at + nbytes)

    def _windows(self, first, last):
        for c, blocks in self.by_len.items():
            # A block of class c is shorter than 2**c steps: it starts after first - 2**c.
            yield blocks, bisect_left(blocks, (first - (1 << c),)), \
                bisect_right(blocks, (last, float("inf")))

    def meeting(self, first, last):
        """(offset, end) of every placed block whose live range meets [first, last]."""
        found = []
        for blocks, lo, hi in self._windows(first, last):
            found += [(o, e) for f, l, o, e in blocks[lo:hi] if first <= l]
        return found

    def lowest_free(self, first, last, nbytes):
        """The lowest aligned offset free of every placed block whose live range meets
        [first, last] (above all of them where more than FIRST_FIT_MAX may meet)."""
        if sum(hi - lo for _, lo, hi in self._windows(first, last)) > FIRST_FIT_MAX:
            return _up(self.sky.highest(first, last))
        at = 0
        for lo, hi in sorted(self.meeting(first, last)):
            if at + nbytes <= lo:
                break
            at = max(at, _up(hi))
        return at


class _Skyline:
    """Over steps 0..n-1: raise every step of a range to at least a value, and read the
    highest value over a range, each in log n (a segment tree, iterative)."""

    def __init__(self, steps):
        self.n = 1 << max(1, steps).bit_length()
        self.tag = [0] * (2 * self.n)  # raised over this node's whole range
        self.mx = [0] * (2 * self.n)   # the highest value anywhere under this node

    def raise_to(self, first, last, v):
        lo, hi = first + self.n, last + self.n + 1
        edges = (lo, hi - 1)
        while lo < hi:
            if lo & 1:
                self.tag[lo] = max(self.tag[lo], v)
                self.mx[lo] = max(self.mx[lo], v)
                lo += 1
            if hi & 1:
                hi -= 1
                self.tag[hi] = max(self.tag[hi], v)
                self.mx[hi] = max(self.mx[hi], v)
            lo, hi = lo >> 1, hi >> 1
        for i in edges:  # every node partly in the range is above one of its two ends
            i >>= 1
            while i:
                self.mx[i] = max(self.mx[i], v)
                i >>= 1

    def highest(self, first, last):
        lo, hi = first + self.n, last + self.n + 1
        edges, best = (lo, hi - 1), 0
        while lo < hi:
            if lo & 1:
                best = max(best, self.mx[lo])
                lo += 1
            if hi & 1:
                hi -= 1
                best = max(best, self.mx[hi])
            lo, hi = lo >> 1, hi >> 1
        for i in edges:  # ranges raised over a node above the query's nodes
            i >>= 1
            while i:
                best = max(best, self.tag[i])
                i >>= 1
        return best


def _up(n):
    return -(-n // ALIGN) * ALIGN

