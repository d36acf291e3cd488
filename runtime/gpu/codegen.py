"""CUDA source for elementwise expression trees, whole or reduced: the GPU backend's kernels.

Pure Python and NumPy: generating, printing and checking the source (nvcc --ptx in CI, or a
host emulation in the tests) never needs CuPy or a GPU.

An expression is the `expr` tree of a `fused` / `fused_reduce` instruction (see the Program
docs): ("arg", i), ("const", value, dtype) or (op, attrs_items, children). Single elementwise
ops and plain reductions use the same generator with a one-node tree. One thread evaluates
the whole tree for one element; every node's dtype is what NumPy gives for it (found by
running the NumPy kernels on 0-d arrays), so results match the CPU backend exactly in type.

Three kernel shapes, each a complete `extern "C" __global__` function with its helpers:
  elementwise  grid-stride loop over the output, 4 elements per thread per step (loads first);
               each operand is read flat (same layout as the output), as a scalar, or through
               per-dimension strides (broadcasting, views)
  reduce       "rows": one block per output element, threads stride over the reduced
               elements, warp-shuffle + shared-memory block reduction (reduced axis innermost);
               "cols": one thread per output element looping over the reduced elements
               (kept axis innermost, so neighbouring threads read neighbouring memory);
               either may split the reduced range over gridDim.y blocks, writing partials
  finish       second pass over the partials: one block per output element
The kernel name carries a hash of its source, so equal source means equal name (cache key).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Tuple

import numpy as np

from ..cpu.fused import postorder

CTYPES = {"bool": "bool", "int8": "signed char", "uint8": "unsigned char", "int16": "short",
          "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int",
          "int64": "long long", "uint64": "unsigned long long", "float32": "float",
          "float64": "double"}
FLOATS = ("float32", "float64")
REDUCTIONS = ("sum", "mean", "max", "min", "prod")
UNROLL = 4  # elements per thread per loop step: their loads are issued before any math


class Unsupported(ValueError):
    """An expression the generator does not cover (a dtype like float16 or complex)."""


@dataclass(frozen=True)
class KernelSource:
    """One generated kernel: its name, the complete CUDA source, and its parameters in order
    as (C type, name) pairs; pointer parameters end in '*'."""

    name: str
    source: str
    params: Tuple[Tuple[str, str], ...]


def ctype(dtype) -> str:
    name = np.dtype(dtype).name
    if name not in CTYPES:
        raise Unsupported(f"no CUDA code generation for dtype {name}")
    return CTYPES[name]


# -- dtypes: exactly NumPy's ------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _dtypes(expr, arg_dtypes):
    from ..cpu.kernels import KERNELS
    out, vals = {}, {}
    for e in postorder(expr):
        # One-element 1-d arrays: NumPy turns some 0-d results into scalars.
        if e[0] == "arg":
            v = np.ones((1,), dtype=arg_dtypes[e[1]])
        elif e[0] == "const":
            v = np.full((1,), e[1], dtype=e[2])
        else:
            op, attrs, children = e
            if op not in KERNELS:
                raise Unsupported(f"no kernel for op {op!r}")
            with np.errstate(all="ignore"):
                v = np.asarray(KERNELS[op].fn(*[vals[c] for c in children], **dict(attrs)))
        vals[e] = v
        out[e] = v.dtype.name
    return tuple(out.items())


def expr_dtypes(expr, arg_dtypes) -> dict:
    """{subexpression: dtype name} as NumPy computes it for operands of `arg_dtypes`."""
    return dict(_dtypes(expr, tuple(np.dtype(d).name for d in arg_dtypes)))


def reduce_dtype(reduce, dtype) -> str:
    """The dtype NumPy's reduction `reduce` gives for elements of `dtype`."""
    from ..cpu.kernels import KERNELS
    with np.errstate(all="ignore"):
        return np.asarray(KERNELS[reduce].fn(np.ones((1,), dtype=dtype), axis=None)).dtype.name


def acc_dtype(out_dtype) -> str:
    """Accumulator dtype of a reduction: the output's, widened where warp shuffles need it."""
    name = np.dtype(out_dtype).name
    return {"bool": "int32", "int8": "int32", "int16": "int32", "uint8": "uint32",
            "uint16": "uint32"}.get(name, name)


