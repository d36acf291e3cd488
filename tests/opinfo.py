"""The op table: every op sample in one list; tests/test_ops.py generates the op tests from it.

A row says how to build the op from flowc Tensors, the operands (call shape, declared shape
with None dims, dtype, input domain), a plain-NumPy reference, tolerances, and whether the op
is differentiable there (its vjp is then checked against central differences in float64).
Adding an op means adding its OpDef, its kernel, and rows here.
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

import flowc as fc
from flowc.ops import api as F


# -- input domains: fn(rng, shape) -> array (cast to the operand's dtype afterwards) ----------
def real(rng, shape):
    return rng.uniform(-2.0, 2.0, shape)


def pos(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def above_m1(rng, shape):
    # log1p is defined above -1; keep a margin so finite differences stay inside.
    return rng.uniform(-0.5, 2.0, shape)


def tiny(rng, shape):
    # log1p / expm1 must stay exact where 1 + x rounds to 1.
    return rng.uniform(-1e-10, 1e-10, shape)


def away(rng, shape):
    # |x| >= 0.25: far from the kink at 0 of abs, relu and sign.
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.25, 2.0, shape)


def distinct(rng, shape):
    # All values at least 4/(n-1) apart: max/min/argmax have no ties to split.
    n = int(np.prod(shape, dtype=int))
    return rng.permutation(np.linspace(-2.0, 2.0, n)).reshape(shape)


def grid_a(rng, shape):
    # grid_a and grid_b never come within 0.25 of each other: no ties in maximum/minimum.
    return rng.integers(-4, 4, shape) * 0.5 + 0.125


def grid_b(rng, shape):
    return rng.integers(-4, 4, shape) * 0.5 + 0.375


def off_quarter(rng, shape):
    # Multiples of 0.25 shifted by 0.125: never within 0.125 of the clip bounds +-0.5, +-1.
    return rng.integers(-8, 8, shape) * 0.25 + 0.125


def coarse(rng, shape):
    # Few distinct values, so comparisons meet ties.
    return rng.integers(-2, 3, shape).astype(float)


def wide(rng, shape):
    # Where a naive sigmoid / softplus would lose precision or overflow in float32.
    return rng.uniform(-30.0, 30.0, shape)


def huge(rng, shape):
    # exp overflows here: logsumexp / softmax must subtract the max first.
    return 800.0 + rng.uniform(-2.0, 2.0, shape)


def boolean(rng, shape):
    return rng.random(shape) < 0.5


def one_zero(rng, shape):
    # prod's derivatives at a zero: the product of the others there, 0 elsewhere.
    a = away(rng, shape)
    a.flat[rng.integers(a.size)] = 0.0
    return a


def two_zeros(rng, shape):
    a = away(rng, shape)
    a.flat[rng.choice(a.size, 2, replace=False)] = 0.0
    return a


def zero_col(rng, shape):
    # Zeros along the last axis's first index (a whole slice), plus one more: groups of a
    # reduction meet one, two or all zeros depending on the axis.
    a = away(rng, shape)
    a[..., 0] = 0.0
    a.flat[1] = 0.0
    return a


def ints(rng, shape):
    return rng.integers(-3, 4, shape)


def index(n, low=0):
    """Integer indices in [low, n) (negative low: NumPy's negative indices)."""
    def draw(rng, shape):
        return rng.integers(low, n, shape)
    draw.__name__ = f"index({n},{low})"
    return draw


@dataclass(frozen=True)
class Arg:
    """One operand: shape at call time, its domain, dtype and declared shape (None dims)."""

    shape: Tuple[int, ...]
    domain: Callable = real
    dtype: str = "float64"
    decl: Optional[Tuple] = None

    @property
    def declared(self):
        return self.shape if self.decl is None else self.decl

    @property
    def is_float(self):
        return np.dtype(self.dtype).kind == "f"


def A(*shape, dom=real, dt="float64", decl=None):
    """An operand of this call shape (A() is a scalar)."""
    return Arg(tuple(shape), dom, dt, None if decl is None else tuple(decl))


@dataclass(frozen=True)
class OpSample:
    """One op sample. `grad`: differentiable here (vjp checked against finite differences)."""

    name: str
    build: Callable
    args: Tuple[Arg, ...]
    ref: Callable
    grad: bool = True
    rtol: Optional[float] = None
    atol: Optional[float] = None
    fd_eps: float = 1e-6  # central-difference step, relative to max(1, |x|)
    gtol: float = 1e-6    # rtol (and atol per unit of gradient) for vjp vs differences
    zero_grad: bool = False  # grad=False rows whose gradient is zero by design (stop_gradient)
    compiled_only: bool = False  # ops only passes make (fused groups): no derivative rules
    value_shape: bool = False  # the result's shape depends on an operand's value (a size)

    def __post_init__(self):
        if self.compiled_only:  # no gradient, no batching: these exist only after passes
            object.__setattr__(self, "grad", False)

    def tols(self, dtype):
        """(rtol, atol) for comparing a result of `dtype` with the reference."""
        if self.rtol is not None:
            return self.rtol, self.atol or 0.0
        return (1e-5, 1e-6) if dtype in ("float32", "float16") else (1e-9, 1e-12)

    def draw(self, k=0):
        """Operand arrays (draw k; fixed per row so every run sees the same numbers)."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()) + 7919 * k)
        return [np.asarray(a.domain(rng, a.shape)).astype(a.dtype) for a in self.args]


SAMPLES = []


def S(name, build, args, ref, **kw):
    """Add one row to the table."""
    SAMPLES.append(OpSample(name, build, tuple(args), ref, **kw))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _lse(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axis)


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _getitem_grad(index):
    """getitem_grad(x, g) built with the index attrs flowc itself makes for x[index]."""
    def build(x, g):
        return F.apply("getitem_grad", [x, g], index=x[index].node["attrs"]["index"])

    def ref(x, g):
        out = np.zeros_like(x)
        out[index] = g
        return out
    return build, ref


def _take_grad_ref(axis):
    def ref(x, idx, g):
        out = np.zeros_like(x)
        if axis is None:
            np.add.at(out.reshape(-1), idx.reshape(-1), g.reshape(-1))
        else:
            np.add.at(out, (slice(None),) * axis + (idx,), g)
        return out
    return ref


X23, X34 = A(2, 3), A(3, 4)

# -- unary elementwise -----------------------------------------------------------------------
S("neg", lambda x: -x, [X23], np.negative)
S("neg_fn", fc.neg, [A(3, decl=(None,))], np.negative)
S("exp", fc.exp, [X23], np.exp)
S("exp_int", fc.exp, [A(4, dom=ints, dt="int64")], np.exp, grad=False)
S("log", fc.log, [A(2, 3, dom=pos)], np.log)
S("log1p", fc.log1p, [A(2, 3, dom=above_m1)], np.log1p)
S("log1p_tiny", fc.log1p, [A(3, dom=tiny)], np.log1p, rtol=1e-12, atol=0.0)
S("expm1_tiny", fc.expm1, [A(3, dom=tiny)], np.expm1, rtol=1e-12, atol=0.0)
S("expm1", fc.expm1, [X23], np.expm1)
S("sqrt", fc.sqrt, [A(2, 3, dom=pos)], np.sqrt)
S("sqrt_int32", fc.sqrt, [A(3, dom=index(9), dt="int32")], np.sqrt, grad=False)
S("square", fc.square, [X23], np.square)
S("abs", fc.abs, [A(2, 3, dom=away)], np.abs)
S("abs_builtin", lambda x: abs(x), [A(4, dom=away)], np.abs)
S("abs_method", lambda x: x.abs(), [A(2, 2, dom=away, decl=(None, 2))], np.abs)
S("sign", fc.sign, [A(2, 3, dom=away)], np.sign)
S("tanh", fc.tanh, [X23], np.tanh)
S("sigmoid", fc.sigmoid, [X23], _sigmoid)
S("sigmoid_wide", fc.sigmoid, [A(6, dom=wide)], _sigmoid)
S("relu", fc.relu, [A(2, 3, dom=away)], lambda x: np.maximum(x, 0))
S("softplus", fc.softplus, [X23], lambda x: np.logaddexp(0, x))
S("softplus_wide", fc.softplus, [A(6, dom=wide)], lambda x: np.logaddexp(0, x))
S("sin", fc.sin, [X23], np.sin)
S("cos", fc.cos, [X23], np.cos)
S("zeros_like", fc.zeros_like, [X23], np.zeros_like)
S("ones_like", fc.ones_like, [A(2, 3, decl=(None, 3))], np.ones_like)
S("zeros_like_bool", lambda x: fc.zeros_like(x > 0), [X23], lambda x: np.zeros_like(x > 0),
  grad=False)
S("ones_like_int", fc.ones_like, [A(3, dom=ints, dt="int64")], np.ones_like, grad=False)
# float32 keeps float32, also next to weak Python scalars.
S("exp_f32", fc.exp, [A(2, 3, dt="float32")], np.exp)
S("log_f32", fc.log, [A(3, dom=pos, dt="float32")], np.log)
S("tanh_f32", fc.tanh, [A(3, dt="float32")], np.tanh)
S("sigmoid_f32", fc.sigmoid, [A(2, 3, dom=wide, dt="float32")], _sigmoid)
S("softplus_f32", fc.softplus, [A(6, dom=wide, dt="float32")], lambda x: np.logaddexp(0, x))
S("relu_f32", fc.relu, [A(4, dom=away, dt="float32")], lambda x: np.maximum(x, 0))

# -- binary arithmetic (NumPy broadcasting, NumPy 2 promotion) --------------------------------
S("add", lambda a, b: a + b, [X23, X23], np.add)
S("add_bcast", fc.add, [A(3, 1), A(4)], np.add)
S("add_scalar_tensor", lambda a, b: a + b, [X23, A()], np.add)
S("add_decl_none", lambda a, b: a + b, [A(2, 3, decl=(None, 3)), A(3)], np.add)
S("radd_weak", lambda a: 2.0 + a, [X23], lambda a: 2.0 + a)
S("sub_bcast", lambda a, b: a - b, [A(2, 1, 3), A(4, 1)], np.subtract)
S("sub_fn", fc.sub, [A(3, decl=(None,)), A(3, decl=(None,))], np.subtract)
S("rsub_weak", lambda a: 1 - a, [A(3, dt="float32")], lambda a: 1 - a)
S("mul_bcast", lambda a, b: a * b, [A(3, 1), A(1, 4)], np.multiply)
S("mul_fn", fc.mul, [X23, A(3)], np.multiply)
S("rmul_weak_f32", lambda a: 0.01 * a, [A(2, 3, dt="float32")], lambda a: 0.01 * a)
S("mul_weak_int_f32", lambda a: a * 2, [A(3, dt="float32")], lambda a: a * 2)
S("div", lambda a, b: a / b, [X23, A(3, dom=away)], np.divide)
S("div_fn", fc.div, [A(2, 1), A(1, 3, dom=pos)], np.divide)
S("rdiv_weak", lambda a: 1 / a, [A(4, dom=away)], lambda a: 1 / a)
S("pow_int_exp", lambda a: a ** 3, [X23], lambda a: a ** 3)
S("pow_two", lambda a: a ** 2, [A(2, 3, decl=(None, 3))], lambda a: a ** 2)
S("pow_half", lambda a: a ** 0.5, [A(4, dom=pos)], lambda a: a ** 0.5)
S("pow_tensors", lambda a, b: a ** b, [A(2, 3, dom=pos), A(3)], np.power)
S("pow_fn", fc.pow, [A(3, dom=pos), A()], np.power)
S("pow_int_tensor_exp", lambda a, i: a ** i, [A(2, 3, dom=pos), A(3, dom=index(4), dt="int64")],
  np.power)
S("rpow_weak", lambda a: 2.0 ** a, [A(4)], lambda a: 2.0 ** a)
S("pow_f32", lambda a: a ** 2, [A(3, dt="float32")], lambda a: a ** 2)
S("maximum", fc.maximum, [A(3, 1, dom=grid_a), A(4, dom=grid_b)], np.maximum)
S("maximum_scalar", lambda a: fc.maximum(a, 0.0), [A(2, 3, dom=grid_a)],
  lambda a: np.maximum(a, 0.0))
S("minimum", fc.minimum, [A(2, 3, dom=grid_b), A(3, dom=grid_a)], np.minimum)
S("minimum_decl_none", fc.minimum, [A(2, 2, dom=grid_a, decl=(None, None)), A(2, dom=grid_b)],
  np.minimum)
# Promotion of mixed array dtypes, as NumPy 2 does it.
S("add_f32_f64", lambda a, b: a + b, [A(3, dt="float32"), A(3)], np.add)
S("mul_i32_f32", lambda a, b: a * b, [A(3, dom=ints, dt="int32"), A(3, dt="float32")],
  np.multiply)
S("add_i64_f32", lambda a, b: a + b, [A(3, dom=ints, dt="int64"), A(3, dt="float32")], np.add)
S("add_int_weak", lambda a: a + 1, [A(3, dom=ints, dt="int64")], lambda a: a + 1, grad=False)
S("mul_int_weak_float", lambda a: a * 0.5, [A(3, dom=ints, dt="int32")], lambda a: a * 0.5,
  grad=False)
S("add_bool_weak_int", lambda a: (a > 0) + 1, [X23], lambda a: (a > 0) + 1, grad=False)
S("mul_f32_np_f64", lambda a: a * np.float64(3.0), [A(3, dt="float32")],
  lambda a: a * np.float64(3.0))

# -- rounding, floor division, remainder, xlogx (NumPy semantics, negative operands too) ----------
def nonzero_ints(rng, shape):
    return rng.choice([-3, -2, -1, 1, 2, 3], shape)


def halves(rng, shape):
    # Ties: np.round sends halves to the even neighbour.
    return rng.integers(-4, 4, shape) + 0.5


S("floor", fc.floor, [A(2, 4, dom=off_quarter)], np.floor)
S("ceil", fc.ceil, [A(2, 4, dom=off_quarter)], np.ceil)
S("round", fc.round, [A(2, 4, dom=off_quarter)], np.round)
S("round_halves", fc.round, [A(8, dom=halves)], np.round, grad=False, zero_grad=True)
S("floor_f32", fc.floor, [A(5, dom=off_quarter, dt="float32")], np.floor)
S("floor_int", fc.floor, [A(4, dom=ints, dt="int64")], np.floor, grad=False)
S("ceil_int32", fc.ceil, [A(4, dom=ints, dt="int32")], np.ceil, grad=False)
S("round_int", fc.round, [A(4, dom=ints, dt="int64")], np.round, grad=False)
S("floor_divide", lambda a, b: a // b, [A(2, 3, dom=wide), A(3, dom=away)], np.floor_divide)
S("floor_divide_int", lambda a, b: a // b, [A(2, 4, dom=ints, dt="int64"),
                                            A(4, dom=nonzero_ints, dt="int64")], np.floor_divide,
  grad=False)
S("floor_divide_int8", fc.floor_divide, [A(5, dom=ints, dt="int8"), A(5, dom=nonzero_ints, dt="int8")],
  np.floor_divide, grad=False)
S("rfloordiv_weak", lambda a: 7.0 // a, [A(4, dom=away)], lambda a: 7.0 // a)
S("floor_divide_f32", lambda a: a // 0.75, [A(5, dom=wide, dt="float32")], lambda a: a // np.float32(0.75))
S("mod", lambda a, b: a % b, [A(2, 3, dom=wide), A(3, dom=away)], np.remainder)
S("mod_fn_bcast", fc.mod, [A(3, 1, dom=wide), A(4, dom=away)], np.remainder)
S("mod_int", lambda a, b: a % b, [A(2, 4, dom=ints, dt="int64"), A(4, dom=nonzero_ints, dt="int64")],
  np.remainder, grad=False)
S("mod_int32_weak", lambda a: a % 3, [A(6, dom=ints, dt="int32")], lambda a: a % 3, grad=False)
S("rmod_weak", lambda a: 5.0 % a, [A(4, dom=away)], lambda a: 5.0 % a)
S("mod_f32", lambda a: fc.remainder(a, -1.5), [A(5, dom=wide, dt="float32")],
  lambda a: np.remainder(a, np.float32(-1.5)))
S("xlogx", fc.xlogx, [A(2, 3, dom=pos)], lambda x: x * np.log(x))
S("xlogx_int_zeros", fc.xlogx, [A(6, dom=index(3), dt="int64")],
  lambda x: np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1, x))), grad=False)
S("xlogx_f32", fc.xlogx, [A(4, dom=pos, dt="float32")], lambda x: x * np.log(x))

# -- comparisons (boolean results, not differentiable) ------------------------------------------
S("less", lambda a, b: a < b, [A(2, 3, dom=coarse), A(3, dom=coarse)], np.less, grad=False)
S("less_equal", lambda a, b: a <= b, [A(3, 1, dom=coarse), A(4, dom=coarse)], np.less_equal,
  grad=False)
S("greater", lambda a, b: a > b, [A(2, 3, dom=coarse), A(2, 3, dom=coarse)], np.greater,
  grad=False)
S("greater_equal", lambda a, b: a >= b, [A(4, dom=coarse), A(dom=coarse)], np.greater_equal,
  grad=False)
S("greater_weak_f32", lambda a: a > 0.5, [A(2, 3, dt="float32")], lambda a: a > 0.5,
  grad=False)
S("less_fn", fc.less, [A(3, dom=coarse), A(3, dom=coarse)], np.less, grad=False)
S("less_equal_fn", fc.less_equal, [A(3, dom=coarse), A(3, dom=coarse)], np.less_equal,
  grad=False)
S("greater_fn", fc.greater, [A(3, dom=coarse), A(3, dom=coarse)], np.greater, grad=False)
S("greater_equal_fn", fc.greater_equal, [A(3, dom=coarse), A(3, dom=coarse)],
  np.greater_equal, grad=False)
S("equal", fc.equal, [A(2, 3, dom=coarse), A(3, dom=coarse)], np.equal, grad=False)
S("equal_int", fc.equal, [A(4, dom=ints, dt="int64"), A(4, dom=ints, dt="int64")], np.equal,
  grad=False)
S("not_equal", fc.not_equal, [A(3, 1, dom=coarse, decl=(None, 1)), A(2, dom=coarse)],
  np.not_equal, grad=False)

# -- where, clip, cast --------------------------------------------------------------------------
S("where", fc.where, [A(2, 3, dom=boolean, dt="bool"), X23, A(3)], np.where)
S("where_bcast_cond", fc.where, [A(3, 1, dom=boolean, dt="bool"), A(4), A()], np.where)
S("where_scalar_branch", lambda x: fc.where(x > 0, x, 0.0), [A(2, 3, dom=away)],
  lambda x: np.where(x > 0, x, 0.0))
S("where_scalar_branch_f32", lambda x: fc.where(x > 0, 1.0, x), [A(3, dom=away, dt="float32")],
  lambda x: np.where(x > 0, 1.0, x))
S("clip", lambda x: fc.clip(x, -0.5, 0.5), [A(2, 4, dom=off_quarter)],
  lambda x: np.clip(x, -0.5, 0.5))
S("clip_tensors", fc.clip, [A(2, 4, dom=off_quarter),
                            A(4, dom=lambda r, s: r.uniform(-1.9, -1.1, s)),
                            A(dom=lambda r, s: r.uniform(1.1, 1.9, s))], np.clip)
S("clip_f32", lambda x: fc.clip(x, 0, 1), [A(5, dom=off_quarter, dt="float32")],
  lambda x: np.clip(x, np.float32(0), np.float32(1)))
# The float32 result rounds to ~6e-8: a tiny step would only measure that rounding.
S("cast_f64_f32", lambda x: fc.cast(x, "float32"), [X23], lambda x: x.astype("float32"),
  fd_eps=1e-3, gtol=1e-3)
S("astype_f32_f64", lambda x: x.astype("float64"), [A(3, dt="float32")],
  lambda x: x.astype("float64"))
S("cast_int_float", lambda x: fc.cast(x, "float64"), [A(3, dom=ints, dt="int64")],
  lambda x: x.astype("float64"), grad=False)
S("cast_float_int", lambda x: x.astype("int64"), [A(2, 3, dom=away)],
  lambda x: x.astype("int64"), grad=False)
S("cast_bool_float", lambda x: fc.cast(x > 0, "float32"), [A(4)],
  lambda x: (x > 0).astype("float32"))

# -- reductions ---------------------------------------------------------------------------------
X234 = A(2, 3, 4)
S("sum_all", fc.sum, [X234], np.sum)
S("sum_axis", lambda x: fc.sum(x, axis=1), [X234], lambda x: np.sum(x, axis=1))
S("sum_axes_keepdims", lambda x: x.sum(axis=(0, 2), keepdims=True), [X234],
  lambda x: x.sum(axis=(0, 2), keepdims=True))
S("sum_neg_axis_decl_none", lambda x: x.sum(-1), [A(3, 4, decl=(None, 4))],
  lambda x: x.sum(-1))
S("sum_keepdims_all", lambda x: x.sum(keepdims=True), [X23], lambda x: x.sum(keepdims=True))
S("sum_bool", lambda x: fc.sum(x > 0, axis=0), [X23], lambda x: np.sum(x > 0, axis=0),
  grad=False)
S("sum_f32", lambda x: x.sum(axis=0), [A(3, 2, dt="float32")], lambda x: x.sum(axis=0))
S("mean_all", fc.mean, [X234], np.mean)
S("mean_axis", lambda x: x.mean(axis=0), [X34], lambda x: x.mean(axis=0))
S("mean_keepdims", lambda x: fc.mean(x, axis=(1, 2), keepdims=True), [X234],
  lambda x: np.mean(x, axis=(1, 2), keepdims=True))
S("mean_decl_none", lambda x: fc.mean(x, axis=0), [A(3, 4, decl=(None, 4))],
  lambda x: np.mean(x, axis=0))
S("mean_all_decl_none", fc.mean, [A(3, 2, decl=(None, None))], np.mean)
S("mean_method_keepdims", lambda x: x.mean(axis=1, keepdims=True), [X23],
  lambda x: x.mean(axis=1, keepdims=True))
S("mean_f32", lambda x: x.mean(), [A(3, 2, dt="float32")], lambda x: x.mean())
S("mean_int", fc.mean, [A(5, dom=ints, dt="int64")], np.mean, grad=False)
S("max_all", fc.max, [A(3, 4, dom=distinct)], np.max)
S("max_axis", lambda x: x.max(axis=1), [A(2, 3, 4, dom=distinct)], lambda x: x.max(axis=1))
S("max_keepdims_decl_none", lambda x: fc.max(x, axis=0, keepdims=True),
  [A(3, 4, dom=distinct, decl=(None, 4))], lambda x: np.max(x, axis=0, keepdims=True))
S("max_method_keepdims", lambda x: x.max(axis=0, keepdims=True), [A(3, 2, dom=distinct)],
  lambda x: x.max(axis=0, keepdims=True))
S("min_all", lambda x: x.min(), [A(2, 3, dom=distinct)], lambda x: x.min())
S("min_axis", fc.min, [A(2, 3, dom=distinct)], np.min)
S("min_axes_keepdims", lambda x: x.min(axis=(0, 2), keepdims=True), [A(2, 3, 2, dom=distinct)],
  lambda x: x.min(axis=(0, 2), keepdims=True))
S("max_int", lambda x: x.max(axis=0), [A(3, 2, dom=ints, dt="int64")],
  lambda x: x.max(axis=0), grad=False)
S("prod_all", fc.prod, [A(2, 3, dom=away)], np.prod)
S("prod_axis", lambda x: fc.prod(x, axis=1), [A(2, 3, dom=away)], lambda x: np.prod(x, axis=1))
S("prod_keepdims", lambda x: x.prod(axis=0, keepdims=True), [A(3, 2, dom=away)],
  lambda x: x.prod(axis=0, keepdims=True))
S("argmax_all", fc.argmax, [A(3, 4, dom=distinct)], np.argmax, grad=False)
S("argmax_axis", lambda x: fc.argmax(x, axis=1), [A(2, 3, 4, dom=distinct)],
  lambda x: np.argmax(x, axis=1), grad=False)
S("argmax_keepdims", lambda x: x.argmax(axis=-1, keepdims=True),
  [A(3, 4, dom=distinct, decl=(None, 4))], lambda x: np.argmax(x, axis=-1, keepdims=True),
  grad=False)
S("argmin_all", lambda x: x.argmin(), [A(3, 4, dom=distinct)], np.argmin, grad=False)
S("argmin_axis", lambda x: fc.argmin(x, axis=0), [A(3, 4, dom=distinct)],
  lambda x: np.argmin(x, axis=0), grad=False)
S("argmin_keepdims_all", lambda x: fc.argmin(x, keepdims=True), [A(2, 3, dom=distinct)],
  lambda x: np.argmin(x, keepdims=True), grad=False)
S("logsumexp_all", fc.logsumexp, [X23], _lse)
S("logsumexp_axis", lambda x: fc.logsumexp(x, axis=1), [X234], lambda x: _lse(x, axis=1))
S("logsumexp_keepdims", lambda x: fc.logsumexp(x, axis=-1, keepdims=True),
  [A(3, 4, decl=(None, 4))], lambda x: _lse(x, axis=-1, keepdims=True))
S("logsumexp_huge", lambda x: fc.logsumexp(x, axis=0), [A(4, 2, dom=huge)],
  lambda x: _lse(x, axis=0))
S("logsumexp_f32", lambda x: fc.logsumexp(x, axis=1), [A(2, 3, dt="float32")],
  lambda x: _lse(x, axis=1))
S("count_axis_decl_none", lambda x: F.count(x, 0), [A(3, 2, decl=(None, 2))],
  lambda x: np.float64(x.shape[0]))
S("count_all_decl_none", lambda x: F.count(x, dtype="float32"), [A(3, 2, decl=(None, None))],
  lambda x: np.float32(x.size))

# -- softmax family -----------------------------------------------------------------------------
S("softmax", fc.softmax, [X34], _softmax)
S("softmax_axis0", lambda x: fc.softmax(x, axis=0), [X34], lambda x: _softmax(x, axis=0))
S("softmax_huge_decl_none", fc.softmax, [A(2, 3, dom=huge, decl=(None, 3))], _softmax)
S("softmax_f32", fc.softmax, [A(2, 3, dt="float32")], _softmax)
S("log_softmax", fc.log_softmax, [X34], lambda x: np.log(_softmax(x)))
S("log_softmax_axis0", lambda x: fc.log_softmax(x, axis=0), [A(3, 2)],
  lambda x: x - _lse(x, axis=0, keepdims=True))
S("log_softmax_huge", fc.log_softmax, [A(2, 3, dom=huge)],
  lambda x: x - _lse(x, axis=-1, keepdims=True))

# -- matrix products ----------------------------------------------------------------------------
S("matmul_2d", lambda a, b: a @ b, [A(2, 3), A(3, 4)], np.matmul)
S("matmul_1d_1d", fc.matmul, [A(3), A(3)], np.matmul)
S("matmul_2d_1d", lambda a, b: a @ b, [A(2, 3), A(3)], np.matmul)
S("matmul_1d_2d", lambda a, b: a @ b, [A(3), A(3, 4)], np.matmul)
S("matmul_batched", fc.matmul, [A(2, 2, 3), A(2, 3, 4)], np.matmul)
S("matmul_batch_bcast", lambda a, b: a @ b, [A(2, 1, 2, 3), A(3, 3, 2)], np.matmul)
S("matmul_1d_batched", fc.matmul, [A(3), A(2, 3, 4)], np.matmul)
S("matmul_batched_1d", fc.matmul, [A(2, 4, 3), A(3)], np.matmul)
S("matmul_decl_none", lambda a, b: a @ b, [A(4, 3, decl=(None, 3)), A(3, 2)], np.matmul)
S("rmatmul_array", lambda b: np.arange(6.0).reshape(2, 3) @ b, [A(3, 2)],
  lambda b: np.arange(6.0).reshape(2, 3) @ b)
S("matmul_f32", lambda a, b: a @ b, [A(2, 3, dt="float32"), A(3, dt="float32")], np.matmul)
S("dot_2d", fc.dot, [A(2, 3), A(3, 2)], np.dot)
S("dot_1d", lambda a, b: a.dot(b), [A(4), A(4)], np.dot)
S("dot_scalar", fc.dot, [A(), A(3)], np.dot)

# -- shapes ---------------------------------------------------------------------------------------
S("reshape", lambda x: x.reshape(3, 4), [A(2, 6)], lambda x: x.reshape(3, 4))
S("reshape_fn_flat", lambda x: fc.reshape(x, -1), [X23], lambda x: np.reshape(x, -1))
S("reshape_tuple_decl_none", lambda x: x.reshape((-1, 3)), [A(2, 6, decl=(None, 6))],
  lambda x: x.reshape((-1, 3)))
S("reshape_to_scalar", lambda x: fc.reshape(x, ()), [A(1, 1)], lambda x: x.reshape(()))
S("T", lambda x: x.T, [X23], lambda x: x.T)
S("T_3d_decl_none", lambda x: x.T, [A(2, 3, 4, decl=(None, 3, 4))], lambda x: x.T)
S("transpose_axes", lambda x: fc.transpose(x, (1, 0, 2)), [X234],
  lambda x: np.transpose(x, (1, 0, 2)))
S("transpose_method", lambda x: x.transpose(2, 0, 1), [X234], lambda x: x.transpose(2, 0, 1))
S("transpose_neg_axes", lambda x: fc.transpose(x, (-1, 0, 1)), [X234],
  lambda x: np.transpose(x, (-1, 0, 1)))
S("transpose_default", fc.transpose, [X34], np.transpose)
S("expand_dims", lambda x: fc.expand_dims(x, 0), [X23], lambda x: np.expand_dims(x, 0))
S("expand_dims_neg", lambda x: fc.expand_dims(x, -1), [A(3, decl=(None,))],
  lambda x: np.expand_dims(x, -1))
S("expand_dims_many", lambda x: fc.expand_dims(x, (0, 2)), [X23],
  lambda x: np.expand_dims(x, (0, 2)))
S("squeeze_all", fc.squeeze, [A(1, 3, 1)], np.squeeze)
S("squeeze_axis", lambda x: fc.squeeze(x, 0), [A(1, 3)], lambda x: np.squeeze(x, 0))
S("squeeze_decl_none", lambda x: fc.squeeze(x, 1), [A(3, 1, decl=(None, None))],
  lambda x: np.squeeze(x, 1))
S("broadcast_to", lambda x: fc.broadcast_to(x, (2, 3)), [A(3)],
  lambda x: np.broadcast_to(x, (2, 3)))
S("broadcast_to_3d", lambda x: fc.broadcast_to(x, (2, 3, 4)), [A(3, 1)],
  lambda x: np.broadcast_to(x, (2, 3, 4)))
S("broadcast_like", F.broadcast_like, [A(3, 1), A(3, 4, decl=(None, 4))],
  lambda x, y: np.broadcast_to(x, y.shape))
S("broadcast_like_lead", F.broadcast_like, [A(4), A(2, 4)],
  lambda x, y: np.broadcast_to(x, y.shape))
S("sum_like", F.sum_like, [A(4, 3), A(1, 3, decl=(None, 3))],
  lambda g, x: g.sum(axis=0, keepdims=True))
S("sum_like_lead", F.sum_like, [A(2, 4, 3), A(1, 3, decl=(None, None))],
  lambda g, x: g.sum(axis=(0, 1)).reshape(1, 3))
S("sum_like_noop", F.sum_like, [A(2, 3, decl=(None, 3)), A(2, 3, decl=(None, 3))],
  lambda g, x: g)
S("reshape_like", F.reshape_like, [X23, A(3, 2, decl=(None, 2))],
  lambda x, y: x.reshape(y.shape))

# -- indexing -------------------------------------------------------------------------------------
S("getitem_int", lambda x: x[0], [X23], lambda x: x[0])
S("getitem_slice", lambda x: x[1:], [A(3, 2)], lambda x: x[1:])
S("getitem_step", lambda x: x[:, ::2], [A(2, 5)], lambda x: x[:, ::2])
S("getitem_reverse", lambda x: x[::-1], [A(4)], lambda x: x[::-1])
S("getitem_ellipsis", lambda x: x[..., 1], [X234], lambda x: x[..., 1])
S("getitem_newaxis", lambda x: x[None, 0], [X23], lambda x: x[None, 0])
S("getitem_mixed", lambda x: x[-1, 1:3], [X34], lambda x: x[-1, 1:3])
S("getitem_scalar", lambda x: x[1, 2], [X23], lambda x: x[1, 2])
S("getitem_mid_newaxis", lambda x: x[:, None, :], [X23], lambda x: x[:, None, :])
S("getitem_decl_none", lambda x: x[:, 1:3], [A(3, 4, decl=(None, 4))], lambda x: x[:, 1:3])
S("getitem_int_decl_none", lambda x: x[0], [A(3, 2, decl=(None, 2))], lambda x: x[0])
S("getitem_list", lambda x: x[[0, 2, 2]], [X34], lambda x: x[[0, 2, 2]])
S("getitem_tensor_index", lambda x, i: x[i], [X34, A(5, dom=index(3), dt="int64")],
  lambda x, i: x[i])
_gg1, _gg1_ref = _getitem_grad((slice(1, None), slice(None, None, 2)))
S("getitem_grad", _gg1, [A(3, 4), A(2, 2)], _gg1_ref)
_gg2, _gg2_ref = _getitem_grad((1,))
S("getitem_grad_int", _gg2, [A(3, 2), A(2)], _gg2_ref)
S("take_axis0", lambda x, i: fc.take(x, i, axis=0), [X34, A(5, dom=index(3), dt="int64")],
  lambda x, i: np.take(x, i, axis=0))
S("take_axis1_2d_idx", lambda x, i: fc.take(x, i, axis=1), [X34, A(2, 2, dom=index(4), dt="int64")],
  lambda x, i: np.take(x, i, axis=1))
S("take_flat", fc.take, [X23, A(4, dom=index(6), dt="int64")], np.take)
S("take_negative_const", lambda x: fc.take(x, [-1, 0, -1], axis=1), [X23],
  lambda x: np.take(x, [-1, 0, -1], axis=1))
S("take_decl_none", lambda x, i: fc.take(x, i, axis=0),
  [A(3, 2, decl=(None, 2)), A(4, dom=index(3), dt="int64", decl=(None,))],
  lambda x, i: np.take(x, i, axis=0))
S("take_grad_axis0", lambda x, i, g: F.apply("take_grad", [x, i, g], axis=0),
  [A(3, 2), A(4, dom=index(3), dt="int64"), A(4, 2)], _take_grad_ref(0))
S("take_grad_axis1", lambda x, i, g: F.apply("take_grad", [x, i, g], axis=1),
  [A(2, 3), A(2, 2, dom=index(3), dt="int64"), A(2, 2, 2)], _take_grad_ref(1))
S("take_grad_flat", lambda x, i, g: F.apply("take_grad", [x, i, g]),
  [A(2, 3), A(5, dom=index(6), dt="int64"), A(5)], _take_grad_ref(None))

# -- advanced (integer-array) indexing and functional updates ----------------------------------
def _added(index_of):
    """Reference of x.at[index].add(v): np.add.at on a copy (repeated indices accumulate)."""
    def ref(x, v, *arrays):
        out = x.copy()
        np.add.at(out, index_of(*arrays), v)
        return out
    return ref


def _was_set(index_of):
    def ref(x, v, *arrays):
        out = x.copy()
        out[index_of(*arrays)] = v
        return out
    return ref


I3, I4 = A(4, dom=index(3), dt="int64"), A(4, dom=index(4), dt="int64")
S("advindex_rows_cols", lambda x, i, j: x[i, j], [X34, I3, I4], lambda x, i, j: x[i, j])
S("advindex_arange_y", lambda p, y: fc.log(p)[np.arange(4), y],
  [A(4, 3, dom=pos), A(4, dom=index(3), dt="int64")], lambda p, y: np.log(p)[np.arange(4), y])
S("advindex_slice_array", lambda x, i: x[:, i], [X34, A(2, 3, dom=index(4), dt="int64")],
  lambda x, i: x[:, i])
S("advindex_apart", lambda x, i, j: x[i, :, j], [X234, A(3, dom=index(2), dt="int64"),
                                                 A(3, dom=index(4), dt="int64")],
  lambda x, i, j: x[i, :, j])
S("advindex_int_apart", lambda x, j: x[0, :, j], [X234, A(2, 2, dom=index(4), dt="int64")],
  lambda x, j: x[0, :, j])
S("advindex_int_adjacent", lambda x, j: x[:, 1, j], [X234, A(3, dom=index(4), dt="int64")],
  lambda x, j: x[:, 1, j])
S("advindex_bcast", lambda x, i, j: x[i, j], [X34, A(2, 1, dom=index(3), dt="int64"),
                                             A(3, dom=index(4), dt="int64")],
  lambda x, i, j: x[i, j])
S("advindex_negative", lambda x, i, j: x[i, j], [X34, A(5, dom=index(3, -3), dt="int64"),
                                                A(5, dom=index(4, -4), dt="int64")],
  lambda x, i, j: x[i, j])
S("advindex_ellipsis_newaxis", lambda x, i: x[None, ..., i], [X234, A(2, dom=index(4), dt="int64")],
  lambda x, i: x[None, ..., i])
S("advindex_const_lists", lambda x: x[[0, 2, 2], [-1, 0, 0]], [X34],
  lambda x: x[[0, 2, 2], [-1, 0, 0]])
S("advindex_decl_none", lambda x, i, j: x[i, j],
  [A(3, 4, decl=(None, 4)), A(5, dom=index(3), dt="int64", decl=(None,)), A(5, dom=index(4), dt="int64")],
  lambda x, i, j: x[i, j])
S("advindex_int32_f32", lambda x, i, j: x[i, j],
  [A(3, 4, dt="float32"), A(4, dom=index(3), dt="int32"), A(4, dom=index(4), dt="int32")],
  lambda x, i, j: x[i, j])
S("index_add_dups", lambda x, v, i: x.at[i].add(v), [A(3, 2), A(5, 2), A(5, dom=index(3), dt="int64")],
  _added(lambda i: i))
S("index_add_two_arrays", lambda x, v, i, j: x.at[i, j].add(v),
  [X34, A(4), I3, I4], _added(lambda i, j: (i, j)))
S("index_add_scalar_v", lambda x, v, i, j: x.at[i, j].add(v), [X34, A(), I3, I4],
  _added(lambda i, j: (i, j)))
S("index_add_apart", lambda x, v, i, j: x.at[i, :, j].add(v),
  [X234, A(3, 3), A(3, dom=index(2), dt="int64"), A(3, dom=index(4), dt="int64")],
  _added(lambda i, j: (i, slice(None), j)))
S("index_add_basic", lambda x, v: x.at[1:, 0].add(v), [X34, A(2)],
  lambda x, v: _added(lambda: (slice(1, None), 0))(x, v))
S("inc_subtensor", lambda x, v: fc.inc_subtensor(x[[0, 2, 0], [1, 1, 1]], v), [X34, A(3)],
  lambda x, v: _added(lambda: ([0, 2, 0], [1, 1, 1]))(x, v))
S("inc_subtensor_slice", lambda x, v: fc.inc_subtensor(x[:, ::2], v), [X34, A(3, 1)],
  lambda x, v: _added(lambda: (slice(None), slice(None, None, 2)))(x, v))
S("index_add_decl_none", lambda x, v, i: x.at[i].add(v),
  [A(3, 2, decl=(None, 2)), A(4, 2, decl=(None, 2)), A(4, dom=index(3), dt="int64", decl=(None,))],
  _added(lambda i: i))
S("index_add_f32", lambda x, v, i: x.at[:, i].add(v),
  [A(2, 3, dt="float32"), A(2, 4, dt="float32"), A(4, dom=index(3), dt="int64")],
  _added(lambda i: (slice(None), i)))
# Distinct indices: with repeats the last write wins and v's gradient follows g[index].
S("index_set", lambda x, v: x.at[[2, 0]].set(v), [X34, A(2, 4)],
  lambda x, v: _was_set(lambda: [2, 0])(x, v))
S("index_set_two_arrays", lambda x, v: x.at[[0, 2, 1], [3, 0, 0]].set(v), [X34, A(3)],
  lambda x, v: _was_set(lambda: ([0, 2, 1], [3, 0, 0]))(x, v))
S("index_set_tensor_idx", lambda x, v, i: x.at[:, i].set(v),
  [X34, A(3, 1), A(1, dom=index(4), dt="int64")], _was_set(lambda i: (slice(None), i)))
S("index_set_basic", lambda x, v: x.at[0].set(v), [X34, A(4)],
  lambda x, v: _was_set(lambda: 0)(x, v))
S("set_subtensor", lambda x, v: fc.set_subtensor(x[1:, 2], v), [X34, A()],
  lambda x, v: _was_set(lambda: (slice(1, None), 2))(x, v))
S("set_subtensor_take", lambda x, v: fc.set_subtensor(x[[1, 0]], v), [X34, A(2, 4)],
  lambda x, v: _was_set(lambda: [1, 0])(x, v))
S("index_set_int", lambda x, i: x.at[i].set(7), [A(5, dom=ints, dt="int64"), A(2, dom=index(5), dt="int64")],
  lambda x, i: _was_set(lambda i: i)(x, 7, i),
  grad=False)

# Shapes as values (symbolic dims) and the ops whose sizes are read at run time.
XN3 = A(5, 3, decl=(None, 3))
S("shape_of", lambda x: fc.shape(x), [A(5, 3, decl=(None, None))], lambda x: np.array(x.shape),
  grad=False)
S("dim_scale", lambda x: x * x.shape[0], [XN3], lambda x: x * x.shape[0])
S("mean_by_dim", lambda x: fc.sum(x, axis=0) / x.shape[0], [XN3], lambda x: x.sum(0) / len(x))
S("reshape_dyn_own_dim", lambda x: x.reshape((x.shape[0], -1)), [A(4, 3, 2, decl=(None, 3, 2))],
  lambda x: x.reshape(len(x), -1))
S("reshape_dyn_arg", lambda x, n: x.reshape((n, -1)), [A(6, 2), A(dom=index(4, 1), dt="int64")],
  lambda x, n: x.reshape(n, -1), value_shape=True)
S("alloc_dyn", lambda v, x: fc.alloc(v, x.shape[0], 3), [A(3), A(4, 2, decl=(None, 2))],
  lambda v, x: np.broadcast_to(v, (len(x), 3)).copy())
S("zeros_dyn", lambda x: fc.zeros((x.shape[0], 2)) + x[:, :1], [XN3],
  lambda x: np.zeros((len(x), 2)) + x[:, :1])
S("arange_dyn", lambda x: fc.arange(x.shape[0]), [XN3], lambda x: np.arange(len(x)), grad=False)
S("arange_dyn_float", lambda x: fc.arange(0.5, x.shape[0]) * x[:, 0], [XN3],
  lambda x: np.arange(0.5, len(x)) * x[:, 0])
S("slice_dyn", lambda x, i: x[i:i + 2], [A(6, 3, decl=(None, 3)), A(dom=index(4), dt="int64")],
  lambda x, i: x[i:i + 2], value_shape=True)
S("slice_dyn_step", lambda x, i: x[::i, i - 1], [A(6, 3), A(dom=index(4, 1), dt="int64")],
  lambda x, i: x[::i, i - 1], value_shape=True)
S("index_add_dyn_slice", lambda x, v, i: x.at[i:i + 2].add(v),
  [A(6, 3), A(2, 3), A(dom=index(4), dt="int64")],
  lambda x, v, i: _added(lambda i: slice(i, i + 2))(x, v, i))

# -- tensors made from Python sizes ----------------------------------------------------------------
S("arange_index", lambda x: x[fc.arange(3), fc.arange(2, -1, -1)], [X34],
  lambda x: x[np.arange(3), np.arange(2, -1, -1)])
S("arange_float_step", lambda x: x * fc.arange(0.0, 1.0, 0.25), [A(4)],
  lambda x: x * np.arange(0.0, 1.0, 0.25))
S("zeros_ones_full", lambda x: x + fc.zeros((2, 3)) + 2 * fc.ones(3) - fc.full((1, 3), 0.5),
  [X23], lambda x: x + 2 - 0.5)
S("full_int", lambda i: i + fc.full(3, 7, dtype="int64"), [A(3, dom=ints, dt="int64")],
  lambda i: i + 7, grad=False)
S("alloc_tensor", lambda v: fc.alloc(v, 2, 3), [A()], lambda v: np.broadcast_to(v, (2, 3)))
S("alloc_row", lambda v: fc.alloc(v, 4, 3), [A(3)], lambda v: np.broadcast_to(v, (4, 3)))
S("alloc_value", lambda x: x * fc.alloc(1.5, 2, 3), [X23], lambda x: x * 1.5)
S("full_tensor_value", lambda v: fc.full((2, 2), v), [A()], lambda v: np.full((2, 2), v))

# -- sorting, one_hot, tile, repeat, flatten, dimshuffle, join, specify_shape ------------------------
S("sort", fc.sort, [A(3, 4, dom=distinct)], np.sort)
S("sort_axis0", lambda x: fc.sort(x, axis=0), [A(4, 3, dom=distinct, decl=(None, 3))],
  lambda x: np.sort(x, axis=0))
S("sort_flat", lambda x: fc.sort(x, axis=None), [A(2, 3, dom=distinct)],
  lambda x: np.sort(x, axis=None))
S("sort_f32", fc.sort, [A(5, dom=distinct, dt="float32")], np.sort)
S("sort_int", fc.sort, [A(6, dom=ints, dt="int64")], np.sort, grad=False)
S("argsort", fc.argsort, [A(3, 4, dom=coarse)], lambda x: np.argsort(x, kind="stable"),
  grad=False)
S("argsort_axis0_int", lambda x: fc.argsort(x, axis=0), [A(5, 2, dom=ints, dt="int32")],
  lambda x: np.argsort(x, axis=0, kind="stable"), grad=False)
S("one_hot", lambda y: fc.one_hot(y, 4), [A(5, dom=index(4), dt="int64")],
  lambda y: np.eye(4)[y], grad=False)
S("one_hot_f32_2d", lambda y: fc.one_hot(y, 3, dtype="float32"),
  [A(2, 2, dom=index(3), dt="int32", decl=(None, 2))], lambda y: np.eye(3, dtype="float32")[y],
  grad=False)
S("tile", lambda x: fc.tile(x, (2, 3)), [X23], lambda x: np.tile(x, (2, 3)))
S("tile_more_reps", lambda x: fc.tile(x, (2, 1, 2)), [A(3)], lambda x: np.tile(x, (2, 1, 2)))
S("repeat", lambda x: fc.repeat(x, 2, axis=1), [X23], lambda x: np.repeat(x, 2, axis=1))
S("repeat_each", lambda x: fc.repeat(x, [1, 0, 3], axis=0), [A(3, 2, decl=(3, None))],
  lambda x: np.repeat(x, [1, 0, 3], axis=0))
S("repeat_flat", lambda x: fc.repeat(x, 3), [X23], lambda x: np.repeat(x, 3))
S("flatten", fc.flatten, [X234], lambda x: x.reshape(-1))
S("flatten_ndim2_decl_none", lambda x: fc.flatten(x, 2), [A(2, 3, 4, decl=(None, 3, 4))],
  lambda x: x.reshape(x.shape[0], -1))
S("dimshuffle", lambda x: fc.dimshuffle(x, 1, "x", 0), [X23],
  lambda x: x.T[:, None, :])
S("dimshuffle_drop", lambda x: fc.dimshuffle(x, ("x", 2, 0)), [A(2, 1, 3)],
  lambda x: np.transpose(x[:, 0, :])[None])
S("dimshuffle_row", lambda x: fc.dimshuffle(x, "x", 0), [A(3, decl=(None,))], lambda x: x[None])
S("join", lambda a, b: fc.join(1, a, b), [X23, A(2, 2)], lambda a, b: np.concatenate([a, b], 1))
S("specify_shape", lambda x: fc.specify_shape(x, (3, None)) * 2.0, [A(3, 2, decl=(None, None))],
  lambda x: x * 2.0)
S("specify_shape_int", lambda i: fc.specify_shape(i, (-1,)), [A(4, dom=ints, dt="int64")],
  lambda i: i, grad=False)

# -- joining ---------------------------------------------------------------------------------------
S("concatenate", lambda a, b: fc.concatenate([a, b]), [X23, A(1, 3)],
  lambda a, b: np.concatenate([a, b]))
S("concatenate_axis1", lambda a, b, c: fc.concatenate([a, b, c], axis=1),
  [X23, A(2, 2), A(2, 1)], lambda a, b, c: np.concatenate([a, b, c], axis=1))
S("concatenate_neg_axis_decl_none", lambda a, b: fc.concatenate([a, b], axis=-1),
  [A(2, 3, decl=(None, 3)), A(2, 1, decl=(None, 1))], lambda a, b: np.concatenate([a, b], -1))
S("concatenate_mixed_dtype", lambda a, b: fc.concatenate([a, b]),
  [A(2, dt="float32"), A(3)], lambda a, b: np.concatenate([a, b]))
S("concatenate_const", lambda a: fc.concatenate([a, np.ones((1, 2))]), [A(2, 2)],
  lambda a: np.concatenate([a, np.ones((1, 2))]))
S("concat_grad", lambda g, a, b: F.apply("concat_grad", [g, a, b], axis=1, index=1),
  [A(2, 5), A(2, 3), A(2, 2)], lambda g, a, b: g[:, 3:5])
S("stack", lambda a, b: fc.stack([a, b]), [A(3), A(3)], lambda a, b: np.stack([a, b]))
S("stack_axis1", lambda a, b, c: fc.stack([a, b, c], axis=1), [X23, X23, X23],
  lambda a, b, c: np.stack([a, b, c], axis=1))
S("stack_neg_axis", lambda a, b: fc.stack([a, b], axis=-1), [A(2, decl=(None,)), A(2)],
  lambda a, b: np.stack([a, b], axis=-1))

# -- edge cases: 0-d operands, unknown dims that turn out to be 1 at run time, more dtypes -------
S("sum_scalar", fc.sum, [A()], np.sum)
S("mean_scalar", lambda x: x.mean(), [A()], lambda x: x.mean())
S("softmax_1d", fc.softmax, [A(4)], _softmax)
S("stack_scalars", lambda a, b: fc.stack([a, b]), [A(), A()], lambda a, b: np.stack([a, b]))
S("concatenate_one", lambda a: fc.concatenate([a], axis=1), [X23],
  lambda a: np.concatenate([a], axis=1))
S("take_scalar_index", lambda x: fc.take(x, 1, axis=0), [X23], lambda x: np.take(x, 1, axis=0))
S("getitem_slice_decl_none", lambda x: x[1:], [A(3, 2, decl=(None, 2))], lambda x: x[1:])
S("broadcast_to_decl_none", lambda x: fc.broadcast_to(x, (2, 3)), [A(3, decl=(None,))],
  lambda x: np.broadcast_to(x, (2, 3)))
S("prod_decl_none", lambda x: fc.prod(x, axis=0), [A(3, 2, dom=away, decl=(None, 2))],
  lambda x: np.prod(x, axis=0))
# Zeros in prod's operand: its derivatives are products of the others, never prod / x.
S("prod_all_one_zero", fc.prod, [A(2, 3, dom=one_zero)], np.prod)
S("prod_all_two_zeros", fc.prod, [A(2, 3, dom=two_zeros)], np.prod)
S("prod_axis1_zero_col", lambda x: fc.prod(x, axis=1), [A(2, 3, dom=zero_col)],
  lambda x: np.prod(x, axis=1))
S("prod_axis0_zero_col", lambda x: fc.prod(x, axis=0), [A(3, 2, dom=zero_col)],
  lambda x: np.prod(x, axis=0))
S("prod_keepdims_two_zeros", lambda x: x.prod(axis=(0, 2), keepdims=True),
  [A(2, 3, 2, dom=two_zeros)], lambda x: x.prod(axis=(0, 2), keepdims=True))
S("prod_neg_axis_f32_zero_col", lambda x: fc.prod(x, axis=-1), [A(3, 3, dom=zero_col, dt="float32")],
  lambda x: np.prod(x, axis=-1))
S("prod_decl_none_zero_col", lambda x: fc.prod(x, axis=0), [A(3, 2, dom=zero_col, decl=(None, 2))],
  lambda x: np.prod(x, axis=0))


def _prod_others_ref(axis):
    """prod_others by brute force: sums over injective choices of one index per tangent."""
    def ref(x, *ts):
        axes = tuple(range(x.ndim)) if axis is None else tuple(a % x.ndim for a in axis)
        keep = [a for a in range(x.ndim) if a not in axes]
        perm = keep + list(axes)
        rest = tuple(x.shape[a] for a in keep)
        flat = [np.transpose(a, perm).reshape(rest + (-1,)) for a in (x,) + ts]
        n, out = flat[0].shape[-1], np.zeros_like(flat[0])
        for idx in np.ndindex(*rest):
            for i in range(n):
                for ks in itertools.permutations([k for k in range(n) if k != i], len(ts)):
                    term = np.prod([flat[0][idx + (k,)] for k in range(n) if k != i and k not in ks])
                    out[idx + (i,)] += term * np.prod([t[idx + (k,)] for t, k in zip(flat[1:], ks)])
        return np.transpose(out.reshape(tuple(x.shape[a] for a in perm)), np.argsort(perm))
    return ref


S("prod_others", lambda x: F.apply("prod_others", [x], axis=(1,)), [A(2, 3, dom=zero_col)],
  _prod_others_ref((1,)))
S("prod_others_tangent", lambda x, t: F.apply("prod_others", [x, t], axis=(0,)),
  [A(4, 2, dom=zero_col), A(4, 2)], _prod_others_ref((0,)))
S("prod_others_two_tangents_all", lambda x, t, u: F.apply("prod_others", [x, t, u], axis=None),
  [A(2, 3, dom=two_zeros), A(2, 3), A(2, 3)], _prod_others_ref(None))
S("logsumexp_keepdims_all", lambda x: fc.logsumexp(x, keepdims=True), [X23],
  lambda x: _lse(x, keepdims=True))
S("logsumexp_axes", lambda x: fc.logsumexp(x, axis=(0, 2)), [X234], lambda x: _lse(x, (0, 2)))
S("count_axes", lambda x: F.count(x, (0, 2)), [A(2, 3, 4, decl=(None, 3, None))],
  lambda x: np.float64(8))
S("add_runtime_bcast_known", lambda a, b: a + b, [A(1, 3, decl=(None, 3)), A(4, 3)], np.add)
S("add_runtime_bcast_unknown", lambda a, b: a * b,
  [A(1, 3, decl=(None, 3)), A(4, 3, decl=(None, 3))], np.multiply)
S("where_runtime_bcast", fc.where, [A(2, 1, dom=boolean, dt="bool"), A(1, 3, decl=(None, None)),
                                    A(2, 3, decl=(None, 3))], np.where)
S("sum_int32", lambda x: x.sum(axis=0), [A(3, 2, dom=ints, dt="int32")],
  lambda x: x.sum(axis=0), grad=False)
S("cast_bool", lambda x: fc.cast(x, "bool"), [A(5, dom=coarse)], lambda x: x.astype(bool),
  grad=False)
S("matmul_int", lambda a, b: a @ b, [A(2, 3, dom=ints, dt="int64"), A(3, dom=ints, dt="int64")],
  np.matmul, grad=False)
S("matmul_f32_f64", fc.matmul, [A(2, 3, dt="float32"), A(3, 2)], np.matmul)
S("maximum_int_float", fc.maximum, [A(3, dom=ints, dt="int64"), A(3, dom=grid_a)], np.maximum)
S("clip_int_weak_float", lambda x: fc.clip(x, 0.5, 1.5), [A(5, dom=ints, dt="int64")],
  lambda x: np.clip(x, 0.5, 1.5), grad=False)
S("where_int_f32", fc.where, [A(3, dom=boolean, dt="bool"), A(3, dom=ints, dt="int64"),
                              A(3, dt="float32")], np.where)
S("rsub_array", lambda x: np.ones(3) - x, [A(2, 3)], lambda x: np.ones(3) - x)
S("less_int_float", lambda i, x: i < x, [A(4, dom=ints, dt="int64"), A(4, dom=coarse)],
  np.less, grad=False)

# -- linear algebra, selection and differentiation steering ---------------------------------------
def wellcond(rng, shape):
    # A random matrix plus n on the diagonal: far from singular, so solves are accurate.
    n = shape[-1]
    return rng.uniform(-1.0, 1.0, shape) + n * np.eye(n)


def _put_along_ref(x, i, g):
    out = np.zeros_like(x)
    rows = np.arange(x.shape[0])[:, None]
    np.add.at(out, (np.broadcast_to(rows, i.shape), i), g)
    return out


X33 = A(3, 3, dom=wellcond)
S("solve_vec", fc.solve, [X33, A(3)], np.linalg.solve)
S("solve_mat", fc.solve, [X33, A(3, 2)], np.linalg.solve)
S("solve_batched", fc.solve, [A(2, 3, 3, dom=wellcond), A(2, 3, 2)], np.linalg.solve)
S("solve_batched_shared_b", fc.solve, [A(2, 3, 3, dom=wellcond), A(3, 1)], np.linalg.solve)
S("inv", fc.inv, [X33], np.linalg.inv)
S("inv_batched", fc.inv, [A(2, 3, 3, dom=wellcond)], np.linalg.inv)
S("slogdet_logabsdet", lambda a: fc.slogdet(a)[1], [X33], lambda a: np.linalg.slogdet(a)[1])
S("slogdet_batched", lambda a: fc.slogdet(a)[1], [A(2, 3, 3, dom=wellcond)],
  lambda a: np.linalg.slogdet(a)[1])
S("slogdet_sign", lambda a: fc.slogdet(a)[0], [A(3, 3)], lambda a: np.linalg.slogdet(a)[0],
  grad=False, zero_grad=True)
S("eye_plus", lambda x: x + fc.eye(3), [A(3, 3)], lambda x: x + np.eye(3))
S("diag_embed", fc.diag, [A(3)], np.diag)
S("diag_embed_k", lambda v: fc.diag(v, 1), [A(3)], lambda v: np.diag(v, 1))
S("diag_part", fc.diag, [A(3, 4)], np.diag)
S("diag_part_k", lambda x: fc.diag(x, -1), [A(3, 4)], lambda x: np.diag(x, -1))
S("diag_part_grad", lambda x, g: F.apply("diag_part_grad", [x, g], k=1), [A(3, 4), A(3)],
  lambda x, g: np.pad(np.diag(g, 1), ((0, 0), (0, 0)))[:3, :4])
S("outer", fc.outer, [A(3), A(2)], np.outer)
S("trace", fc.trace, [A(3, 3)], np.trace)
S("norm_vec", fc.norm, [A(4, dom=away)], np.linalg.norm)
S("norm_fro", lambda x: fc.norm(x, "fro"), [A(3, 4, dom=away)], lambda x: np.linalg.norm(x, "fro"))
S("norm_axis_keepdims", lambda x: fc.norm(x, axis=1, keepdims=True), [A(3, 4, dom=away)],
  lambda x: np.linalg.norm(x, axis=1, keepdims=True))
# NumPy's norm overflows to inf here; flowc scales by the largest entry first.
S("norm_huge", fc.norm, [A(3, dom=lambda r, s: r.uniform(1e200, 2e200, s))],
  lambda x: np.abs(x).max() * np.linalg.norm(x / np.abs(x).max()))
S("norm_ord1", lambda x: fc.norm(x, 1), [A(4, dom=away)], lambda x: np.linalg.norm(x, 1))
# Shifted so no two |x| tie (distinct() alone is symmetric around 0).
S("norm_inf", lambda x: fc.norm(x, np.inf), [A(4, dom=lambda r, s: distinct(r, s) + 0.1)],
  lambda x: np.linalg.norm(x, np.inf))
S("topk_values", lambda x: fc.topk(x, 2)[0], [A(3, 5, dom=distinct)],
  lambda x: -np.sort(-x, axis=-1)[:, :2])
S("topk_smallest_axis0", lambda x: fc.topk(x, 2, axis=0, largest=False)[0],
  [A(4, 3, dom=distinct)], lambda x: np.sort(x, axis=0)[:2])
S("topk_indices", lambda x: fc.topk(x, 2)[1], [A(3, 5, dom=coarse)],
  lambda x: np.argsort(-x, axis=-1, kind="stable")[:, :2], grad=False)
S("take_along_axis", lambda x, i: fc.take_along_axis(x, i, 1),
  [A(2, 4), A(2, 3, dom=index(4), dt="int64")], lambda x, i: np.take_along_axis(x, i, 1))
S("take_along_axis_bcast_idx", lambda x, i: fc.take_along_axis(x, i, 0),
  [A(3, 4), A(2, 1, dom=index(3), dt="int64")], lambda x, i: np.take_along_axis(x, i, 0))
S("put_along_axis_grad", lambda x, i, g: F.apply("put_along_axis_grad", [x, i, g], axis=1),
  [A(2, 4), A(2, 3, dom=index(4), dt="int64"), A(2, 3)], _put_along_ref)
S("stop_gradient_value", lambda x: fc.stop_gradient(x) * 2.0, [X23], lambda x: x * 2.0,
  grad=False, zero_grad=True)
S("custom_vjp_value", lambda x: fc.custom_vjp(fc.tanh, lambda xs, y, g: [g * (1 - y * y)])(x),
  [X23], np.tanh)
S("basis", lambda x: F.apply("basis", [x]), [A(2, 2)], lambda x: np.eye(4).reshape(4, 2, 2),
  grad=False, zero_grad=True)


# -- fused groups (made by the O2 fuse pass; built directly here) ------------------------------
_EXPR = ("add", (), (("mul", (), (("arg", 0), ("arg", 1))),
                     ("tanh", (), (("mul", (), (("arg", 0), ("const", 2.0, "float64"))),))))


def _expr_ref(a, b):
    return a * b + np.tanh(a * 2.0)


S("fused", lambda a, b: F.apply("fused", [a, b], expr=_EXPR), [X23, A(3)], _expr_ref,
  compiled_only=True)
S("fused_big", lambda a, b: F.apply("fused", [a, b], expr=_EXPR),
  [A(700, 300, decl=(None, 300)), A(300)], _expr_ref, compiled_only=True)
S("fused_reduce_sum", lambda a, b: F.apply("fused_reduce", [a, b], expr=_EXPR, reduce="sum"),
  [X23, A(3)], lambda a, b: np.sum(_expr_ref(a, b)), compiled_only=True)
S("fused_reduce_big_rows", lambda a, b: F.apply("fused_reduce", [a, b], expr=_EXPR,
                                                reduce="max", axis=(1,), keepdims=True),
  [A(700, 300), A(300)], lambda a, b: np.max(_expr_ref(a, b), axis=1, keepdims=True),
  compiled_only=True)
S("fused_reduce_big_mean", lambda a, b: F.apply("fused_reduce", [a, b], expr=_EXPR,
                                                reduce="mean", axis=(0,)),
  [A(700, 300), A(300)], lambda a, b: np.mean(_expr_ref(a, b), axis=0), compiled_only=True)
_EXPR32 = ("add", (), (("mul", (), (("arg", 0), ("arg", 1))),
                       ("tanh", (), (("mul", (), (("arg", 0), ("const", 2.0, "float32"))),))))
S("fused_reduce_big_all_f32", lambda a, b: F.apply("fused_reduce", [a, b], expr=_EXPR32,
                                                   reduce="sum"),
  [A(700, 300, dt="float32"), A(300, dt="float32")], lambda a, b: np.sum(_expr_ref(a, b)),
  compiled_only=True, rtol=1e-4, atol=1e-3)


# -- gemm (made by the O2 specialize pass; built directly here) ---------------------------------
S("gemm_bias", lambda a, b, c: F.apply("gemm", [a, b, c]), [A(4, 3, decl=(None, 3)), A(3, 5), A(5)],
  lambda a, b, c: a @ b + c, compiled_only=True)
S("gemm_update_transposed", lambda a, b, c: F.apply("gemm", [fc.transpose(a), b, c], alpha=-0.1),
  [A(4, 3), A(4, 5), A(3, 5)], lambda a, b, c: c - 0.1 * (a.T @ b), compiled_only=True)
S("gemm_beta_f32", lambda a, b, c: F.apply("gemm", [a, fc.transpose(b), c], alpha=2.0, beta=-0.5),
  [A(6, 4, dt="float32"), A(5, 4, dt="float32"), A(6, 1, dt="float32")],
  lambda a, b, c: 2 * (a @ b.T) - 0.5 * c, compiled_only=True, rtol=1e-5, atol=1e-5)


# -- data-parallel exchange (made by the data_parallel pass; one process: the identity) ---------
S("grad_pack_two", lambda a, b: F.apply("grad_pack", [a, fc.transpose(b)]), [A(2, 3), A(4, 2)],
  lambda a, b: np.concatenate([a.ravel(), b.T.ravel()]), compiled_only=True)
S("grad_unpack_reduced", lambda a, b: F.apply("grad_unpack", [F.apply("allreduce", [
    F.apply("grad_pack", [a, b])], op="mean")], offset=6, shape=(2, 2)), [A(2, 3), A(2, 2)],
  lambda a, b: b, compiled_only=True)


# -- random numbers (reference: the same SplitMix64 counter hash written out in NumPy) ----------
def _splitmix_ref(like, state, stream=0):
    mask = (1 << 64) - 1

    def mix(z):
        z ^= z >> 30
        z = (z * 0xBF58476D1CE4E5B9) & mask
        z ^= z >> 27
        z = (z * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)
    golden = 0x9E3779B97F4A7C15
    base = mix(int(state[0] * 2.0 ** 53) ^ mix(int(state[1]) ^ mix((stream + golden) & mask)))
    words = [mix((base + i * golden) & mask) for i in range(1, like.size + 1)]
    return (np.array([w >> 11 for w in words], dtype=np.float64) * 2.0 ** -53).reshape(like.shape)


S("random_uniform", lambda x, s: F.apply("random_uniform", [x, s], stream=3), [
    A(4, 3, decl=(None, 3)), A(2, dom=lambda r, s: np.array([r.random(), r.integers(0, 9)]))],
  lambda x, s: _splitmix_ref(x, s, 3), grad=False, zero_grad=True)
S("random_check", lambda p: F.apply("random_check", [p], what="p"),
  [A(3, 4, decl=(None, 4), dom=lambda r, s: r.random(s))], lambda p: p, grad=False,
  zero_grad=True)


# -- compositions users write (cross-op dtype and broadcasting paths) ------------------------------
S("logreg_cost", lambda x, w, y: fc.mean(-y * fc.log(fc.sigmoid(x @ w))
                                         - (1 - y) * fc.log(1 - fc.sigmoid(x @ w))),
  [A(4, 3, decl=(None, 3)), A(3), A(4, dom=lambda r, s: r.integers(0, 2, s), decl=(None,))],
  lambda x, w, y: np.mean(-y * np.log(_sigmoid(x @ w)) - (1 - y) * np.log(1 - _sigmoid(x @ w))))
S("softmax_xent", lambda z, t: -fc.mean(fc.sum(t * fc.log_softmax(z), axis=1)),
  [A(3, 4), A(3, 4, dom=pos)], lambda z, t: -np.mean(np.sum(t * np.log(_softmax(z)), axis=1)))


# Loops: scan's final carry and stacked ys, reverse, several carries, fori_loop, and the
# select that a loop's jvp makes; references unroll the loop in NumPy.
def _rnn_ref(x, h, w):
    hs = []
    for t in range(len(x)):
        h = np.tanh(x[t] @ w + h)
        hs.append(h)
    return h, np.array(hs)


def _rnn(x, h, w, reverse=False):
    return fc.scan(lambda c, xt: (fc.tanh(xt @ w + c),) * 2, h, x, reverse=reverse)


S("scan_ys", lambda x, h, w: _rnn(x, h, w)[1], [A(4, 3), A(2), A(3, 2)],
  lambda x, h, w: _rnn_ref(x, h, w)[1])
S("scan_final", lambda x, h, w: _rnn(x, h, w)[0], [A(3, 2, 3, decl=(None, 2, 3)), A(2, 2), A(3, 2)],
  lambda x, h, w: _rnn_ref(x, h, w)[0])
S("scan_reverse", lambda x, h, w: _rnn(x, h, w, True)[1], [A(3, 3), A(2), A(3, 2)],
  lambda x, h, w: _rnn_ref(x[::-1], h, w)[1][::-1])
S("scan_two_carries", lambda x, a: fc.scan(lambda c, xt: ((c[0] * xt + c[1], c[1] - xt), c[0]),
                                           (a, a * 2.0), x)[1] * 1.0,
  [A(4, 2), A(2)], lambda x, a: _two_carries_ref(x, a))
S("fori_loop", lambda a, b: fc.fori_loop(0, 3, lambda i, c: fc.sin(c) * b + fc.cast(i, c.dtype),
                                         a), [A(3), A(3)], lambda a, b: _fori_ref(a, b))
S("select_jvp_of_scan", lambda x, t, w: fc.jvp(_rnn(x, fc.zeros((2,)), w)[1], x, t),
  [A(3, 3), A(3, 3), A(3, 2)], lambda x, t, w: _rnn_jvp_ref(x, t, w),
  rtol=1e-6, atol=1e-8)  # the reference is a central difference

S("cond_true", lambda x, w: fc.cond(fc.sum(x) > -100.0, lambda a: fc.sin(a) * w, lambda a: a * a, x),
  [A(3), A(3)], lambda x, w: np.sin(x) * w)
S("cond_false", lambda x, w: fc.cond(fc.sum(x) > 100.0, lambda a: fc.sin(a) * w, lambda a: a * a, x),
  [A(3), A(3)], lambda x, w: x * x)


def _two_carries_ref(x, a):
    c0, c1, ys = a, a * 2.0, []
    for t in range(len(x)):
        ys.append(c0)
        c0, c1 = c0 * x[t] + c1, c1 - x[t]
    return np.array(ys)


def _fori_ref(a, b):
    c = a
    for i in range(3):
        c = np.sin(c) * b + i
    return c


def _rnn_jvp_ref(x, t, w):
    e = 1e-7
    hp = _rnn_ref(x + e * t, np.zeros(2), w)[1]
    hm = _rnn_ref(x - e * t, np.zeros(2), w)[1]
    return (hp - hm) / (2 * e)

def conv_ref(x, w, stride, pad, dilation, lhs_dilation, groups, flip):
    """y = conv(x, w) by the definition, one output element at a time (float64)."""
    nd = x.ndim - 2
    N, C = x.shape[:2]; O = w.shape[0]; K = w.shape[2:]
    S = x.shape[2:]
    Hu = [(h-1)*u+1 for h,u in zip(S, lhs_dilation)]
    xd = np.zeros((N, C) + tuple(Hu)); xd[(slice(None),)*2 + tuple(slice(None,None,u) for u in lhs_dilation)] = x
    osz = [(hu + lo + hi - d*(k-1) - 1)//s + 1 for hu,(lo,hi),d,k,s in zip(Hu, pad, dilation, K, stride)]
    y = np.zeros((N, O) + tuple(osz))
    Cg, Og = C // groups, O // groups
    for n in range(N):
        for o in range(O):
            gr = o // Og
            for p in itertools.product(*map(range, osz)):
                acc = 0.0
                for c in range(Cg):
                    for i in itertools.product(*map(range, K)):
                        pos = [pp*s + ii*d - lo for pp,s,ii,d,(lo,hi) in zip(p, stride, i, dilation, pad)]
                        if all(0 <= q < hu for q,hu in zip(pos, Hu)):
                            wi = tuple(k-1-ii for ii,k in zip(i,K)) if flip else i
                            acc += w[(o, c) + wi] * xd[(n, gr*Cg + c) + tuple(pos)]
                y[(n, o) + p] = acc
    return y


def _conv_row(name, xs, ws, **a):
    """A conv row: fc.conv with attrs a, against the loop reference."""
    nd = len(ws) - 2
    full = dict(stride=(1,) * nd, pad=((0, 0),) * nd, dilation=(1,) * nd,
                lhs_dilation=(1,) * nd, groups=1, flip=False)
    full.update(a)
    S(name, lambda x, w: fc.conv(x, w, stride=full["stride"], padding=full["pad"],
                                 dilation=full["dilation"], groups=full["groups"],
                                 lhs_dilation=full["lhs_dilation"], flip=full["flip"]),
      [A(*xs), A(*ws)], lambda x, w: conv_ref(x, w, **full))


_conv_row("conv1d_input_dilated_flipped", (2, 3, 5), (2, 3, 3), lhs_dilation=(2,), flip=True,
          pad=((1, 2),))
_conv_row("conv2d_strided_grouped", (2, 4, 7, 6), (6, 2, 3, 2), stride=(2, 1),
          pad=((1, 0), (2, -1)), dilation=(1, 2), groups=2)
_conv_row("conv2d_depthwise", (1, 3, 5, 5), (3, 1, 3, 3), groups=3, pad=((1, 1), (1, 1)))
_conv_row("conv3d", (1, 2, 4, 3, 3), (2, 2, 2, 2, 2), stride=(1, 2, 1), pad=((0, 1),) * 3)
S("conv2d_batch_unknown", lambda x, w: fc.conv2d(x, w, padding=1),
  [A(2, 2, 4, 4, decl=(None, 2, 4, 4)), A(3, 2, 3, 3)],
  lambda x, w: conv_ref(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), (1, 1), 1, False))


# -- conv's O2 lowerings (conv_bias by the specialize pass; im2col, conv_cols, conv_wgrad by
# share_conv_columns; built directly here) ------------------------------------------------------
_G2 = dict(stride=(2, 1), pad=((1, 0), (0, 2)), dilation=(1, 2), lhs_dilation=(1, 1))
S("conv_bias_strided_flipped", lambda x, w, b: F.apply("conv_bias", [x, w, b], groups=1,
                                                        flip=True, **_G2),
  [A(2, 3, 7, 6), A(4, 3, 3, 2), A(1, 4, 1, 1)],
  lambda x, w, b: conv_ref(x, w, groups=1, flip=True, **_G2) + b, compiled_only=True)
S("conv_bias_grouped_f32", lambda x, w, b: F.apply("conv_bias", [x, w, b], groups=2,
                                                    stride=(1, 1), pad=((1, 1), (1, 1)),
                                                    dilation=(1, 1), lhs_dilation=(2, 1)),
  [A(2, 4, 4, 5, dt="float32"), A(6, 2, 3, 3, dt="float32"), A(6, 1, 1, dt="float32")],
  lambda x, w, b: (conv_ref(x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), (2, 1), 2, False)
                   + b).astype("float32"), compiled_only=True, rtol=1e-5, atol=1e-5)


def im2col_ref(x, kernel, stride, pad, dilation, lhs_dilation):
    """cols[(n, *p), (c, *k)] = x~[n, c, p * s + k * d] by loops (x~: x dilated, padded)."""
    nd = x.ndim - 2
    shape = tuple((h - 1) * u + 1 for h, u in zip(x.shape[2:], lhs_dilation))
    xd = np.zeros(x.shape[:2] + shape)
    xd[(slice(None), slice(None)) + tuple(slice(None, None, u) for u in lhs_dilation)] = x
    xp = np.pad(xd, ((0, 0), (0, 0)) + tuple((max(a, 0), max(b, 0)) for a, b in pad))
    xp = xp[(slice(None), slice(None)) + tuple(
        slice(max(-a, 0), xp.shape[2 + i] - max(-b, 0)) for i, (a, b) in enumerate(pad))]
    osz = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
           for i in range(nd)]
    rows = []
    for n in range(x.shape[0]):
        for p in np.ndindex(*osz):
            rows.append([xp[(n, c) + tuple(pi * s + ki * d for pi, ki, s, d in
                                           zip(p, k, stride, dilation))]
                         for c in range(x.shape[1]) for k in np.ndindex(*kernel)])
    return np.array(rows).reshape(x.shape[0] * int(np.prod(osz)), -1)


S("im2col_strided_dilated_padded", lambda x: F.apply("im2col", [x], kernel=(3, 2), **_G2),
  [A(2, 3, 7, 6)], lambda x: im2col_ref(x, (3, 2), **_G2), compiled_only=True)
S("im2col_input_dilated_cropped", lambda x: F.apply(
    "im2col", [x], kernel=(2,), stride=(1,), pad=((-1, 2),), dilation=(1,),
    lhs_dilation=(2,)),
  [A(2, 2, 5)], lambda x: im2col_ref(x, (2,), (1,), ((-1, 2),), (1,), (2,)),
  compiled_only=True)
S("conv_cols_bias_flipped", lambda c, w, b: F.apply("conv_cols", [c, w, b], spatial=(2, 3),
                                                    flip=True),
  [A(2 * 6, 3 * 4), A(5, 3, 2, 2), A(5, 1, 1)],
  lambda c, w, b: np.moveaxis((c @ w[:, :, ::-1, ::-1].reshape(5, -1).T).reshape(
      2, 2, 3, 5), -1, 1) + b, compiled_only=True)
S("conv_wgrad", lambda c, g: F.apply("conv_wgrad", [c, g], kernel=(3, 2)),
  [A(2 * 4, 3 * 6), A(5, 2, 2, 2)],
  lambda c, g: np.swapaxes((g.reshape(5, -1) @ c).reshape(5, 3, 3, 2), 0, 1),
  compiled_only=True)



def max_pool_ref(x, k, s, p, ceil):
    """Each window's maximum by loops (PyTorch's geometry; padding never wins)."""
    S = x.shape[2:]
    sizes = []
    for h, kk, ss, pp in zip(S, k, s, p):
        span = h + 2 * pp - kk
        o = (-(-span // ss) if ceil else span // ss) + 1
        sizes.append(o - 1 if ceil and (o - 1) * ss >= h + pp else o)
    out = np.empty(x.shape[:2] + tuple(sizes))
    for idx in itertools.product(*map(range, sizes)):
        sl = tuple(slice(max(i * ss - pp, 0), min(i * ss - pp + kk, h))
                   for i, ss, pp, kk, h in zip(idx, s, p, k, S))
        out[(slice(None), slice(None)) + idx] = x[(slice(None), slice(None)) + sl].max(
            axis=tuple(range(2, x.ndim)))
    return out


S("max_pool2d_strided_padded", lambda x: fc.max_pool2d(x, (3, 2), (2, 1), (1, 1)),
  [A(2, 3, 6, 5)], lambda x: max_pool_ref(x, (3, 2), (2, 1), (1, 1), False))
S("max_pool2d_ceil_overlapping", lambda x: fc.max_pool2d(x, 3, 2, 1, ceil_mode=True),
  [A(1, 2, 6, 6)], lambda x: max_pool_ref(x, (3, 3), (2, 2), (1, 1), True))
S("max_pool1d_batch_unknown", lambda x: fc.max_pool1d(x, 2),
  [A(3, 2, 7, decl=(None, 2, 7))], lambda x: max_pool_ref(x, (2,), (2,), (0,), False))

BY_NAME = {s.name: s for s in SAMPLES}
assert len(BY_NAME) == len(SAMPLES), "two op samples share a name"
