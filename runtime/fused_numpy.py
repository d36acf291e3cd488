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
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK_BYTES = 1 << 16    # bytes per block and temporary: in L2, and under malloc's mmap line
PARALLEL_MIN = 1 << 17   # below this many elements, one block on the calling thread
_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8)),
                                   thread_name_prefix="flowc-fused")
    return _POOL


def _source(expr, kernels):
    """Python source of `f(a0, a1, ..., out)` evaluating expr, plus the names it needs."""
    lines, env, counter, seen = [], {}, [0], {}

    def emit(e, out=None):
        if out is None and e in seen:  # a repeated subexpression is computed once per block
            return seen[e]
        kind = e[0]
        if kind == "arg":
            return f"a{e[1]}"
        if kind == "const":
            name = f"c{len(env)}"
            env[name] = np.dtype(e[2]).type(e[1])
            return name
        op, attrs, children = e
        args = [emit(c) for c in children]
        fname = f"k_{op}_{len(env)}"
        fn = kernels[op].fn
        attrs = dict(attrs)
        env[fname] = (lambda f, a: (lambda *x, out=None: f(*x, out=out, **a)))(fn, attrs) \
            if attrs else fn
        counter[0] += 1
        target = f"t{counter[0]}"
        dest = f", out={out}" if out else ""
        lines.append(f"    {target} = {fname}({', '.join(args)}{dest})")
        seen[e] = target
        return target

    result = emit(expr, out="out")
    n = max([e for e in _args(expr)], default=-1) + 1
    body = "\n".join(lines) if lines else f"    out[...] = {result}"
    src = f"def block({', '.join(f'a{i}' for i in range(n))}, out=None):\n{body}\n    return {result}\n"
    return src, env, n


def _args(expr):
    if expr[0] == "arg":
        return [expr[1]]
    if expr[0] == "const":
        return []
    return [i for c in expr[2] for i in _args(c)]


_BLOCKS = {}


def compile_block(expr, kernels):
    """The expression as a function of its operands (an `out=` array receives the result).

    Cached by expression: a deep network repeats the same few groups in every layer.
    """
    key = (expr, id(kernels))
    if key not in _BLOCKS:
        src, env, n = _source(expr, kernels)
        exec(compile(src, "<flowc-fused>", "exec"), env)
        _BLOCKS[key] = env["block"], n
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

    def run(*args, out=None):
        for a in args:
            if getattr(a, "size", 0) >= PARALLEL_MIN:
                break
        else:  # small: one block on this thread (most calls of a training step)
            r = block(*args, out=out)
            return r if out is not None else np.asarray(r)
        shape = np.broadcast_shapes(*[np.shape(a) for a in args])
        if out is None:
            probe = block(*[a[:1] if c else a for a, c in zip(args, _slicer(args, shape))])
            out = np.empty(shape, dtype=np.asarray(probe).dtype)
        cut = _slicer(args, shape)

        def one(span):
            lo, hi = span
            block(*[a[lo:hi] if c else a for a, c in zip(args, cut)], out=out[lo:hi])
        list(_pool().map(one, _blocks(shape, out.dtype.itemsize)))
        return out
    return run


_COMBINE = {"sum": np.add, "mean": np.add, "max": np.maximum, "min": np.minimum,
            "prod": np.multiply}


def fused_reduce_kernel(expr, reduce, axis, keepdims, kernels):
    """A kernel fn(*args, out=None) for a `fused_reduce` instruction."""
    block, _ = compile_block(expr, kernels)
    red = kernels["sum" if reduce == "mean" else reduce].fn

    small_red = kernels[reduce].fn

    def run(*args, out=None):
        for a in args:
            if getattr(a, "size", 0) >= PARALLEL_MIN:
                break
        else:
            return small_red(block(*args), axis=axis, keepdims=keepdims, out=out)
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
            list(_pool().map(rows, spans))
            return out

        def part(span):
            lo, hi = span
            v = block(*[a[lo:hi] if c else a for a, c in zip(args, cut)])
            return red(v, axis=axes, keepdims=True)
        parts = list(_pool().map(part, spans))
        total = parts[0]
        for p in parts[1:]:
            total = _COMBINE[reduce](total, p)
        if reduce == "mean":
            total = total / count
        if not keepdims:
            total = np.squeeze(total, axis=axes)
        return _store(total, out)
    return run


def _store(r, out):
    if out is None:
        return np.asarray(r)
    np.copyto(out, r)
    return out