# -- literals ---------------------------------------------------------------------------------
def _inf(dtype, negative=False):
    s = "-" if negative else ""
    if dtype == "float32":
        return f"({s}__int_as_float(0x7f800000))"
    return f"({s}__longlong_as_double(0x7ff0000000000000LL))"


def literal(value, dtype) -> str:
    """A C literal of `value` with exactly the dtype's value."""
    name = np.dtype(dtype).name
    t = ctype(name)
    if name == "bool":
        return "true" if bool(value) else "false"
    if name in FLOATS:
        v = float(np.dtype(name).type(value))
        if v != v:
            return ("(__int_as_float(0x7fffffff))" if name == "float32"
                    else "(__longlong_as_double(0x7ff8000000000000LL))")
        if v in (float("inf"), float("-inf")):
            return _inf(name, v < 0)
        text = repr(v)
        text = text if ("." in text or "e" in text) else text + ".0"
        return f"({text}{'f' if name == 'float32' else ''})"
    v = int(value)
    info = np.iinfo(name)
    if v == info.min and v < 0:  # -2**63 has no literal: write it as (-max - 1)
        return f"(({t})(-{info.max}LL - 1))"
    suffix = "ULL" if name.startswith("u") else "LL"
    return f"(({t}){v}{suffix})"


def identity(reduce, dtype) -> str:
    """The reduction's identity element as a C literal of `dtype`."""
    name = np.dtype(dtype).name
    if reduce in ("sum", "mean"):
        return literal(0, name)
    if reduce == "prod":
        return literal(1, name)
    low = reduce == "max"
    if name in FLOATS:
        return _inf(name, negative=low)
    if name == "bool":
        return "false" if low else "true"
    info = np.iinfo(name)
    return literal(info.min if low else info.max, name)


