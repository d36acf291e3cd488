"""theano.tensor (T): typed inputs, the math, gradients and nnet, mapped onto flowc."""
from __future__ import annotations

from ... import leaves as _leaves
from ...autodiff.reverse import grad as _grad
from ...ir.types import TensorType as _FlowcType
from ...ops import api as F
from . import extra_ops, nnet, shared_randomstreams, signal, xlogx  # noqa: F401
from ..config import config
from ..unsupported import unsupported
from .basic import *  # noqa: F401,F403  (the vocabulary: arange, join, set_subtensor, ...)

# -- typed inputs -------------------------------------------------------------------------------
# T.dscalar, T.fmatrix, ... are type objects (x.type is T.dscalar; T.dscalar("x") makes an
# input); T.scalar, T.matrix, ... are functions whose dtype defaults to config.floatX.
_RANKS = {"scalar": (), "vector": (None,), "matrix": (None, None), "row": (1, None),
          "col": (None, 1), "tensor3": (None, None, None), "tensor4": (None,) * 4}
_PREFIX = {"d": "float64", "f": "float32", "i": "int32", "l": "int64", "b": "int8",
           "c": "complex128", "w": "int16"}


def _maker(shape):
    def make(name=None, dtype=None):
        return _leaves.input(name, shape, dtype or config.floatX)
    return make


def _plural(make):
    """Theano's plurals: T.scalars(3), T.scalars("a", "b"), and T.scalars("ab") (one per
    character, as Theano iterates a single string)."""
    def many(*names, **kw):
        if names and isinstance(names[0], int):
            return make(**kw) if names[0] == 1 else [make(**kw) for _ in range(names[0])]
        if len(names) == 1:
            names = names[0]
        if len(names) == 1:
            return make(names[0] if isinstance(names, (list, tuple)) else names, **kw)
        return [make(n, **kw) for n in names]
    return many


for _kind, _shape in _RANKS.items():
    _many = "matrices" if _kind == "matrix" else _kind + "s"  # T.scalars, T.dmatrices(...)
    globals()[_kind] = _maker(_shape)
    globals()[_many] = _plural(_maker(_shape))
    for _p, _dt in _PREFIX.items():
        globals()[_p + _kind] = _t = _FlowcType(_dt, _shape)
        globals()[_p + _many] = _plural(_t)


def TensorType(dtype, broadcastable, name=None):
    """Theano's TensorType(dtype, broadcastable): the type with 1 where broadcastable."""
    return _FlowcType(dtype, tuple(1 if b else None for b in broadcastable))


# -- math ---------------------------------------------------------------------------------
dot, exp, log, log1p, sqrt, tanh = F.dot, F.exp, F.log, F.log1p, F.sqrt, F.tanh
sum, mean, prod, max, min = F.sum, F.mean, F.prod, F.max, F.min
argmax, argmin, maximum, minimum = F.argmax, F.argmin, F.maximum, F.minimum
switch, where, clip, cast = F.where, F.where, F.clip, F.cast
eq, neq, lt, le, gt, ge = F.equal, F.not_equal, F.less, F.less_equal, F.greater, F.greater_equal
sqr, abs_, sgn, sin, cos = F.square, F.abs, F.sign, F.sin, F.cos
reshape, concatenate, stack = F.reshape, F.concatenate, F.stack
transpose, sigmoid, softplus = F.transpose, F.sigmoid, F.softplus


def mul(*xs):
    """Elementwise product of all arguments."""
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


def grad(cost, wrt, consider_constant=None, disconnected_inputs="raise"):
    """T.grad: gradients of a scalar cost (disconnected inputs raise, as in Theano)."""
    mode = {"raise": "raise", "ignore": "zero", "warn": "warn"}.get(disconnected_inputs)
    if mode is None:
        unsupported(f"T.grad(disconnected_inputs={disconnected_inputs!r})")
    return _grad(cost, wrt, disconnected=mode, consider_constant=consider_constant)


def jacobian(expression, wrt, consider_constant=None, disconnected_inputs="raise"):
    """T.jacobian: d expression / d wrt, one batched graph."""
    import flowc
    return flowc.jacobian(expression, wrt)


def hessian(cost, wrt, consider_constant=None, disconnected_inputs="raise"):
    """T.hessian: second derivatives of a scalar cost."""
    import flowc
    return flowc.hessian(cost, wrt)


def Rop(f, wrt, eval_points):
    """T.Rop: J(f, wrt) @ eval_points, shaped like f (forward mode)."""
    import flowc
    return flowc.Rop(f, wrt, eval_points)


def Lop(f, wrt, eval_points):
    """T.Lop: eval_points @ J(f, wrt), shaped like wrt (reverse mode)."""
    import flowc
    return flowc.Lop(f, wrt, eval_points)


def __getattr__(name):
    if name.startswith("__"):  # import machinery, hasattr(), copy: not a Theano feature
        raise AttributeError(name)
    unsupported(f"theano.tensor.{name}")
