"""CuPy kernels, keyed by op name: the GPU twin of runtime/cpu/kernels.py.

Imported only by the GPU backend, after it has checked that CuPy and a device are there.
Every elementwise op, every plain reduction and every fused group runs as CUDA source the
project generates (runtime/gpu/codegen.py), so types and numerics follow the CPU backend
op for op; matmul is cuBLAS (cupy.matmul); solve/inv/slogdet are cuSOLVER (cupy.linalg);
the rest (softmax family, indexing, scatter-adds, joins) are CuPy functions. No kernel
copies between host and device.
"""
from __future__ import annotations

import math

import cupy as cp
import cupyx
import numpy as np

from . import codegen as cg
from . import launch_plan as cplan
from ..cpu.fused import compile_block
# Pure shape and slicing kernels work on CuPy arrays unchanged.
from ..cpu.kernels import Kernel, _concat_grad, _expand_dims, _index
from ..cpu.kernels_extra import range_problem, shard_start
from ..cpu.kernels_index import check_bounds, index_tuple, specify_shape, updated_copy
from ..cpu.kernels_shape import table as _shape_table
from . import conv_run as _conv_run
from ..cpu.loops import make_cond, make_loop
from ..cpu.gemm import broadcast_gemm
from ..cpu.prod_others import kernel as _prod_others

_RAW = {}      # kernel name (a hash of its source) -> cupy.RawKernel, compiled on first launch
_PLANS = {}    # (spec, layout, SMs) -> (Plan, bound launches)
_SMS = {}


def _sms():
    dev = cp.cuda.Device().id
    if dev not in _SMS:
        _SMS[dev] = cp.cuda.Device(dev).attributes["MultiProcessorCount"]
    return _SMS[dev]


def _raw(ks):
    f = _RAW.get(ks.name)
    if f is None:
        f = _RAW[ks.name] = cp.RawKernel(ks.source, ks.name)
    return f


class GeneratedKernel:
    """An elementwise expression tree, or its reduction, run as generated CUDA.

    Called like the other kernels: k(*operands, out=None). The source is specialized to the
    operands' layout at the first call with that layout (then cached); `cuda_source` is the
    latest source, `cuda_sources` all that this instruction has used.
    """

    kind = "generated CUDA"

    def __init__(self, expr, reduce=None, axis=None, keepdims=False):
        self.expr, self.reduce = expr, reduce
        self.axis = None if axis is None else tuple(axis)
        self.keepdims = bool(keepdims)
        self._spec = (expr, reduce, self.axis, self.keepdims)
        self._mine = {}       # layout -> bound launches, for this instruction
        self._fallback = None
        self.cuda_sources = []

    @property
    def cuda_source(self):
        return self.cuda_sources[-1] if self.cuda_sources else None

    def _bind(self, args, layout):
        key = (self._spec, layout, _sms())
        hit = _PLANS.get(key)
        if hit is None:
            if self.reduce is None:
                plan = cplan.elementwise_plan(self.expr, args, _sms())
            else:
                plan = cplan.reduce_plan(self.expr, args, self.reduce, self.axis,
                                         self.keepdims, _sms())
            hit = _PLANS[key] = _bound(plan)
        plan = hit[0]
        for ks in plan.sources:
            if ks.source not in self.cuda_sources:
                self.cuda_sources.append(ks.source)
        self._mine[layout] = hit
        return hit

    def __call__(self, *args, out=None):
        layout = tuple((a.shape, a.strides, a.dtype) for a in args)
        hit = self._mine.get(layout)
        if hit is None:
            try:
                hit = self._bind(args, layout)
            except cg.Unsupported:  # e.g. float16: evaluate with CuPy functions instead
                return self._slow(args, out)
        return _execute(hit, args, out)

    def _slow(self, args, out):
        if self.expr[0] == "arg":
            r = args[self.expr[1]]
        else:
            if self._fallback is None:
                self._fallback = compile_block(self.expr, FALLBACK)[0]
            r = self._fallback(*args)
        if self.reduce is not None:
            red = {"sum": cp.sum, "mean": cp.mean, "max": cp.max, "min": cp.min,
                   "prod": cp.prod}[self.reduce]
            r = red(r, axis=self.axis, keepdims=self.keepdims)
        if out is None:
            return cp.asarray(r)
        cp.copyto(out, r)
        return out


