"""CUDA source for conv's data movement, generated per geometry: im2col and a gathering col2im.

Every size, stride, pad and dilation is a literal in the source, so index math is constant
divisions the compiler strength-reduces. Layouts are the NumPy kernel's (runtime/cpu/conv.py):
x is (N, C, *S) and cols is (N, *O, C, *K), contiguous. `index` is "int" when every offset
fits in 31 bits and "long long" otherwise (see index_type).

col2im gathers: one thread per input element sums, in kernel-offset order, the columns it fed,
so the result is deterministic without atomics (a scatter with atomicAdd is not).
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from .codegen import KernelSource, _inf, acc_dtype, ctype

INT32_LIMIT = 2 ** 31 - 1


def index_type(*sizes) -> str:
    """The C index type: int when every size (element count) fits, else long long."""
    return "int" if max(sizes, default=0) <= INT32_LIMIT else "long long"


def _name(kind, text):
    return f"flowc_{kind}_{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _geometry(xshape, K, stride, pad, dilation, lhs_dilation):
    S = tuple(xshape[2:])
    O = tuple((((h - 1) * u + 1 if h else 0) + lo + hi - d * (k - 1) - 1) // s + 1
              for h, k, s, (lo, hi), d, u in zip(S, K, stride, pad, dilation, lhs_dilation))
    if any(o < 1 for o in O):
        raise ValueError(f"conv codegen: kernel {tuple(K)} larger than input {S} padded "
                         f"by {tuple(pad)}")
    return S, O


def _decode(var, dims, names, I):
    """Lines that split flat index `var` into coordinates `names` over sizes `dims`
    (row-major; the last name varies fastest)."""
    lines, rest = [], var
    for j in range(len(dims) - 1, -1, -1):
        n = names[j]
        if j == 0:
            lines.append(f"const {I} {n} = {rest};")
        else:
            lines.append(f"const {I} {n} = {rest} % {dims[j]}; const {I} r{n} = {rest} / "
                         f"{dims[j]};")
            rest = f"r{n}"
    return lines


def im2col_source(dtype, xshape, K, stride, pad, dilation, lhs_dilation, index=None):
    """cols[n, *p, c, *k] = x~[n, c, p * stride + k * dilation] where x~ is x dilated by
    lhs_dilation and padded by pad (negative pads crop); zero where x~ has no element."""
    N, C = xshape[:2]
    S, O = _geometry(xshape, K, stride, pad, dilation, lhs_dilation)
    nd, T = len(S), ctype(dtype)
    total = N * math.prod(O) * C * math.prod(K)
    I = index or index_type(total, math.prod(xshape))
    names = ["n"] + [f"p{d}" for d in range(nd)] + ["c"] + [f"k{d}" for d in range(nd)]
    dims = [N, *O, C, *K]
    body = _decode("i", dims, names, I)
    ok, flat = [], "n * " + str(C) + " + c"
    for d in range(nd):
        u, lo = lhs_dilation[d], pad[d][0]
        # position in the dilated, padded input -> position in the dilated input
        body.append(f"const {I} q{d} = p{d} * {stride[d]} + k{d} * {dilation[d]} - ({lo});")
        ok.append(f"q{d} >= 0 && q{d} <= {(S[d] - 1) * u}" + (f" && q{d} % {u} == 0" if u > 1 else ""))
        flat = f"({flat}) * {S[d]} + q{d}" + (f" / {u}" if u > 1 else "")
    body.append(f"out[i] = ({' && '.join(ok)}) ? x[{flat}] : ({T})0;")
    key = repr(("im2col", T, tuple(xshape), tuple(K), tuple(stride), tuple(pad),
                tuple(dilation), tuple(lhs_dilation), I))
    name = _name("im2col", key)
    src = (f'extern "C" __global__ void {name}(const {T}* __restrict__ x, '
           f"{T}* __restrict__ out) {{\n"
           f"  for ({I} i = ({I})blockIdx.x * blockDim.x + threadIdx.x; i < ({I}){total}; "
           f"i += ({I})gridDim.x * blockDim.x) {{\n"
           + "".join(f"    {ln}\n" for ln in body) + "  }\n}\n")
    return KernelSource(name, src, ((f"const {T}*", "x"), (f"{T}*", "out"))), total


def col2im_source(dtype, xshape, K, stride, pad, dilation, lhs_dilation, index=None):
    """The adjoint of im2col: dx[n, c, h] = sum over (k, p) with p * stride + k * dilation
    - lo == h * lhs_dilation of cols[n, *p, c, *k], summed in row-major k order (deterministic)."""
    N, C = xshape[:2]
    S, O = _geometry(xshape, K, stride, pad, dilation, lhs_dilation)
    nd, T = len(S), ctype(dtype)
    total = math.prod(xshape)
    I = index or index_type(total, N * math.prod(O) * C * math.prod(K))
    A = ctype(acc_dtype(dtype))
    body = _decode("i", [N, C, *S], ["n", "c"] + [f"h{d}" for d in range(nd)], I)
    body.append(f"{A} acc = 0;")
    lines, depth = [], 0
    for d in range(nd):
        u, lo, s = lhs_dilation[d], pad[d][0], stride[d]
        ind = "  " * depth
        lines.append(f"{ind}for ({I} k{d} = 0; k{d} < {K[d]}; ++k{d}) {{")
        lines.append(f"{ind}  const {I} t{d} = h{d} * {u} + ({lo}) - k{d} * {dilation[d]};")
        cond = f"t{d} < 0 || t{d} > {(O[d] - 1) * s}" + (f" || t{d} % {s} != 0" if s > 1 else "")
        lines.append(f"{ind}  if ({cond}) continue;")
        lines.append(f"{ind}  const {I} p{d} = t{d}" + (f" / {s};" if s > 1 else ";"))
        depth += 1
    flat = "n"
    for d in range(nd):
        flat = f"({flat}) * {O[d]} + p{d}"
    flat = f"({flat}) * {C} + c"
    for d in range(nd):
        flat = f"({flat}) * {K[d]} + k{d}"
    lines.append("  " * depth + f"acc += ({A})cols[{flat}];")
    for d in range(nd - 1, -1, -1):
        lines.append("  " * d + "}")
    body += lines
    body.append(f"dx[i] = ({T})acc;")
    key = repr(("col2im", T, tuple(xshape), tuple(K), tuple(stride), tuple(pad),
                tuple(dilation), tuple(lhs_dilation), I))
    name = _name("col2im", key)
    src = (f'extern "C" __global__ void {name}(const {T}* __restrict__ cols, '
           f"{T}* __restrict__ dx) {{\n"
           f"  for ({I} i = ({I})blockIdx.x * blockDim.x + threadIdx.x; i < ({I}){total}; "
           f"i += ({I})gridDim.x * blockDim.x) {{\n"
           + "".join(f"    {ln}\n" for ln in body) + "  }\n}\n")
    return KernelSource(name, src, ((f"const {T}*", "cols"), (f"{T}*", "dx"))), total


def pool_argmax_source(dtype, xshape, kernel, stride, padding, ceil_mode, index=None):
    """One thread per window: the flat spatial index of its first maximum in row-major
    window order, as runtime/cpu/pool.py's convention: padding reads -inf, a NaN beats any
    number, a later value wins only when strictly greater, and a window whose best is a
    padding position reports its first real position."""
    from ..cpu.pool import out_sizes
    N, C = xshape[:2]
    S = tuple(xshape[2:])
    O = out_sizes(S, kernel, stride, padding, ceil_mode)
    nd, T = len(S), ctype(dtype)
    name_ = np.dtype(dtype).name
    total = N * C * math.prod(O)
    I = index or index_type(total, math.prod(xshape))
    ninf = _inf(name_, negative=True)
    body = _decode("i", [N * C, *O], ["nc"] + [f"o{d}" for d in range(nd)], I)
    for d in range(nd):
        body.append(f"const {I} s{d} = o{d} * {stride[d]} - {padding[d]};")
    body.append(f"{T} best = {ninf}; {I} bi = -1;")
    body += [f"{I} b{d} = 0;" for d in range(nd)]
    loops = []
    for d in range(nd):
        loops.append("  " * d + f"for ({I} k{d} = 0; k{d} < {kernel[d]}; ++k{d}) {{")
        loops.append("  " * d + f"  const {I} h{d} = s{d} + k{d};")
    dep = "  " * nd
    inside = " && ".join(f"h{d} >= 0 && h{d} < {S[d]}" for d in range(nd))
    flat = "nc"
    for d in range(nd):
        flat = f"({flat}) * {S[d]} + h{d}"
    loops.append(f"{dep}const {T} v = ({inside}) ? x[{flat}] : {ninf};")
    # The first offset always sets best (as the CPU's running maximum starts from it).
    loops.append(f"{dep}if (bi < 0 || v > best || (v != v && best == best)) {{")
    loops.append(f"{dep}  best = v; bi = 0;" + "".join(f" b{d} = h{d};" for d in range(nd)))
    loops.append(f"{dep}}}")
    for d in range(nd - 1, -1, -1):
        loops.append("  " * d + "}")
    body += loops
    # A padding position (only when padding or ceil_mode reach past the input): the window's
    # first real position instead, dim by dim.
    body += [f"if (b{d} < 0 || b{d} >= {S[d]}) b{d} = s{d} > 0 ? s{d} : 0;" for d in range(nd)]
    res = "b0"
    for d in range(1, nd):
        res = f"({res}) * {S[d]} + b{d}"
    body.append(f"out[i] = (long long)({res});")
    key = repr(("pool_argmax", T, tuple(xshape), tuple(kernel), tuple(stride), tuple(padding),
                bool(ceil_mode), I))
    name = _name("pool_argmax", key)
    src = (f'extern "C" __global__ void {name}(const {T}* __restrict__ x, '
           f"long long* __restrict__ out) {{\n"
           f"  for ({I} i = ({I})blockIdx.x * blockDim.x + threadIdx.x; i < ({I}){total}; "
           f"i += ({I})gridDim.x * blockDim.x) {{\n"
           + "".join(f"    {ln}\n" for ln in body) + "  }\n}\n")
    return KernelSource(name, src, ((f"const {T}*", "x"), ("long long*", "out"))), total
