"""CPU evaluation of fused elementwise groups: generated NumPy code over cache-sized chunks.

A fused group (see the Program's `fused` / `fused_reduce` instructions) is an expression tree
of elementwise kernels. It is compiled once into a Python function that evaluates the tree on
row blocks of the output small enough to stay in cache, writing the last op straight into
the output, and runs the blocks on a small thread pool (NumPy releases the GIL inside ufuncs,
so both cores work). Intermediates never exist at full size.
"""
from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK_BYTES = 1 << 18    # bytes per block and temporary: a few fit in L2; smaller blocks
                         # cost more in per-block calls than they save (W2's update: 1.2x)
PARALLEL_MIN = 1 << 17   # below this many elements, one block on the calling thread
THREADS_MIN = 1 << 21    # below this, blocks run on the calling thread: waking pool threads
                         # next to BLAS's own (spinning) threads slowed the next GEMM 2x
_POOL = None


def _map(fn, spans, size):
    """Run fn over the blocks: on the pool for big work, else on this thread."""
    if size >= THREADS_MIN:
        return list(pool().map(fn, spans))
    return [fn(sp) for sp in spans]


def pool():
    """The thread pool for large CPU loops (fused blocks and loop groups share it)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8)),
                                   thread_name_prefix="flowc-fused")
    return _POOL


def _source(expr, kernels):
    """Python source of the block functions for expr, their environment and operand count.

    Three functions share one body: `block(a.., out=None)` allocates its temporaries,
    `probe(a..)` also returns them (to learn their shapes), and `block_s(a.., out, S)`
    writes temporary j into scratch array S[j] (or allocates where S[j] is None).
    """
    steps, env, names = [], {}, {}
    for e in postorder(expr):  # a repeated subexpression is computed once per block
        kind = e[0]
        if kind == "arg":
            names[e] = f"a{_index(e[1])}"
            continue
        if kind == "const":
            names[e] = f"c{len(env)}"
            env[names[e]] = np.dtype(e[2]).type(e[1])
            continue
        op, attrs, children = e
        args = [names[c] for c in children]
        fn = kernels[op].fn  # an op name that is no kernel fails here, before any source
        fname = f"k{len(env)}"  # op names stay out of the source text: only our own names
        attrs = dict(attrs)
        env[fname] = (lambda f, a: (lambda *x, out=None: f(*x, out=out, **a)))(fn, attrs) \
            if attrs else fn
        names[e] = f"t{len(steps)}"
        steps.append((names[e], fname, args, e is expr))
    result = names[expr]
    n = max((e[1] for e in names if e[0] == "arg"), default=-1) + 1
    params = ", ".join([f"a{i}" for i in range(n)])
    temps = [t for t, _, _, root in steps if not root and t != result]

    def body(scratch):
        lines = []
        for j, (t, fname, args, root) in enumerate(steps):
            if root:  # with no out= given, the root too goes to scratch (reductions read it)
                dest = f", out=out if out is not None else S[{j}]" if scratch else ", out=out"
            else:
                dest = f", out=S[{j}]" if scratch else ""
            lines.append(f"    {t} = {fname}({', '.join(args)}{dest})")
        return lines or [f"    out[...] = {result}"]
    sep = ", " if params else ""
    src = "\n".join([f"def block({params}{sep}out=None):"] + body(False) + [f"    return {result}",
                     f"def probe({params}{sep}out=None):"] + body(False) +
                    [f"    return [{', '.join(temps + [result])}]",
                     f"def block_s({params}{sep}out=None, S=None):"] + body(True) +
                    [f"    return {result}"]) + "\n"
    # `fast`: the entry point of `fused` instructions. Small operands (most of a training
    # step) run the body inline, with no call layer; large ones go to the chunked runner.
    total = " + ".join(f"a{i}.size" for i in range(n)) or "0"
    src += "\n".join([f"def fast({params}{sep}out=None):",
                       f"    if {total} >= _PARALLEL_MIN:",
                       f"        return _big({params}{sep}out=out)"] + body(False) +
                      [f"    return {result}"]) + "\n"
    env["_steps"] = steps
    env["_PARALLEL_MIN"] = PARALLEL_MIN
    return src, env, n


def _index(i):
    """An operand index as digits; anything but a non-negative int is an error."""
    if type(i) is not int or i < 0:
        raise ValueError(f"fused expression: expected an operand index, got {i!r}")
    return str(i)


def postorder(expr):
    """Each distinct subexpression of a fused expression once, operands before their users.

    Iterative: a walk must not recurse over the depth of an expression.
    """
    order, seen, stack = [], set(), [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if e in seen:
            continue
        if ready or e[0] in ("arg", "const"):
            seen.add(e)
            order.append(e)
            continue
        stack.append((e, True))
        stack.extend((c, False) for c in reversed(e[2]))
    return order


class Block:
    """A compiled fused expression: call(*args, out=None) evaluates one block of it.

    Without out=, the result itself lands in scratch and is valid only until the next call
    on this thread (reductions consume it at once); `block(*args)` allocates instead.

    Temporaries go into per-thread scratch arrays, allocated once per operand shapes and
    shared between temporaries whose lives do not overlap. Allocating fresh arrays per
    block instead makes malloc hand memory back to the OS and fault it in again on every
    call, which cost ten times the arithmetic.
    """

    def __init__(self, expr, kernels):
        src, env, self.n = _source(expr, kernels)
        self.source = src
        exec(compile(src, "<flowc-fused>", "exec"), env)
        self.block, self.probe, self.block_s = env["block"], env["probe"], env["block_s"]
        self.fast, self._env = env["fast"], env
        self.steps = env["_steps"]
        self.inplace_ok = [isinstance(env[f], np.ufunc) for _, f, _, _ in self.steps]
        self.local = threading.local()

    def __call__(self, *args, out=None):
        cache = getattr(self.local, "scratch", None)
        if cache is None:
            cache = self.local.scratch = {}
        # Keyed by operand shapes and dtypes: one Block serves every caller of the same
        # expression, float32 and float64 alike.
        key = tuple([(getattr(a, "shape", ()), getattr(a, "dtype", None)) for a in args])
        S = cache.get(key)
        if S is None:
            if len(cache) >= 64:  # one Block serves every instruction with its expression
                cache.pop(next(iter(cache)))
            S = cache[key] = self._plan(self.probe(*args))
        return self.block_s(*args, out=out, S=S)

    def _plan(self, temps):
        """Scratch arrays by liveness: a temporary takes the array of one that is dead."""
        last = {}
        for j, (_, _, args, _) in enumerate(self.steps):
            for a in args:
                last[a] = j
        names = [t for t, _, _, root in self.steps if not root] + [s[0] for s in self.steps[-1:]]
        values = dict(zip(names, temps))
        S, free, held = [None] * len(self.steps), {}, {}
        for j, (t, _, args, root) in enumerate(self.steps):
            v = values.get(t)
            if isinstance(v, np.ndarray) and v.ndim:
                k = (v.shape, v.dtype.str)
                # A ufunc may write over an operand that dies here (same shape and dtype).
                reuse = None
                if self.inplace_ok[j]:
                    for a in args:
                        h = held.get(a)
                        if h is not None and last.get(a) == j and (h.shape, h.dtype.str) == k:
                            reuse = held.pop(a)
                            break
                if reuse is None:
                    reuse = free[k].pop() if free.get(k) else np.empty(v.shape, v.dtype)
                S[j] = held[t] = reuse
            for a in args:
                if last.get(a) == j and a in held:
                    arr = held.pop(a)
                    free.setdefault((arr.shape, arr.dtype.str), []).append(arr)
        return S


_BLOCKS = OrderedDict()
BLOCKS_KEPT = 512  # compiled groups kept: each holds per-thread scratch arrays


def compile_block(expr, kernels):
    """The expression as a Block (cached: a deep network repeats the same few groups). The
    cache is bounded, least recently used first out: a process that compiles many models
    (a notebook, the fuzzer) must not keep every group's scratch for ever."""
    key = (expr, id(kernels))
    if key in _BLOCKS:
        _BLOCKS.move_to_end(key)
    else:
        blk = Block(expr, kernels)
        _BLOCKS[key] = blk, blk.n
        if len(_BLOCKS) > BLOCKS_KEPT:
            _BLOCKS.popitem(last=False)
    return _BLOCKS[key]