# -- device functions -------------------------------------------------------------------------
_PRELUDE = r"""#define FC_D __device__ __forceinline__
FC_D float fc_exp(float x) { return expf(x); }
FC_D double fc_exp(double x) { return exp(x); }
FC_D float fc_log(float x) { return logf(x); }
FC_D double fc_log(double x) { return log(x); }
FC_D float fc_log1p(float x) { return log1pf(x); }
FC_D double fc_log1p(double x) { return log1p(x); }
FC_D float fc_expm1(float x) { return expm1f(x); }
FC_D double fc_expm1(double x) { return expm1(x); }
FC_D float fc_sqrt(float x) { return sqrtf(x); }
FC_D double fc_sqrt(double x) { return sqrt(x); }
FC_D float fc_tanh(float x) { return tanhf(x); }
FC_D double fc_tanh(double x) { return tanh(x); }
FC_D float fc_sin(float x) { return sinf(x); }
FC_D double fc_sin(double x) { return sin(x); }
FC_D float fc_cos(float x) { return cosf(x); }
FC_D double fc_cos(double x) { return cos(x); }
FC_D float fc_pow(float a, float b) { return powf(a, b); }
FC_D double fc_pow(double a, double b) { return pow(a, b); }
// Integer power by squaring, as NumPy computes it (a negative exponent gives 0 here).
template <class T> FC_D T fc_pow(T a, T b) {
  T r = (T)1;
  while (b > (T)0) { if (b & (T)1) r = (T)(r * a); a = (T)(a * a); b = (T)(b >> 1); }
  return r;
}
FC_D float fc_abs(float x) { return fabsf(x); }
FC_D double fc_abs(double x) { return fabs(x); }
template <class T> FC_D T fc_abs(T x) { return x < (T)0 ? (T)(-x) : x; }
// NaN passes through sign, maximum, minimum and relu, as in NumPy (x != x only for NaN).
template <class T> FC_D T fc_sign(T x) { return x > (T)0 ? (T)1 : (x < (T)0 ? (T)(-1) : x); }
template <class T> FC_D T fc_max(T a, T b) { return (a != a || a >= b) ? a : b; }
template <class T> FC_D T fc_min(T a, T b) { return (a != a || a <= b) ? a : b; }
template <class T> FC_D T fc_relu(T x) { return (x > (T)0 || x != x) ? x : (T)0; }
// Rounding: integers (and bools) are already whole; halves round to even, as np.round.
FC_D float fc_floor(float x) { return floorf(x); }
FC_D double fc_floor(double x) { return floor(x); }
template <class T> FC_D T fc_floor(T x) { return x; }
FC_D float fc_ceil(float x) { return ceilf(x); }
FC_D double fc_ceil(double x) { return ceil(x); }
template <class T> FC_D T fc_ceil(T x) { return x; }
FC_D float fc_round(float x) { return rintf(x); }
FC_D double fc_round(double x) { return rint(x); }
template <class T> FC_D T fc_round(T x) { return x; }
FC_D float fc_xlogx(float x) { return x == 0.0f ? 0.0f : x * logf(x); }
FC_D double fc_xlogx(double x) { return x == 0.0 ? 0.0 : x * log(x); }
// Floor division and remainder as NumPy's npy_divmod: the remainder has b's sign, the
// quotient is snapped to a whole number, b == 0 gives a / b and fmod's NaN.
FC_D double fc_floordiv(double a, double b) {
  if (b == 0.0) return a / b;
  double m = fmod(a, b), d = (a - m) / b;
  if (m != 0.0 && ((b < 0.0) != (m < 0.0))) d -= 1.0;
  if (d == 0.0) return copysign(0.0, a / b);
  double f = floor(d);
  return (d - f > 0.5) ? f + 1.0 : f;
}
FC_D float fc_floordiv(float a, float b) {
  if (b == 0.0f) return a / b;
  float m = fmodf(a, b), d = (a - m) / b;
  if (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) d -= 1.0f;
  if (d == 0.0f) return copysignf(0.0f, a / b);
  float f = floorf(d);
  return (d - f > 0.5f) ? f + 1.0f : f;
}
FC_D double fc_mod(double a, double b) {
  double m = fmod(a, b);
  if (b == 0.0) return m;
  if (m == 0.0) return copysign(0.0, b);
  return ((b < 0.0) != (m < 0.0)) ? m + b : m;
}
FC_D float fc_mod(float a, float b) {
  float m = fmodf(a, b);
  if (b == 0.0f) return m;
  if (m == 0.0f) return copysignf(0.0f, b);
  return ((b < 0.0f) != (m < 0.0f)) ? m + b : m;
}
// Integers: b == 0 gives 0 (NumPy warns), MIN // -1 wraps to MIN, as NumPy's loops.
template <class T> FC_D T fc_floordiv(T a, T b) {
  if (b == (T)0) return (T)0;
  if ((T)(-1) < (T)0 && b == (T)(-1)) return (T)(0ULL - (unsigned long long)a);
  T q = (T)(a / b);
  if ((T)(q * b) != a && ((a < (T)0) != (b < (T)0))) q = (T)(q - (T)1);
  return q;
}
template <class T> FC_D T fc_mod(T a, T b) {
  if (b == (T)0 || ((T)(-1) < (T)0 && b == (T)(-1))) return (T)0;
  T r = (T)(a % b);
  return (r != (T)0 && ((r < (T)0) != (b < (T)0))) ? (T)(r + b) : r;
}
// Stable: exp never overflows, and tiny results keep their digits (sigmoid(-40) = 4.2e-18).
FC_D float fc_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}
FC_D double fc_sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}
// log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow for large x, exact for small.
FC_D float fc_softplus(float x) {
  return (x != x) ? x : fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}
FC_D double fc_softplus(double x) {
  return (x != x) ? x : fmax(x, 0.0) + log1p(exp(-fabs(x)));
}
"""

_UNARY = {"exp": "fc_exp", "log": "fc_log", "log1p": "fc_log1p", "expm1": "fc_expm1",
          "sqrt": "fc_sqrt", "tanh": "fc_tanh", "sin": "fc_sin", "cos": "fc_cos",
          "sigmoid": "fc_sigmoid", "softplus": "fc_softplus", "abs": "fc_abs",
          "sign": "fc_sign", "relu": "fc_relu", "floor": "fc_floor", "ceil": "fc_ceil",
          "round": "fc_round", "xlogx": "fc_xlogx"}
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_COMPARE = {"less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=",
            "equal": "==", "not_equal": "!="}