def _execute(hit, args, out):
    """Launch a bound plan's kernels on `args`, into `out` (or a fresh C-contiguous array)."""
    plan, bound = hit
    dst = out
    if dst is None or not dst.flags.c_contiguous:
        dst = cp.empty(plan.out_shape, dtype=plan.out_dtype)
    work = cp.empty(plan.work[0], dtype=plan.work[1]) if plan.work else None
    for fn, grid, block, spec in bound:
        # Markers are Python ints; scalars are NumPy ints, and a stride may well be -1.
        fn(grid, block, tuple(s if type(s) is not int else args[s] if s >= 0 else
                              dst if s == -1 else work for s in spec))
    if out is not None and dst is not out:
        cp.copyto(out, dst)
        return out
    return dst


def _bound(plan):
    return plan, tuple((_raw(ln.kernel), ln.grid, (ln.block,), tuple(map(_marker, ln.args)))
                       for ln in plan.launches)


class RandomKernel:
    """random_uniform(like, state) as generated CUDA: the CPU kernel's numbers, bit for bit."""

    kind = "generated CUDA"

    def __init__(self, stream=0, dtype="float64", sharded=False):
        self.stream, self.dtype, self.sharded = stream, dtype, sharded
        self._mine = {}
        self.cuda_sources = []

    @property
    def cuda_source(self):
        return self.cuda_sources[-1] if self.cuda_sources else None

    def __call__(self, like, state, out=None):
        hit = self._mine.get(like.shape)
        if hit is None:   # the rank is fixed for the process, so the start is part of the plan
            start = shard_start(math.prod(like.shape), self.sharded)
            hit = self._mine[like.shape] = _bound(
                cplan.random_plan(like.shape, self.dtype, self.stream, _sms(), start))
            for ks in hit[0].sources:
                if ks.source not in self.cuda_sources:
                    self.cuda_sources.append(ks.source)
        return _execute(hit, (like, state), out)


def _marker(a):
    """A launch argument as bound at call time: operand index, -1 out, -2 work (Python
    ints), or a scalar (a NumPy scalar, never a Python int)."""
    if not isinstance(a, tuple):
        return a
    return a[1] if a[0] == "arg" else -1 if a[0] == "out" else -2


def _elementwise_kernel(op):
    n = cg.ARITY[op]
    return Kernel(None, "out", inplace=True,
                  prepare=lambda **attrs: GeneratedKernel(cplan.node_expr(op, attrs, n)))


def _reduce_kernel(op):
    return Kernel(None, "out", prepare=lambda axis=None, keepdims=False:
                  GeneratedKernel(cplan.ARG0, op, axis, keepdims))


# -- CuPy-function kernels --------------------------------------------------------------------
def _store(r, out):
    if out is None:
        return r
    cp.copyto(out, r)
    return out


def _floating_dtype(dt):
    return np.result_type(dt, np.float16)


def _shift(x, axis):
    """The max over `axis` (keepdims) that softmax and logsumexp subtract; 0 over nothing,
    where max has no identity (a sum of nothing is 0 and its log -inf, as NumPy gives)."""
    return cp.max(x, axis=axis, keepdims=True) if x.size else cp.sum(x, axis=axis, keepdims=True)


def _finite_shift(x, axis):
    """_shift, with 0 where the max is infinite: logsumexp and log_softmax (= x - logsumexp)
    then give inf - inf = nan only at the infinite entries and -inf at the finite ones (JAX's
    rule), instead of nan everywhere from subtracting an infinite max."""
    m = _shift(x, axis)
    return cp.where(cp.isfinite(m), m, cp.zeros((), m.dtype))


def _logsumexp(x, axis=None, keepdims=False, out=None):
    m = _finite_shift(x, axis)
    s = cp.log(cp.sum(cp.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        s = cp.squeeze(s, axis=axis) if axis is not None else s.reshape(())
    return _store(s.astype(_floating_dtype(x.dtype), copy=False), out)


def _softmax(x, axis=-1, out=None):
    e = cp.exp(x - _shift(x, axis))
    return cp.divide(e, cp.sum(e, axis=axis, keepdims=True), out=out)


def _log_softmax(x, axis=-1, out=None):
    z = x - _finite_shift(x, axis)
    return cp.subtract(z, cp.log(cp.sum(cp.exp(z), axis=axis, keepdims=True)), out=out)


def _arg(fn):
    def k(x, axis=None, keepdims=False):
        return fn(x, axis=axis, keepdims=keepdims).astype(cp.int64, copy=False)
    return k


def _count(x, axis=None, dtype="float64"):
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in axis]))
    return cp.full((), n, dtype=dtype)  # a fill on the device: no host-to-device copy


