"""The public op functions (flowc.exp, flowc.sum, ...): thin, checked calls of the builder."""
from __future__ import annotations

import builtins

import numpy as np

from ..ir.errors import ShapeError
from ..ir.tensor import Tensor
from ..ir.types import TensorType
from .api_index import parse_index
from .api_shape import has_tensor, reshape_sizes, shape, shape_tuple  # noqa: F401
from .build import apply, as_tensor, axis_tuple, constant, op_axes, op_error  # noqa: F401

_bmax, _bmin, _babs = builtins.max, builtins.min, builtins.abs


def _pair(a, b):
    if isinstance(a, Tensor):
        return a, as_tensor(b, like=a)
    b = as_tensor(b)
    return as_tensor(a, like=b), b


def _bin(op):
    def f(a, b):
        a, b = _pair(a, b)
        return apply(op, [a, b])
    f.__name__ = op
    f.__doc__ = f"Elementwise {op} with NumPy broadcasting."
    return f


def _un(op, doc):
    def f(x):
        return apply(op, [as_tensor(x)])
    f.__name__ = op
    f.__doc__ = doc
    return f


add, sub, mul, div, pow = _bin("add"), _bin("sub"), _bin("mul"), _bin("div"), _bin("pow")
maximum, minimum = _bin("maximum"), _bin("minimum")
floor_divide, mod = _bin("floor_divide"), _bin("mod")
remainder = mod
less, less_equal, greater, greater_equal = (_bin("less"), _bin("less_equal"), _bin("greater"),
                                            _bin("greater_equal"))
equal, not_equal = _bin("equal"), _bin("not_equal")
subtract, multiply, divide, true_divide, power = sub, mul, div, div, pow

neg = _un("neg", "Elementwise negation.")
exp = _un("exp", "Elementwise e**x.")
log = _un("log", "Elementwise natural logarithm.")
log1p = _un("log1p", "Elementwise log(1 + x), exact for small x.")
expm1 = _un("expm1", "Elementwise exp(x) - 1, exact for small x.")
sqrt = _un("sqrt", "Elementwise square root.")
square = _un("square", "Elementwise x * x.")
abs = _un("abs", "Elementwise |x|.")
sign = _un("sign", "Elementwise sign: -1, 0 or 1.")
tanh = _un("tanh", "Elementwise hyperbolic tangent.")
sigmoid = _un("sigmoid", "Elementwise logistic function 1 / (1 + exp(-x)), stable.")
relu = _un("relu", "Elementwise max(x, 0).")
softplus = _un("softplus", "Elementwise log(1 + exp(x)), stable.")
sin = _un("sin", "Elementwise sine.")
cos = _un("cos", "Elementwise cosine.")
zeros_like = _un("zeros_like", "Zeros with x's shape and dtype.")
ones_like = _un("ones_like", "Ones with x's shape and dtype.")
floor = _un("floor", "Elementwise floor (largest integer <= x).")
ceil = _un("ceil", "Elementwise ceiling (smallest integer >= x).")
round = _un("round", "Elementwise nearest integer, halves to even (as np.round).")
xlogx = _un("xlogx", "Elementwise x * log(x), 0 at x = 0.")
negative = neg


def cast(x, dtype):
    """x converted to `dtype`."""
    x = as_tensor(x)
    dtype = np.dtype(dtype).name
    return x if x.dtype == dtype else apply("cast", [x], dtype=dtype)


def where(cond, a, b):
    """Elementwise `a if cond else b`."""
    cond = as_tensor(cond)
    if isinstance(a, Tensor) or not isinstance(b, Tensor):
        a = as_tensor(a, like=cond if not isinstance(a, Tensor) else None)
        b = as_tensor(b, like=a)
    else:
        a = as_tensor(a, like=b)
    return apply("where", [cond, a, b])


switch = where


def clip(x, lo, hi):
    """x limited to [lo, hi] elementwise."""
    x = as_tensor(x)
    return apply("clip", [x, as_tensor(lo, like=x), as_tensor(hi, like=x)])