# Every elementwise op the fuse pass may put in an expression (flowc ops with elementwise=True).
ARITY = {**{op: 1 for op in _UNARY}, **{op: 2 for op in (*_INFIX, *_COMPARE)},
         "neg": 1, "square": 1, "cast": 1, "zeros_like": 1, "ones_like": 1, "pow": 2,
         "maximum": 2, "minimum": 2, "where": 3, "clip": 3, "floor_divide": 2, "mod": 2}
ELEMENTWISE_OPS = tuple(sorted(ARITY))


def _conv(value, src, dst):
    return value if src == dst else f"(({ctype(dst)})({value}))"


def _node(op, attrs, D, kids):
    """C expression of one node of dtype D; kids = [(C value, dtype)]."""
    T = ctype(D)
    if op in ("zeros_like", "ones_like"):
        return literal(0 if op == "zeros_like" else 1, D)
    if op in _COMPARE:
        common = np.result_type(*[k[1] for k in kids]).name
        a, b = (_conv(v, d, common) for v, d in kids)
        return f"({a} {_COMPARE[op]} {b})"
    if op == "where":
        (c, cd), a, b = kids
        return (f"({_conv(c, cd, 'bool')} ? {_conv(a[0], a[1], D)} : "
                f"{_conv(b[0], b[1], D)})")
    if op == "cast":
        return _conv(kids[0][0], kids[0][1], D)
    v = [_conv(x, d, D) for x, d in kids]
    if op in _UNARY:
        return f"{_UNARY[op]}({v[0]})"
    if op == "neg":
        return f"(({T})(-{v[0]}))"
    if op == "square":
        return f"(({T})({v[0]} * {v[0]}))"
    if op in _INFIX:
        return f"(({T})({v[0]} {_INFIX[op]} {v[1]}))"
    if op == "pow":
        return f"fc_pow({v[0]}, {v[1]})"
    if op == "floor_divide":
        return f"fc_floordiv({v[0]}, {v[1]})"
    if op == "mod":
        return f"fc_mod({v[0]}, {v[1]})"
    if op == "maximum":
        return f"fc_max({v[0]}, {v[1]})"
    if op == "minimum":
        return f"fc_min({v[0]}, {v[1]})"
    if op == "clip":
        return f"fc_min(fc_max({v[0]}, {v[1]}), {v[2]})"
    raise Unsupported(f"no CUDA code for op {op!r}")


def expression_function(expr, arg_dtypes):
    """(C source of `fc_expr(v0, v1, ...)` computing the tree for one element, its dtype)."""
    arg_dtypes = tuple(np.dtype(d).name for d in arg_dtypes)
    for d in arg_dtypes:
        ctype(d)
    dts = expr_dtypes(expr, arg_dtypes)
    lines, seen = [], {}
    for e in postorder(expr):  # a repeated subexpression is computed once per element
        if e[0] == "arg":
            seen[e] = (f"v{_index(e[1], len(arg_dtypes))}", arg_dtypes[e[1]])
        elif e[0] == "const":
            seen[e] = (literal(e[1], e[2]), np.dtype(e[2]).name)
        else:
            op, attrs, children = e
            D = dts[e]
            name = f"t{len(lines)}"
            kids = [seen[c] for c in children]
            lines.append(f"  const {ctype(D)} {name} = {_node(op, dict(attrs), D, kids)};")
            seen[e] = (name, D)
    result, root = seen[expr]
    params = ", ".join(f"const {ctype(d)} v{i}" for i, d in enumerate(arg_dtypes))
    body = "\n".join(lines + [f"  return {result};"])
    return f"FC_D {ctype(root)} fc_expr({params}) {{\n{body}\n}}\n", root


def _index(i, n):
    """An operand index as digits: only ints reach the source (never text from a Program)."""
    if type(i) is not int or not 0 <= i < n:
        raise Unsupported(f"expected an operand index in 0..{n - 1}, got {i!r}")
    return str(i)


def _reduction(reduce):
    """The reduction's name, checked against REDUCTIONS before it is written into a comment."""
    if reduce not in REDUCTIONS:
        raise Unsupported(f"expected a reduction ({', '.join(REDUCTIONS)}), got {reduce!r}")
    return reduce