def _getitem_grad(x, g, index, out=None):
    out = cp.zeros_like(x) if out is None else out
    out.fill(0)
    out[_index(index)] = g
    return out


def _take(x, idx, axis=None, out=None):
    _check_take(x, idx, axis)  # cp.take wraps an index out of bounds; NumPy raises
    return cp.take(x, idx, axis=axis, out=out)


def _check_take(x, idx, axis):
    check_bounds(idx, x.size if axis is None else x.shape[axis], 0 if axis is None else axis, cp)


def _take_grad(x, idx, g, axis=None, out=None):
    _check_take(x, idx, axis)
    out = cp.zeros_like(x) if out is None else out
    out.fill(0)
    if axis is None:
        cupyx.scatter_add(out.reshape(-1), idx.reshape(-1), g.reshape(-1))
    else:
        cupyx.scatter_add(out, (slice(None),) * axis + (idx,), g)
    return out


def _advindex(x, *arrays, index):
    return x[index_tuple(index, arrays, x.shape, cp)]


def _index_add(x, v, *arrays, index, out=None):
    idx = index_tuple(index, arrays, x.shape, cp)
    out = updated_copy(x, out, cp)
    cupyx.scatter_add(out, idx, v)
    return out


def _index_set(x, v, *arrays, index, out=None):
    # With repeated indices, which write wins is unspecified on the GPU (NumPy: the last).
    idx = index_tuple(index, arrays, x.shape, cp)
    out = updated_copy(x, out, cp)
    out[idx] = v
    return out


def _sum_like(g, x):
    if g.shape == x.shape:
        return g
    lead = g.ndim - x.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(x.shape)
                                      if d == 1 and g.shape[lead + i] != 1)
    return cp.sum(g, axis=axes, keepdims=True).reshape(x.shape)


def _concatenate(*xs, axis=0, out=None):
    return cp.concatenate(xs, axis=axis, out=out)


def _matmul(a, b, out=None):
    if a.ndim >= 2 and b.ndim >= 2:  # cuBLAS GEMM straight into the buffer
        return cp.matmul(a, b, out=out)
    return _store(cp.matmul(a, b), out)  # vector operands: the result is small


def _gemm(a, b, c, alpha=1.0, beta=1.0, out=None):
    # cuBLAS GEMM into the buffer, then the scaled C: two launches, no host round trip.
    if np.broadcast_shapes((a.shape[0], b.shape[1]), c.shape) != (a.shape[0], b.shape[1]):
        return broadcast_gemm(cp, a, b, c, alpha, beta, out)
    out = cp.matmul(a, b, out=out)
    if alpha != 1.0:
        out *= alpha
    out += c if beta == 1.0 else beta * c
    return out


# -- linear algebra, selection, steering --------------------------------------------------------
def _solve(a, b, out=None):
    # NumPy 2 broadcasts the batch dims (b is a vector only when 1-d); CuPy's solve wants
    # a.shape[:-1] == b.shape[:-1] (or b.shape for a vector): broadcast both first.
    if b.ndim == 1:
        batch = a.shape[:-2]
        b = cp.broadcast_to(b, batch + b.shape)
    else:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        b = cp.broadcast_to(b, batch + b.shape[-2:])
    a = cp.broadcast_to(a, batch + a.shape[-2:])
    return _store(cp.linalg.solve(a, b), out)


def _inv(a, out=None):
    return _store(cp.linalg.inv(a), out)


def _slogdet(a, part="logabsdet"):
    sign, logdet = cp.linalg.slogdet(a)
    return sign if part == "sign" else logdet


def _diag_rows_cols(shape, k):
    n, m = shape[-2], shape[-1]
    size = max(0, min(n + min(k, 0), m - max(k, 0)))
    rows = cp.arange(size) - min(k, 0)
    return rows, rows + k


def _diag_part_grad(x, g, k=0, out=None):
    out = cp.zeros_like(x) if out is None else out
    out.fill(0)
    r, c = _diag_rows_cols(x.shape, k)
    out[..., r, c] = g
    return out


def _diag_embed(v, k=0, out=None):
    n = v.shape[-1] + abs(k)
    out = cp.zeros(v.shape[:-1] + (n, n), dtype=v.dtype) if out is None else out
    out.fill(0)
    r, c = _diag_rows_cols((n, n), k)
    out[..., r, c] = v
    return out