# -- reductions ------------------------------------------------------------------------------
def _red(op, doc):
    def f(x, axis=None, keepdims=False):
        x = as_tensor(x)
        ax = None if axis is None else op_axes(op, x, axis)
        return apply(op, [x], axis=ax, keepdims=bool(keepdims))
    f.__name__ = op
    f.__doc__ = doc
    return f


sum = _red("sum", "Sum over `axis` (all axes if None).")
mean = _red("mean", "Mean over `axis` (all axes if None).")
max = _red("max", "Largest element over `axis`.")
min = _red("min", "Smallest element over `axis`.")
prod = _red("prod", "Product over `axis`.")
logsumexp = _red("logsumexp", "log(sum(exp(x))) over `axis`, computed stably.")


def argmax(x, axis=None, keepdims=False):
    """Index of the largest element along `axis` (of the flattened tensor if None)."""
    x = as_tensor(x)
    return apply("argmax", [x], axis=None if axis is None else op_axes("argmax", x, axis, one=True),
                 keepdims=bool(keepdims))


def argmin(x, axis=None, keepdims=False):
    """Index of the smallest element along `axis` (of the flattened tensor if None)."""
    x = as_tensor(x)
    return apply("argmin", [x], axis=None if axis is None else op_axes("argmin", x, axis, one=True),
                 keepdims=bool(keepdims))