# -- index arithmetic -------------------------------------------------------------------------
def _coords(index, count, dims, prefix, I):
    """Lines splitting linear `index` into coordinates prefix0.. over `count` row-major dims
    (sizes dims1..; dimension 0 needs no size)."""
    if count == 0:
        return []
    if count == 1:
        return [f"const {I} {prefix}0 = {index};"]
    out = [f"{I} {prefix}q = {index};"]
    for k in range(count - 1, 0, -1):
        out.append(f"const {I} {prefix}{k} = {prefix}q % {dims}{k}; {prefix}q /= {dims}{k};")
    out.append(f"const {I} {prefix}0 = {prefix}q;")
    return out


def _dot(prefix, strides, count):
    terms = [f"{prefix}{k} * {strides}{k}" for k in range(count)]
    return " + ".join(terms) if terms else "0"


def _finish(src):
    """Name the kernel after a hash of its source (equal source, equal name)."""
    digest = hashlib.sha1(src.encode()).hexdigest()[:16]
    return src.replace("KERNEL_NAME", f"flowc_{digest}"), f"flowc_{digest}"


def _indent(lines, n):
    return "".join(" " * n + ln + "\n" for ln in lines)


# -- elementwise ------------------------------------------------------------------------------
def elementwise_source(expr, arg_dtypes, out_dtype, modes, ndim, index="int") -> KernelSource:
    """The kernel writing expr over a C-contiguous output of n elements.

    modes[i]: "flat" (operand i has the output's layout), "scalar" (one element) or
    "strided" (element strides s{i}_0.. over the `ndim` coalesced output dims d0..)."""
    fn, root = expression_function(expr, arg_dtypes)
    T = [ctype(d) for d in arg_dtypes]
    O, I = ctype(out_dtype), index
    strided = [i for i, m in enumerate(modes) if m == "strided"]
    ndim = ndim if strided else 0
    params = [(f"const {t}*", f"p{i}") for i, t in enumerate(T)] + [(f"{O}*", "out"), (I, "n")]
    params += [(I, f"d{k}") for k in range(1, ndim)]
    params += [(I, f"s{i}_{k}") for i in strided for k in range(ndim)]

    def loads(j, into):
        out = _coords(j, ndim, "d", "c", I) if strided else []
        for i, m in enumerate(modes):
            if m == "scalar":
                continue
            off = j if m == "flat" else _dot("c", f"s{i}_", ndim)
            out.append(f"{into(i)} = p{i}[{off}];")
        return out

    def call(val):
        return f"fc_expr({', '.join(val(i) for i in range(len(T)))})"

    scalar = lambda i: f"v{i}s"  # noqa: E731
    w = lambda i: f"w{i}[u]" if modes[i] != "scalar" else scalar(i)  # noqa: E731
    x = lambda i: f"x{i}" if modes[i] != "scalar" else scalar(i)  # noqa: E731
    body = [f"const {I} G = ({I})blockDim.x * ({I})gridDim.x;"]
    body += [f"const {T[i]} v{i}s = p{i}[0];" for i, m in enumerate(modes) if m == "scalar"]
    body += [f"{I} j = ({I})blockIdx.x * ({I})blockDim.x + ({I})threadIdx.x;",
             f"for (; j + {UNROLL - 1} * G < n; j += {UNROLL} * G) {{"]
    body += [f"  {T[i]} w{i}[{UNROLL}];" for i, m in enumerate(modes) if m != "scalar"]
    if any(m != "scalar" for m in modes):
        body += ["  #pragma unroll", f"  for (int u = 0; u < {UNROLL}; ++u) {{",
                 f"    const {I} k = j + u * G;"]
        body += ["    " + ln for ln in loads("k", lambda i: f"w{i}[u]")] + ["  }"]
    body += ["  #pragma unroll", f"  for (int u = 0; u < {UNROLL}; ++u)",
             f"    out[j + u * G] = ({O})({call(w)});", "}", "for (; j < n; j += G) {"]
    body += ["  " + ln for ln in loads("j", lambda i: f"const {T[i]} x{i}")]
    body += [f"  out[j] = ({O})({call(x)});", "}"]
    sig = ", ".join(f"{t} {n}" if not t.endswith("*") else
                    f"{t}{' __restrict__' if n != 'out' else ''} {n}" for t, n in params)
    src = (f"// flowc generated: elementwise {root} -> {out_dtype}, operands "
           f"{', '.join(f'{d}:{m}' for d, m in zip(arg_dtypes, modes))}\n"
           f"{_PRELUDE}{fn}\nextern \"C\" __global__ void KERNEL_NAME({sig}) {{\n"
           f"{_indent(body, 2)}}}\n")
    src, name = _finish(src)
    return KernelSource(name, src, tuple(params))