def _slicer(args, shape):
    """For each operand: True if it is cut along axis 0 with the output, False if whole."""
    nd = len(shape)
    return [np.ndim(a) == nd and nd > 0 and np.shape(a)[0] == shape[0] and shape[0] > 1
            for a in args]


def _blocks(shape, itemsize):
    rows = shape[0] if shape else 1
    row = math.prod(shape[1:]) if len(shape) > 1 else 1
    step = max(1, BLOCK_BYTES // max(itemsize, 1) // max(row, 1))
    return [(lo, min(rows, lo + step)) for lo in range(0, rows, step)]


def fused_kernel(expr, kernels):
    """A kernel fn(*args, out=None) for a `fused` instruction."""
    block, _ = compile_block(expr, kernels)

    def big(*args, out=None):
        shape = np.broadcast_shapes(*[np.shape(a) for a in args])
        cut = _slicer(args, shape)
        if not all(a.flags.c_contiguous for a, c in zip(args, cut) if c):
            # Row blocks of a transposed operand are strided gathers: whole-array ufuncs
            # read it better (temporaries in reused scratch, so no page faults per call).
            if out is None:
                return np.asarray(block.block(*args))
            return block(*args, out=out)
        if out is None:
            probe = block.block(*[a[:1] if c else a for a, c in zip(args, _slicer(args, shape))])
            out = np.empty(shape, dtype=np.asarray(probe).dtype)

        def one(span):
            lo, hi = span
            block(*[a[lo:hi] if c else a for a, c in zip(args, cut)], out=out[lo:hi])
        _map(one, _blocks(shape, out.dtype.itemsize), out.size)
        return out
    block._env["_big"] = big  # any instruction's copy will do: it only reads `block`
    block.fast.chunk = block  # loop groups call the scratch-backed body per chunk
    return block.fast


_COMBINE = {"sum": np.add, "mean": np.add, "max": np.maximum, "min": np.minimum,
            "prod": np.multiply}


def fused_reduce_kernel(expr, reduce, axis, keepdims, kernels):
    """A kernel fn(*args, out=None) for a `fused_reduce` instruction."""
    block, _ = compile_block(expr, kernels)
    plain = block.block
    red = kernels["sum" if reduce == "mean" else reduce].fn

    small_red = kernels[reduce].fn

    def run(*args, out=None):
        for a in args:
            if getattr(a, "size", 0) >= PARALLEL_MIN:
                break
        else:
            return small_red(plain(*args), axis=axis, keepdims=keepdims, out=out)
        shape = np.broadcast_shapes(*[np.shape(a) for a in args])
        nd = len(shape)
        axes = tuple(range(nd)) if axis is None else tuple(axis)
        count = math.prod(shape[a] for a in axes)
        cut = _slicer(args, shape)
        spans = _blocks(shape, max(getattr(a, "itemsize", 8) for a in args))
        if 0 not in axes:  # each block reduces into its own rows of the output
            if out is None:
                first = red(block(*[a[:1] if c else a for a, c in zip(args, cut)]),
                            axis=axes, keepdims=keepdims)
                out = np.empty((shape[0],) + np.shape(first)[1:], dtype=np.asarray(first).dtype)

            def rows(span):
                lo, hi = span
                v = block(*[a[lo:hi] if c else a for a, c in zip(args, cut)])
                r = red(v, axis=axes, keepdims=keepdims)
                out[lo:hi] = r / count if reduce == "mean" else r
            _map(rows, spans, math.prod(shape))
            return out

        def part(span):
            lo, hi = span
            v = block(*[a[lo:hi] if c else a for a, c in zip(args, cut)])
            return red(v, axis=axes, keepdims=True)
        total = combine_parts(_map(part, spans, math.prod(shape)), reduce, count)
        if not keepdims:
            total = np.squeeze(total, axis=axes)
        return _store(total, out)

    def partial(*args):  # for loop groups (full reductions): one partial per row chunk
        v = block(*args)
        return red(v, axis=tuple(range(np.ndim(v))), keepdims=True)
    run.partial = partial
    return run


def combine_parts(parts, reduce, count):
    """The reduction of per-block partials (kept dims), in block order; mean divides by count."""
    total = parts[0]
    for p in parts[1:]:
        total = _COMBINE[reduce](total, p)
    return total / count if reduce == "mean" else total


def _store(r, out):
    if out is None:
        return np.asarray(r)
    np.copyto(out, r)
    return out
