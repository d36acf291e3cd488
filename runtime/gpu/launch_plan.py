"""Launch plans: from the operands' shapes, strides and dtypes to generated kernels and grids.

Pure Python and NumPy, so the same plan is made for CuPy arrays on a GPU, for NumPy arrays
in a host emulation (tests), and for previews of the CUDA a Program will run. A plan is made
once per operand layout and cached by the caller; a call then only binds pointers.

Dimensions are coalesced first (size-1 dims dropped; neighbours merged where every operand
is contiguous across them), so the generated kernel is specialized only to how many dims
are left and to each operand's access class, never to the sizes themselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from . import codegen as cg

BLOCK = 256
WAVES = 8  # resident blocks of BLOCK threads per SM at full occupancy (2048 threads/SM)
DEFAULT_SMS = 132  # H100 SXM; only the grid size depends on it, never the source
INT32_SAFE = 1 << 30  # int indices while every index and offset stays below this


@dataclass(frozen=True)
class Launch:
    """One kernel launch: args lists ("arg", i) | ("out",) | ("work",) | a NumPy scalar."""

    kernel: cg.KernelSource
    grid: Tuple[int, int]
    block: int
    args: Tuple


@dataclass(frozen=True)
class Plan:
    """Everything a call needs besides the arrays."""

    out_shape: Tuple[int, ...]
    out_dtype: str
    launches: Tuple[Launch, ...]
    work: Optional[Tuple[int, str]] = None  # (elements, dtype) of the partials, if two-pass

    @property
    def sources(self) -> List[cg.KernelSource]:
        return [ln.kernel for ln in self.launches]


def layout_key(arrays):
    """What a plan depends on: each operand's shape, strides and dtype."""
    return tuple((a.shape, a.strides, a.dtype.str) for a in arrays)


def _element_strides(a, shape):
    """Strides of `a` in elements, broadcast to `shape` (0 along broadcast dims)."""
    nd, lead = len(shape), len(shape) - a.ndim
    out = [0] * nd
    for k in range(a.ndim):
        if a.shape[k] != 1:
            s, r = divmod(a.strides[k], a.itemsize)
            if r:
                raise cg.Unsupported("an operand's strides are not whole elements")
            out[lead + k] = s
    return out


def _coalesce(dims, strides):
    """Drop size-1 dims and merge neighbours that are contiguous for every operand.
    dims: sizes (outer to inner); strides: per operand, one stride per dim."""
    nd, ns = [], [[] for _ in strides]
    for k, d in enumerate(dims):
        if d == 1:
            continue
        if nd and all(st[-1] == s[k] * d for st, s in zip(ns, strides)):
            nd[-1] *= d
            for st, s in zip(ns, strides):
                st[-1] = s[k]
            continue
        nd.append(d)
        for st, s in zip(ns, strides):
            st.append(s[k])
    return nd, ns


def _span(dims, strides):
    return sum((d - 1) * abs(s) for d, s in zip(dims, strides)) + 1


def _index(*sizes):
    return "int" if max(sizes, default=0) < INT32_SAFE else "long long"


def _ints(index, values):
    t = np.int32 if index == "int" else np.int64
    return [t(v) for v in values]


def _grid_cap(sms):
    return max(1, sms * WAVES)