# -- reductions -------------------------------------------------------------------------------
def _reduce_helpers(reduce, A, O):
    ident = identity(reduce, np.dtype(A).name)
    comb = {"sum": "a + b", "mean": "a + b", "prod": "a * b", "max": "fc_max(a, b)",
            "min": "fc_min(a, b)"}[reduce]
    a = ctype(A)
    fin = f"({ctype(O)})(acc / ({a})n_red)" if reduce == "mean" else f"({ctype(O)})(acc)"
    helpers = (f"FC_D {a} fc_comb(const {a} a, const {a} b) {{ return ({a})({comb}); }}\n"
               f"template <class I> FC_D {ctype(O)} fc_fin(const {a} acc, const I n_red) "
               f"{{ (void)n_red; return {fin}; }}\n")
    return ident, helpers


def _block_reduce(I, ident, store):
    """Lines reducing `acc` over the block (blockDim.x a multiple of 32); lane 0 of warp 0
    runs `store` with the result. Every thread of the block must get here."""
    return [
        "for (int s = 16; s > 0; s >>= 1) acc = fc_comb(acc, __shfl_down_sync(0xffffffffu, acc, s));",
        "const int lane = (int)(threadIdx.x & 31u), wid = (int)(threadIdx.x >> 5);",
        "if (lane == 0) fc_sh[wid] = acc;",
        "__syncthreads();",
        "if (wid == 0) {",
        f"  acc = (lane < (int)(blockDim.x >> 5)) ? fc_sh[lane] : {ident};",
        "  for (int s = 16; s > 0; s >>= 1) acc = fc_comb(acc, __shfl_down_sync(0xffffffffu, acc, s));",
        f"  if (lane == 0) {{ {store} }}",
        "}",
        "__syncthreads();",
    ]