def count(x, axis=None, dtype="float64"):
    """Number of elements of x over `axis`, as a scalar (shapes are read at run time)."""
    x = as_tensor(x)
    ax = None if axis is None else op_axes("count", x, axis)
    known = [x.type.shape[i] for i in (ax if ax is not None else range(x.ndim))]
    if None not in known:
        return constant(int(np.prod(known)), dtype=dtype, graph=x.graph)
    return apply("count", [x], axis=ax, dtype=np.dtype(dtype).name)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`, computed stably."""
    x = as_tensor(x)
    return apply("softmax", [x], axis=op_axes("softmax", x, axis, one=True))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along `axis`, computed stably."""
    x = as_tensor(x)
    return apply("log_softmax", [x], axis=op_axes("log_softmax", x, axis, one=True))


# -- linear algebra ----------------------------------------------------------------------------
def matmul(a, b):
    """Matrix product with NumPy's matmul rules."""
    a, b = _pair(a, b)
    return apply("matmul", [a, b])


def dot(a, b):
    """np.dot for tensors of up to two dimensions (scalars multiply)."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        return mul(a, b)
    if a.ndim > 2 or b.ndim > 2:
        raise op_error("dot", [a, b], f"dot of {a.ndim}-D and {b.ndim}-D tensors is not "
                       "supported; use matmul (batched) or reshape first")
    return matmul(a, b)


# -- shapes --------------------------------------------------------------------------------------
def reshape(x, shape):
    """x with a new shape (one dimension may be -1; sizes may be integer scalar tensors)."""
    x = as_tensor(x)
    if has_tensor(shape):
        return reshape_sizes(x, shape)
    return apply("reshape", [x], shape=_shape_arg("reshape", x, shape))


def reshape_like(x, like):
    """x reshaped to the (run-time) shape of `like`."""
    return apply("reshape_like", [as_tensor(x), like])


def transpose(x, axes=None):
    """Permute the axes of x (reverse them when axes is None)."""
    x = as_tensor(x)
    if axes is not None:
        axes = axis_tuple(axes)
        bad = [a for a in axes if not -x.ndim <= a < x.ndim]
        if bad or len(axes) != x.ndim:
            raise op_error("transpose", [x], f"axes {axes} are not a permutation of "
                           f"{x.ndim} axes")
        axes = tuple(a % x.ndim for a in axes)
    if x.ndim < 2 and axes is None:
        return x
    return apply("transpose", [x], axes=axes)


def expand_dims(x, axis):
    """x with new axes of size 1 at `axis`."""
    x = as_tensor(x)
    try:
        n = len(axis_tuple(axis))
    except ShapeError as e:
        raise op_error("expand_dims", [x], str(e)) from None
    return apply("expand_dims", [x], axis=op_axes("expand_dims", x, axis, x.ndim + n))


def squeeze(x, axis=None):
    """x without the axes of size 1 (all statically known ones if axis is None)."""
    x = as_tensor(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.type.shape) if d == 1)
    else:
        axes = op_axes("squeeze", x, axis)
    return apply("squeeze", [x], axis=axes) if axes else x


def broadcast_to(x, shape):
    """x viewed with the larger `shape` (NumPy broadcasting); sizes read at run time make
    a copy (alloc)."""
    x = as_tensor(x)
    if has_tensor(shape):
        from .api_make import alloc
        return alloc(x, *shape)
    return apply("broadcast_to", [x], shape=_shape_arg("broadcast_to", x, shape))


def _shape_arg(op, x, shape):
    """A shape argument (an int or a sequence of ints) as a tuple, or an error naming op."""
    try:
        return axis_tuple(shape)
    except ShapeError:
        raise op_error(op, [x], f"shape must be an integer or a tuple of integers, got "
                       f"{shape!r}") from None


def broadcast_like(x, like):
    """x broadcast to the (run-time) shape of `like`."""
    x = as_tensor(x)
    if x.type.shape == like.type.shape and None not in x.type.shape:
        return x
    return apply("broadcast_like", [x, like])


def unbroadcast(g, x):
    """Sum a cotangent g back to the shape of x (undo broadcasting)."""
    lead = g.ndim - x.ndim
    if lead < 0:
        raise ShapeError(f"cannot sum {g.type.short()} back to {x.type.short()}")
    if lead:
        g = sum(g, tuple(range(lead)))
    ones = tuple(i for i, (xd, gd) in enumerate(zip(x.type.shape, g.type.shape)) if xd == 1 and gd != 1)
    if ones:
        g = sum(g, ones, keepdims=True)
    # An unknown dim of x may be 1 at run time where g's is not (x was broadcast): only the
    # run time can tell, so sum_like decides then (and costs a shape compare when it did not).
    if any(xd is None and gd != 1 for xd, gd in zip(x.type.shape, g.type.shape)):
        g = sum_like(g, x)
    return g


def sum_like(g, like):
    """g summed down to the (run-time) shape of `like`, undoing NumPy broadcasting."""
    return apply("sum_like", [as_tensor(g), like])


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise op_error("concatenate", [], "needs at least one tensor")
    first = next((t for t in tensors if isinstance(t, Tensor)), None)
    ts = [as_tensor(t, like=first) for t in tensors]
    return apply("concatenate", ts, axis=op_axes("concatenate", ts[0], axis, one=True))


def stack(tensors, axis=0):
    """Join tensors along a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise op_error("stack", [], "needs at least one tensor")
    ax = op_axes("stack", tensors[0], axis, tensors[0].ndim + 1, one=True)
    return concatenate([expand_dims(t, ax) for t in tensors], ax)


def take(x, indices, axis=None):
    """Elements of x at integer `indices` along `axis` (of the flattened x if None)."""
    x = as_tensor(x)
    # Indices keep their own (integer) dtype: a weak scalar would take x's float dtype.
    idx = indices if isinstance(indices, Tensor) else constant(np.asarray(indices), graph=x.graph)
    ax = None if axis is None else op_axes("take", x, axis, one=True)
    return apply("take", [x, idx], axis=ax)


def getitem(x, index):
    """x[index] for basic slices, integers, None and Ellipsis; integer arrays (NumPy advanced
    indexing) go to take (one array) or advindex."""
    idx = index if isinstance(index, tuple) else (index,)
    if len(idx) == 1 and isinstance(idx[0], (Tensor, list, np.ndarray)):
        return take(x, idx[0], axis=0)
    items, operands = parse_index(x, idx)
    if operands:  # integer arrays, integer scalar tensors, slice bounds read at run time
        return apply("advindex", [x] + operands, index=items)
    return apply("getitem", [x], index=items)
