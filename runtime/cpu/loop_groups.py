"""Loop groups: runs of elementwise instructions over one large shape, evaluated chunk by chunk.

A fused group already keeps its temporaries in cache, but a graph and its gradient are
usually several groups in a row over the same shape (W3: sigmoid, two fused producers, the
fused gradient and a fused sum). Run one after another, each writes a full-size array that
the next reads back: five passes over memory and 40 MB arrays per 10^7 float32 elements. A
loop group runs those instructions together over row chunks of the shared shape: for each
chunk every member computes its rows in turn, values that die inside the group live only in
per-chunk scratch, full reductions keep one partial per chunk. Only values used after the
group are written at full size.

This is a backend decision made at link time, like the memory plan: the Program is
unchanged (each member is still its own instruction), static shapes only propose a group,
and the sizes of each call decide. Small shapes, shapes that differ at run time and
non-contiguous operands run the members one by one, exactly as without a group.

Aliasing is safe: the memory plan keeps every value a group reads or writes, and whatever
those values view, live over the whole group (memory.live_ends), so no member writes bytes
that another member, or a later chunk, still reads.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from .fused import THREADS_MIN, combine_parts, pool
from ..memory.liveness import live_ends

GROUP_MIN = 1 << 17    # elements of the loop shape below which members run one by one
CHUNK_BYTES = 1 << 18  # bytes of the widest value per chunk: a few values fit in L2
CHUNK_BYTES_THREADS = 1 << 20  # the same with two threads (fewer calls, fewer GIL waits)
_REDUCE_ALL = ("sum", "mean", "max", "min", "prod")


def find_groups(program, kernels):
    """Runs of >= 2 consecutive instructions that may share one chunked loop: [[index]]."""
    shapes = _static_shapes(program)
    groups, cur, cur_shape, reduced = [], [], None, set()
    for k, ins in enumerate(program.instrs):
        loop = _loop_shape(ins, kernels, shapes)
        both = _unify(loop, cur_shape) if loop is not None and cur else None
        # A reduction is complete only after the last chunk: its readers start a new group.
        if both is not None and not reduced & set(ins.args):
            cur.append(k)
            cur_shape = both
        else:
            if len(cur) >= 2:
                groups.append(cur)
            cur, cur_shape, reduced = ([k], loop, set()) if loop is not None else ([], None, set())
        if loop is not None and _is_reduction(ins):
            reduced.add(ins.out)
    if len(cur) >= 2:
        groups.append(cur)
    ends = live_ends(program, [kernels[ins.kernel].kind for ins in program.instrs])
    return [g for g in groups if _pays(program, ends, g)]


def _pays(program, ends, group):
    """A group pays where a value dies inside it or a reduction reads a member's value.

    Members whose values all escape and are read by nothing but later instructions run
    faster one by one over whole arrays (W2's bias add and relu: 1.25x slower chunked).
    """
    if len(escaping(program, ends, group)) < len(group):
        return True
    made = {program.instrs[k].out for k in group}
    return any(_is_reduction(program.instrs[k]) and made & set(program.instrs[k].args)
               for k in group)


def _static_shapes(program):
    shapes = {d["slot"]: tuple(d["shape"]) for d in program.inputs + program.params}
    for c in program.consts:
        shapes[c["slot"]] = tuple(np.shape(program.values[f"const{c['slot']}"]))
    for ins in program.instrs:
        shapes[ins.out] = tuple(ins.shape)
    return shapes


def _loop_shape(ins, kernels, shapes):
    """The static shape a member iterates over, or None if the instruction cannot join."""
    kern = kernels[ins.kernel]
    if kern.kind != "out":
        return None
    if kern.inplace:  # elementwise kernels (single ops and fused groups)
        shape = tuple(ins.shape)
        return shape if shape else None
    if _is_reduction(ins) and str(ins.dtype).startswith("float"):
        shape = _static_broadcast([shapes.get(a, ()) for a in ins.args])
        axis = ins.attrs.get("axis")
        if shape and (axis is None or sorted(axis) == list(range(len(shape)))):
            return shape
    return None


def _is_reduction(ins):
    """A fused or plain sum/mean/max/min/prod (whether over every axis is checked later)."""
    if ins.kernel == "fused_reduce":
        return ins.attrs.get("reduce") in _REDUCE_ALL
    return ins.kernel in _REDUCE_ALL and len(ins.args) == 1


def _unify(a, b):
    """The shape both static shapes may be at run time (None matches any size), or None."""
    if a is None or b is None or len(a) != len(b):
        return None
    out = []
    for x, y in zip(a, b):
        if x is not None and y is not None and x != y:
            return None
        out.append(x if x is not None else y)
    return tuple(out)


def _static_broadcast(shapes):
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = {s[i - nd + len(s)] for s in shapes if i - nd + len(s) >= 0} - {1}
        if len(dims) > 1:
            return None  # a None next to a known size: the run-time check decides
        out.append(dims.pop() if dims else 1)
    return tuple(out)


class LoopGroup:
    """Members k0..kn of a Program run as one chunked loop: call(*external, B=None).

    Returns every member's value in order. When the call ran chunked, values that die inside
    the group were never materialized: zero-stride stand-ins of the right shape and dtype
    take their place (listed in `placeholders`, which the memory plan skips), for the
    instructions that read only their shape.
    """

    def __init__(self, program, members, fns, escaping, kernels, index=0):
        self.members = members
        self.index = index  # its place in the Executable's list (Buffers.chunked names it)
        self.instrs = [program.instrs[k] for k in members]
        self.fns = fns
        self.chunk_fns = [getattr(fn, "chunk", fn) for fn in fns]  # scratch-backed bodies
        # Per-chunk partials and their combination, for full reductions.
        self.parts = [_reduction(ins, fn, kernels) if _is_reduction(ins) else None
                      for ins, fn in zip(self.instrs, fns)]
        self.external = external_slots(program, members)
        self.full = [ins.out in escaping for ins in self.instrs]
        self.reduce = [p is not None for p in self.parts]
        self._plans = {}
        self._local = threading.local()
        self.chunked_calls = 0  # how many calls ran as one chunked loop (tests, profiles)
        self.last_chunked = False  # whether the last call ran chunked (the memory plan asks)
        self.placeholders = []  # the last chunked call's stand-ins for unmaterialized values

    def __call__(self, *ext, B=None):
        # A memory plan made for members that ran one by one keeps no value live across
        # the group: then the group must not interleave them (Buffers.chunked).
        plan = None if B is not None and self.index not in B.chunked else self._plan(ext)
        self.last_chunked = plan is not None
        if plan is None:
            return self._one_by_one(ext, B)
        self.chunked_calls += 1
        return self._chunked(ext, B, *plan)

    def _blame(self, e, j):
        """Mark exception e as raised by member j, so the linker names that instruction."""
        if not hasattr(e, "flowc_member"):
            e.flowc_member = self.members[j]

    # -- deciding --------------------------------------------------------------------------
    def _plan(self, ext):
        # Layouts are part of the key: row chunks of a transposed operand are not its bytes
        # rows, and the plan's aliasing argument (module docstring) needs those to match.
        key = tuple([(getattr(a, "shape", ()), getattr(a, "dtype", None),
                      getattr(getattr(a, "flags", None), "c_contiguous", None)) for a in ext])
        if key not in self._plans:
            if len(self._plans) >= 16:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = self._decide(ext)
        return self._plans[key]

    def _decide(self, ext):
        """(loop shape, cut flags, member dtypes) when chunking applies, else None."""
        try:
            shape = np.broadcast_shapes(*[np.shape(a) for a in ext])
        except ValueError:
            return None
        if len(shape) == 0 or shape[0] < 2 or math.prod(shape) < GROUP_MIN:
            return None
        cut = [np.ndim(a) == len(shape) and np.shape(a)[0] == shape[0] for a in ext]
        if not all(a.flags.c_contiguous for a, c in zip(ext, cut) if c):
            return None  # row chunks of a transposed operand are strided gathers
        where = dict(zip(self.external, [np.shape(a) for a in ext]))
        for ins, red in zip(self.instrs, self.reduce):
            try:
                got = np.broadcast_shapes(*[where[a] for a in ins.args])
            except ValueError:
                return None
            if got != shape:
                return None  # a member over another shape: no common loop
            if not red:
                where[ins.out] = shape
        # The members' dtypes, from a run over the first row.
        vals = {s: (a[:1] if c else a) for s, a, c in zip(self.external, ext, cut)}
        dtypes = []
        for ins, fn in zip(self.instrs, self.fns):
            v = np.asarray(fn(*[vals[a] for a in ins.args]))
            vals[ins.out] = v
            dtypes.append(v.dtype)
        return shape, cut, dtypes

    # -- running ---------------------------------------------------------------------------
    def _one_by_one(self, ext, B):
        vals = dict(zip(self.external, ext))
        for j, (ins, fn) in enumerate(zip(self.instrs, self.fns)):
            buf = B.get(ins.out) if B is not None else None
            try:
                v = fn(*[vals[a] for a in ins.args]) if buf is None \
                    else fn(*[vals[a] for a in ins.args], out=buf)
            except Exception as e:
                self._blame(e, j)
                raise
            vals[ins.out] = v if ins.shape else np.asarray(v)
        return tuple(vals[ins.out] for ins in self.instrs)

    def _chunked(self, ext, B, shape, cut, dtypes):
        rows, per_row = shape[0], math.prod(shape[1:])
        width = max(d.itemsize for d in dtypes)
        # Threads pay for every GIL hand-over (one per ufunc call): they get bigger chunks.
        per = CHUNK_BYTES if rows * per_row < THREADS_MIN or THREADS < 2 else CHUNK_BYTES_THREADS
        step = max(1, per // (width * per_row))
        spans = [(lo, min(rows, lo + step)) for lo in range(0, rows, step)]
        full = {}
        for ins, f, red, dt in zip(self.instrs, self.full, self.reduce, dtypes):
            if f and not red:
                buf = B.get(ins.out) if B is not None else None
                full[ins.out] = buf if buf is not None else np.empty(shape, dt)
        parts = [[None] * len(spans) for _ in self.instrs]  # by chunk: sums are deterministic
        members = list(zip(range(len(self.instrs)), self.instrs, self.chunk_fns, self.reduce,
                           dtypes))

        def run(todo):
            scratch, j = self._scratch(), 0
            try:
                for i in todo:
                    lo, hi = spans[i]
                    vals = {s: (a[lo:hi] if c else a)
                            for s, a, c in zip(self.external, ext, cut)}
                    for j, ins, fn, red, dt in members:
                        args = [vals[a] for a in ins.args]
                        if red:
                            parts[j][i] = self.parts[j][0](*args)
                            continue
                        dest = full.get(ins.out)
                        if dest is not None:
                            dest = dest[lo:hi]
                        else:
                            dest = scratch.get((ins.out, hi - lo))
                            if dest is None:
                                dest = scratch[(ins.out, hi - lo)] = \
                                    np.empty((hi - lo,) + shape[1:], dt)
                        vals[ins.out] = fn(*args, out=dest)
            except Exception as e:
                self._blame(e, j)
                raise
        _spread(run, len(spans), math.prod(shape))
        result, self.placeholders = [], []
        for j, (ins, red, dt) in enumerate(zip(self.instrs, self.reduce, dtypes)):
            if red:
                total = self.parts[j][1](parts[j], math.prod(shape))
                buf = B.get(ins.out) if B is not None else None
                if buf is not None:
                    np.copyto(buf, total)
                    total = buf
                result.append(np.asarray(total))
            else:
                v = full.get(ins.out)
                if v is None:  # never materialized; later shape-only reads get the shape
                    v = np.broadcast_to(np.zeros((), dt), shape)
                    self.placeholders.append(v)
                result.append(v)
        return tuple(result)

    def _scratch(self):
        s = getattr(self._local, "scratch", None)
        if s is None:
            s = self._local.scratch = {}
        if len(s) > 64:
            s.clear()
        return s


def _reduction(ins, fn, kernels):
    """(partial, combine) for a full reduction: per-chunk partials, then their total."""
    name = ins.attrs["reduce"] if ins.kernel == "fused_reduce" else ins.kernel
    red = kernels["sum" if name == "mean" else name].fn
    keep = ins.attrs.get("keepdims", False)

    def partial(x):
        return red(x, axis=tuple(range(x.ndim)), keepdims=True)
    partial = getattr(fn, "partial", partial)  # a fused reduction evaluates its expression

    def combine(parts, count):
        total = combine_parts(parts, name, count)
        return total if keep else total.reshape(())
    return partial, combine


def external_slots(program, members):
    """The slots a group reads that none of its members writes, in first-use order."""
    made, ext = set(), {}  # a dict keeps first-use order with set-time lookups
    for k in members:
        ins = program.instrs[k]
        for a in ins.args:
            if a not in made:
                ext.setdefault(a, None)
        made.add(ins.out)
    return list(ext)


def escaping(program, ends, group):
    """The member outputs that are read after the group, returned, or become parameters
    (`ends`: memory.live_ends of the program)."""
    last = group[-1]
    keep = set(program.outputs) | {u["slot"] for u in program.updates}
    return {program.instrs[k].out for k in group
            if program.instrs[k].out in keep or ends.get(program.instrs[k].out, -1) > last}


THREADS = 2  # threads for one loop: the machine's cores, not more (from THREADS_MIN up)


def _spread(run, n, size):
    """run(chunk indices) over all n chunks; big loops share them between two threads.

    Threads take the next chunk when they finish one (a shared iterator), so a core that
    is busy with other work just takes fewer chunks.
    """
    if n < 2 or size < THREADS_MIN or THREADS < 2:
        return run(iter(range(n)))
    todo = iter(range(n))  # next() on a range iterator is atomic under the GIL
    futs = [pool().submit(run, todo) for _ in range(THREADS - 1)]
    run(todo)
    for f in futs:
        f.result()