def reduce_source(expr, arg_dtypes, reduce, strategy, classes, nk, nr, index="int") -> KernelSource:
    """The kernel reducing expr over its reduced coordinates, for each kept coordinate.

    Output element o (row-major over the nk coalesced kept dims kd0..) and reduced element r
    (over the nr coalesced reduced dims rd0..) read operand i at
    sum ck_k * sk{i}_k + sum cr_k * sr{i}_k. classes[i]: "scalar" (one element), "row" (no
    reduced strides: loaded once per output element) or "full". strategy: "rows" or "cols".
    With gridDim.y > 1, block y covers reduced elements [y*chunk, (y+1)*chunk) and writes a
    partial to work (rows: work[o*gridDim.y + y]; cols: work[y*n_out + o]) for `finish`."""
    reduce = _reduction(reduce)
    fn, root = expression_function(expr, arg_dtypes)
    out_dtype = reduce_dtype(reduce, root)
    A = acc_dtype(out_dtype)
    T = [ctype(d) for d in arg_dtypes]
    O, I, a = ctype(out_dtype), index, ctype(A)
    ident, helpers = _reduce_helpers(reduce, A, out_dtype)
    params = [(f"const {t}*", f"p{i}") for i, t in enumerate(T)]
    params += [(f"{O}*", "out"), (f"{a}*", "work"), (I, "n_out"), (I, "n_red"), (I, "chunk")]
    params += [(I, f"kd{k}") for k in range(1, nk)] + [(I, f"rd{k}") for k in range(1, nr)]
    params += [(I, f"sk{i}_{k}") for i, c in enumerate(classes) if c != "scalar"
               for k in range(nk)]
    params += [(I, f"sr{i}_{k}") for i, c in enumerate(classes) if c == "full" for k in range(nr)]
    full = [i for i, c in enumerate(classes) if c == "full"]

    def val(i, u=None):
        if classes[i] != "full":
            return f"v{i}s"
        return f"w{i}[u]" if u else f"x{i}"

    def point(r, into):
        """Lines loading the full operands at reduced element r."""
        out = _coords(r, nr, "rd", "cr", I)
        for i in full:
            out.append(f"{into(i)} = p{i}[ok{i} + {_dot('cr', f'sr{i}_', nr)}];")
        return out

    call = lambda u: f"fc_expr({', '.join(val(i, u) for i in range(len(T)))})"  # noqa: E731
    head = _coords("o", nk, "kd", "ck", I)
    head += [f"const {I} ok{i} = {_dot('ck', f'sk{i}_', nk)};"
             for i, c in enumerate(classes) if c != "scalar"]
    head += [f"const {T[i]} v{i}s = p{i}[ok{i}];" for i, c in enumerate(classes) if c == "row"]
    head += [f"{a} acc = {ident};", f"const {I} r0 = ({I})blockIdx.y * chunk;",
             f"const {I} r1 = (r0 + chunk < n_red) ? r0 + chunk : n_red;"]
    step = f"({I})blockDim.x" if strategy == "rows" else "1"
    first = f"r0 + ({I})threadIdx.x" if strategy == "rows" else "r0"
    loop = [f"const {I} S = {step};", f"{I} r = {first};",
            f"for (; r + {UNROLL - 1} * S < r1; r += {UNROLL} * S) {{"]
    loop += [f"  {T[i]} w{i}[{UNROLL}];" for i in full]
    if full:
        loop += ["  #pragma unroll", f"  for (int u = 0; u < {UNROLL}; ++u) {{",
                 f"    const {I} q = r + u * S;"]
        loop += ["    " + ln for ln in point("q", lambda i: f"w{i}[u]")] + ["  }"]
    loop += ["  #pragma unroll", f"  for (int u = 0; u < {UNROLL}; ++u) {{",
             "    (void)u;", f"    acc = fc_comb(acc, ({a})({call(True)}));", "  }", "}",
             "for (; r < r1; r += S) {"]
    loop += ["  " + ln for ln in point("r", lambda i: f"const {T[i]} x{i}")]
    loop += [f"  acc = fc_comb(acc, ({a})({call(False)}));", "}"]
    body = [f"const {T[i]} v{i}s = p{i}[0];" for i, c in enumerate(classes) if c == "scalar"]
    if strategy == "rows":
        store = ("if (gridDim.y == 1) out[o] = fc_fin(acc, n_red); "
                 f"else work[o * ({I})gridDim.y + ({I})blockIdx.y] = acc;")
        body += [f"__shared__ {a} fc_sh[32];",
                 f"for ({I} o = ({I})blockIdx.x; o < n_out; o += ({I})gridDim.x) {{"]
        body += ["  " + ln for ln in head + loop + _block_reduce(I, ident, store)] + ["}"]
    elif strategy == "cols":
        body += [f"const {I} G = ({I})blockDim.x * ({I})gridDim.x;",
                 f"for ({I} o = ({I})blockIdx.x * ({I})blockDim.x + ({I})threadIdx.x; o < n_out; "
                 "o += G) {"]
        body += ["  " + ln for ln in head + loop]
        body += ["  if (gridDim.y == 1) out[o] = fc_fin(acc, n_red);",
                 f"  else work[({I})blockIdx.y * n_out + o] = acc;", "}"]
    else:
        raise ValueError(f"strategy must be 'rows' or 'cols', got {strategy!r}")
    sig = ", ".join(f"{t} __restrict__ {n}" if t.startswith("const") and t.endswith("*")
                    else f"{t} {n}" for t, n in params)
    src = (f"// flowc generated: {reduce} ({strategy}) of {root} -> {out_dtype}, operands "
           f"{', '.join(f'{d}:{c}' for d, c in zip(arg_dtypes, classes))}\n"
           f"{_PRELUDE}{fn}{helpers}\nextern \"C\" __global__ void KERNEL_NAME({sig}) {{\n"
           f"{_indent(body, 2)}}}\n")
    src, name = _finish(src)
    return KernelSource(name, src, tuple(params))