def _norm2(x, axis=None, keepdims=False, out=None):
    # Scale by the largest magnitude first so squares neither overflow nor underflow.
    m = cp.max(cp.abs(x), axis=axis, keepdims=True)
    safe = cp.where(m == 0, cp.ones((), m.dtype), m)
    r = cp.sqrt(cp.sum(cp.square(x / safe), axis=axis, keepdims=True)) * m
    r = cp.where(cp.isinf(m), m, r)  # an infinite entry makes the norm inf, not inf/inf = nan
    r = r if keepdims else (cp.squeeze(r, axis) if axis is not None else r.reshape(()))
    return _store(r.astype(_floating_dtype(x.dtype), copy=False), out)


def _topk_indices(x, k, axis=-1, largest=True):
    order = cp.argsort(-x if largest else x, axis=axis)  # CuPy's sort is stable
    return cp.take(order, cp.arange(k), axis=axis).astype(cp.int64, copy=False)


def _take_along_axis(x, idx, axis=-1, out=None):
    check_bounds(idx, x.shape[axis], axis % x.ndim, cp)  # CuPy would wrap
    r = cp.take_along_axis(x, idx, axis=axis)
    if out is None:
        return r
    out[...] = r
    return out


def _put_along_axis_grad(x, idx, g, axis=-1, out=None, unique=False):
    # unique (distinct indices per row) needs no other path: the scatter-add is one launch.
    check_bounds(idx, x.shape[axis], axis % x.ndim, cp)
    out = cp.zeros_like(x) if out is None else out
    out.fill(0)
    ax = axis % x.ndim
    idx = cp.broadcast_to(idx, g.shape)  # idx may broadcast against x off the axis
    # A size-1 dim of x that idx broadcasts over sums every row's gradient into row 0.
    grids = cp.ix_(*[cp.arange(d) if x.shape[i] != 1 else cp.zeros(d, cp.int64)
                     for i, d in enumerate(idx.shape)])
    full = tuple(idx if i == ax else cp.broadcast_to(grids[i], idx.shape) for i in range(x.ndim))
    cupyx.scatter_add(out, full, g)
    return out


def _random_check(x, lo=0.0, hi=1.0, what="value"):
    # One reduction on the device, then one bool to the host (a sync, as the check needs).
    if bool(cp.any(~((x >= lo) & (x <= hi)))):
        raise ValueError(range_problem(x.get(), lo, hi, what))
    return x


def _basis(t):
    n = t.size
    return cp.eye(n, dtype=t.dtype).reshape((n,) + t.shape)


KERNELS = {op: _elementwise_kernel(op) for op in cg.ELEMENTWISE_OPS}
KERNELS.update({op: _reduce_kernel(op) for op in cg.REDUCTIONS})
KERNELS["fused"] = Kernel(None, "out", inplace=True, prepare=lambda expr: GeneratedKernel(expr))
KERNELS["fused_reduce"] = Kernel(None, "out", prepare=lambda expr, reduce, axis=None,
                                 keepdims=False: GeneratedKernel(expr, reduce, axis, keepdims))
KERNELS["random_uniform"] = Kernel(None, "out", prepare=lambda stream=0, dtype="float64",
                                   sharded=False: RandomKernel(stream, dtype, sharded))
KERNELS.update({name: Kernel(fn, "out") for name, fn in {
    "logsumexp": _logsumexp, "softmax": _softmax, "log_softmax": _log_softmax,
    "matmul": _matmul, "gemm": _gemm, "getitem_grad": _getitem_grad, "take": _take,
    "take_grad": _take_grad,
    "concatenate": _concatenate, "solve": _solve, "inv": _inv,
    "diag_part_grad": _diag_part_grad, "diag_embed": _diag_embed, "norm2": _norm2,
    "put_along_axis_grad": _put_along_axis_grad, "index_add": _index_add,
    "index_set": _index_set, "prod_others": _prod_others(cp),
    "take_along_axis": _take_along_axis,
}.items()})
KERNELS.update({name: Kernel(fn, "view") for name, fn in {
    "argmax": _arg(cp.argmax), "argmin": _arg(cp.argmin), "count": _count,
    "reshape": lambda x, shape: cp.reshape(x, shape),
    "reshape_like": lambda a, b: cp.reshape(a, b.shape),
    "transpose": lambda x, axes=None: cp.transpose(x, axes),
    "expand_dims": _expand_dims,
    "squeeze": lambda x, axis: cp.squeeze(x, axis),
    "broadcast_to": lambda x, shape: cp.broadcast_to(x, shape),
    "broadcast_like": lambda a, b: cp.broadcast_to(a, b.shape), "sum_like": _sum_like,
    "getitem": lambda x, index: x[_index(index)], "concat_grad": _concat_grad,
    "slogdet": _slogdet, "diag_part": lambda x, k=0: cp.diagonal(x, offset=k, axis1=-2, axis2=-1),
    "topk_indices": _topk_indices,
    "basis": _basis, "advindex": _advindex, "specify_shape": specify_shape,
    "argsort": lambda x, axis=-1: cp.argsort(x, axis=axis).astype(cp.int64, copy=False),
    "random_check": _random_check, "stop_gradient": lambda x: x,
    "custom_vjp": lambda y, *rest, rule=None: y,
}.items()})