def elementwise_plan(expr, arrays, sms=DEFAULT_SMS) -> Plan:
    """The plan writing expr's value for operands `arrays` into a fresh C-contiguous output."""
    dts = tuple(a.dtype.name for a in arrays)
    out_dtype = cg.expr_dtypes(expr, dts)[expr]
    shape = tuple(np.broadcast_shapes(*[a.shape for a in arrays])) if arrays else ()
    n = math.prod(shape)
    strides = [_element_strides(a, shape) for a in arrays]
    dims, ss = _coalesce(list(shape), strides)
    contiguous, acc = [0] * len(dims), 1
    for k in range(len(dims) - 1, -1, -1):
        contiguous[k], acc = acc, acc * dims[k]
    modes = tuple("scalar" if not any(s) else "flat" if s == contiguous else "strided"
                  for s in ss)
    index = _index(n + 4 * BLOCK * _grid_cap(sms), *[_span(dims, s) for s in ss])
    kernel = cg.elementwise_source(expr, dts, out_dtype, modes, len(dims), index)
    args = [("arg", i) for i in range(len(arrays))] + [("out",)] + _ints(index, [n])
    if "strided" in modes:
        args += _ints(index, dims[1:])
        for i, m in enumerate(modes):
            if m == "strided":
                args += _ints(index, ss[i])
    blocks = max(1, min(-(-n // (BLOCK * cg.UNROLL)), _grid_cap(sms)))
    launches = (Launch(kernel, (blocks, 1), BLOCK, tuple(args)),) if n else ()
    return Plan(shape, out_dtype, launches)


def reduce_plan(expr, arrays, reduce, axis, keepdims, sms=DEFAULT_SMS) -> Plan:
    """The plan for reduce(expr(arrays), axis, keepdims) into a fresh C-contiguous output."""
    dts = tuple(a.dtype.name for a in arrays)
    root = cg.expr_dtypes(expr, dts)[expr]
    out_dtype = cg.reduce_dtype(reduce, root)
    shape = tuple(np.broadcast_shapes(*[a.shape for a in arrays])) if arrays else ()
    nd = len(shape)
    axes = tuple(range(nd)) if axis is None else tuple(sorted({a % nd for a in axis})) if nd else ()
    out_shape = tuple(1 if k in axes else d for k, d in enumerate(shape) if keepdims or k not in axes)
    strides = [_element_strides(a, shape) for a in arrays]
    kept = [k for k in range(nd) if k not in axes]
    kd, ks = _coalesce([shape[k] for k in kept], [[s[k] for k in kept] for s in strides])
    rd, rs = _coalesce([shape[k] for k in axes], [[s[k] for k in axes] for s in strides])
    n_out, n_red = math.prod(kd), math.prod(rd)
    classes = tuple("scalar" if not any(k) and not any(r) else "row" if not any(r) else "full"
                    for k, r in zip(ks, rs))
    # Threads should walk memory contiguously: the biggest operand's stride-1 dim decides.
    main = max(range(len(arrays)), key=lambda i: arrays[i].size, default=None)
    inner_reduced = main is not None and 1 in [abs(s) for s in rs[main]] and \
        1 not in [abs(s) for s in ks[main]]
    strategy = "rows" if n_out == 1 or (inner_reduced and n_red >= 64) else "cols"
    cap = _grid_cap(sms)
    if strategy == "rows":
        block = 256 if n_red >= 2048 else 128 if n_red >= 512 else 64
        bx = max(1, min(n_out, cap))
        per_block = block * cg.UNROLL * 4
    else:
        block = BLOCK if n_out >= BLOCK else max(32, -(-n_out // 32) * 32)
        bx = max(1, min(-(-n_out // block), cap))
        per_block = 16
    nsplit = max(1, min(cap // bx, -(-n_red // per_block), 65535)) if n_out else 1
    chunk = max(1, -(-n_red // nsplit))
    nsplit = max(1, -(-n_red // chunk))
    spans = [_span(kd, k) + _span(rd, r) for k, r in zip(ks, rs)]
    index = _index(n_out * nsplit + cap * block, n_red + chunk + cap * block * cg.UNROLL * 4,
                   *spans)
    kernel = cg.reduce_source(expr, dts, reduce, strategy, classes, len(kd), len(rd), index)
    args = [("arg", i) for i in range(len(arrays))] + [("out",), ("work",) if nsplit > 1
                                                      else ("out",)]
    args += _ints(index, [n_out, n_red, chunk] + kd[1:] + rd[1:])
    for i, c in enumerate(classes):
        if c != "scalar":
            args += _ints(index, ks[i])
    for i, c in enumerate(classes):
        if c == "full":
            args += _ints(index, rs[i])
    if n_out == 0:
        return Plan(out_shape, out_dtype, ())
    launches = [Launch(kernel, (bx, nsplit), block, tuple(args))]
    work = None
    if nsplit > 1:
        acc = cg.acc_dtype(out_dtype)
        work = (n_out * nsplit, acc)
        ws = (nsplit, 1) if strategy == "rows" else (1, n_out)
        fin = cg.finish_source(reduce, out_dtype, index)
        fblock = 32 if nsplit <= 64 else 128 if nsplit <= 512 else 256
        launches.append(Launch(fin, (max(1, min(n_out, cap)), 1), fblock,
                               (("work",), ("out",), *_ints(index, [n_out, nsplit, *ws, n_red]))))
    return Plan(out_shape, out_dtype, tuple(launches), work)


def node_expr(op, attrs, nargs):
    """The one-node expression of elementwise op `op` applied to operands 0..nargs-1."""
    return (op, tuple(sorted(attrs.items())), tuple(("arg", i) for i in range(nargs)))


ARG0 = ("arg", 0)


def random_plan(shape, dtype, stream, sms=DEFAULT_SMS, start=0) -> Plan:
    """random_uniform(like, state): numbers shaped like `like` (operand 0), state operand 1;
    elements start.. of the sequence (a sharded draw's place in the global batch)."""
    shape = tuple(shape)
    n = math.prod(shape)
    kernel = cg.random_uniform_source(dtype)
    blocks = max(1, min(-(-n // BLOCK), _grid_cap(sms)))
    args = (("arg", 1), ("out",), np.int64(n), np.uint64(int(stream) % (1 << 64)),
            np.int64(start))
    return Plan(shape, np.dtype(dtype).name, (Launch(kernel, (blocks, 1), BLOCK, args),) if n else ())