def finish_source(reduce, out_dtype, index="int") -> KernelSource:
    """Second pass: out[o] = reduce over y of work[o*ws_o + y*ws_y], one block per output."""
    reduce = _reduction(reduce)
    A = acc_dtype(out_dtype)
    O, I, a = ctype(out_dtype), index, ctype(A)
    ident, helpers = _reduce_helpers(reduce, A, out_dtype)
    params = ((f"const {a}*", "work"), (f"{O}*", "out"), (I, "n_out"), (I, "nsplit"),
              (I, "ws_o"), (I, "ws_y"), (I, "n_red"))
    body = [f"__shared__ {a} fc_sh[32];",
            f"for ({I} o = ({I})blockIdx.x; o < n_out; o += ({I})gridDim.x) {{",
            f"  {a} acc = {ident};",
            f"  for ({I} y = ({I})threadIdx.x; y < nsplit; y += ({I})blockDim.x)",
            "    acc = fc_comb(acc, work[o * ws_o + y * ws_y]);"]
    body += ["  " + ln for ln in _block_reduce(I, ident, "out[o] = fc_fin(acc, n_red);")]
    body += ["}"]
    sig = ", ".join(f"{t} {n}" for t, n in params)
    src = (f"// flowc generated: {reduce} of partials ({A}) -> {out_dtype}\n"
           f"{_PRELUDE}{helpers}\nextern \"C\" __global__ void KERNEL_NAME({sig}) {{\n"
           f"{_indent(body, 2)}}}\n")
    src, name = _finish(src)
    return KernelSource(name, src, params)


# -- random numbers ---------------------------------------------------------------------------
def random_uniform_source(dtype) -> KernelSource:
    """Uniform [0, 1) numbers, bit for bit the CPU kernel's (runtime/cpu/kernels_extra.py):
    SplitMix64 of base + (start + i + 1) * golden (start: a sharded draw's first element), base mixed from the state [key, counter] (read
    on the device, so no copy to the host) and the stream number."""
    name = np.dtype(dtype).name
    T = ctype(name)
    conv = ("(float)(z >> 40) * 5.9604644775390625e-08f" if name == "float32"
            else "(double)(z >> 11) * 1.1102230246251565e-16")  # 2**-24, 2**-53: exact
    params = (("const double*", "state"), (f"{T}*", "out"), ("long long", "n"),
              ("unsigned long long", "stream"), ("long long", "start"))
    src = (f"// flowc generated: random_uniform -> {name}\n"
           "#define FC_D __device__ __forceinline__\n"
           "FC_D unsigned long long fc_mix(unsigned long long z) {\n"
           "  z = z ^ (z >> 30); z = z * 0xBF58476D1CE4E5B9ULL;\n"
           "  z = z ^ (z >> 27); z = z * 0x94D049BB133111EBULL;\n"
           "  return z ^ (z >> 31);\n}\n\n"
           "extern \"C\" __global__ void KERNEL_NAME(const double* __restrict__ state, "
           f"{T}* out, long long n, unsigned long long stream, long long start) {{\n"
           "  const unsigned long long G = 0x9E3779B97F4A7C15ULL;\n"
           "  // key is in [0, 1): key * 2**53 is a whole number that fits (as int() gives it)\n"
           "  const unsigned long long k = (unsigned long long)(long long)(state[0] * "
           "9007199254740992.0);\n"
           "  const unsigned long long c = (unsigned long long)(long long)state[1];\n"
           "  const unsigned long long base = fc_mix(k ^ fc_mix(c ^ fc_mix(stream + G)));\n"
           "  const long long S = (long long)blockDim.x * (long long)gridDim.x;\n"
           "  for (long long i = (long long)blockIdx.x * (long long)blockDim.x + "
           "(long long)threadIdx.x; i < n; i += S) {\n"
           "    const unsigned long long z = fc_mix(base + (unsigned long long)(start + i + 1) * G);\n"
           f"    out[i] = {conv};\n"
           "  }\n}\n")
    src, kname = _finish(src)
    return KernelSource(kname, src, params)