KERNELS.update({name: Kernel(fn, kind) for name, (fn, kind) in _shape_table(cp).items()})
KERNELS["loop"] = Kernel(None, "view", prepare=make_loop("gpu", cp))
KERNELS["cond"] = Kernel(None, "view", prepare=make_cond("gpu"))
KERNELS["part"] = Kernel(lambda t, index: t[index], "view")
from ..cpu.kernels_comm import table as _comm_table  # noqa: E402

KERNELS.update({name: Kernel(fn, kind) for name, (fn, kind) in _comm_table(cp).items()})
KERNELS["select"] = Kernel(lambda t, indices: tuple(t[i] for i in indices), "view")
# Convolution: the generated im2col kernel plus cuBLAS (conv_run.py); FLOWC_GPU_CONV=reference
# or FLOWC_CONV_ALGO runs the NumPy kernel on device arrays (choosing by time would need a
# device sync per candidate).
KERNELS["conv"] = Kernel(_conv_run.conv, "out")
KERNELS["conv_bias"] = Kernel(_conv_run.conv, "out")
KERNELS.update({k: Kernel(getattr(_conv_run, k), "out") for k in ("im2col", "conv_cols",
                                                                   "conv_wgrad")})
KERNELS["pool_argmax"] = Kernel(_conv_run.pool_argmax, "out")  # generated: one launch


# -- the CuPy-function evaluation of expressions the generator does not cover (float16, ...) --
def _sigmoid(x, out=None):
    x = x if x.dtype.kind == "f" else x.astype(_floating_dtype(x.dtype))
    e = cp.exp(-cp.abs(x))
    return cp.divide(cp.where(x >= 0, cp.ones((), x.dtype), e), 1 + e, out=out)


def _softplus(x, out=None):
    x = x if x.dtype.kind == "f" else x.astype(_floating_dtype(x.dtype))
    return cp.add(cp.maximum(x, cp.zeros((), x.dtype)), cp.log1p(cp.exp(-cp.abs(x))), out=out)


def _cast(x, dtype, out=None):
    if out is None:
        return x.astype(dtype)
    cp.copyto(out, x, casting="unsafe")
    return out


def _like(value):
    def k(x, out=None):
        if out is None:
            return cp.full_like(x, value)
        out.fill(value)
        return out
    return k


def _where(c, a, b, out=None):
    return _store(cp.where(c, a, b), out)


def _xlogx(x, out=None):
    x = x if x.dtype.kind == "f" else x.astype(_floating_dtype(x.dtype))
    r = cp.where(x == 0, cp.zeros((), x.dtype), x * cp.log(x))
    return _store(r, out)


FALLBACK = {name: Kernel(fn, "out") for name, fn in {
    "neg": cp.negative, "exp": cp.exp, "log": cp.log, "log1p": cp.log1p, "expm1": cp.expm1,
    "sqrt": cp.sqrt, "square": cp.square, "abs": cp.absolute, "sign": cp.sign, "tanh": cp.tanh,
    "sin": cp.sin, "cos": cp.cos, "sigmoid": _sigmoid, "softplus": _softplus,
    "relu": lambda x, out=None: cp.maximum(x, cp.zeros((), x.dtype), out=out),
    "add": cp.add, "sub": cp.subtract, "mul": cp.multiply, "div": cp.true_divide,
    "pow": cp.power, "maximum": cp.maximum, "minimum": cp.minimum, "less": cp.less,
    "less_equal": cp.less_equal, "greater": cp.greater, "greater_equal": cp.greater_equal,
    "equal": cp.equal, "not_equal": cp.not_equal, "where": _where, "clip": cp.clip,
    "cast": _cast, "zeros_like": _like(0), "ones_like": _like(1), "floor": cp.floor,
    "ceil": cp.ceil, "round": lambda x, out=None: cp.around(x, 0, out), "xlogx": _xlogx,
    "floor_divide": cp.floor_divide, "mod": cp.remainder,
}.items()}
