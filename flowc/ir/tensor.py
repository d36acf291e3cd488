"""Tensor: the user's handle on one graph node, with NumPy-like operators and methods."""
from __future__ import annotations

import numpy as np

_API = None


def _ops():
    # The operator overloads live in flowc.ops (a higher layer); import it on first use.
    global _API
    if _API is None:
        from ..ops import api
        _API = api
    return _API


def _comparable(v) -> bool:
    """Values == and != compare elementwise against: tensors, arrays and numbers."""
    return isinstance(v, (Tensor, np.ndarray, np.generic, bool, int, float, list, tuple))


class Shape(tuple):
    """`x.shape`: a tuple of ints (dims known when the graph is built) and int64 scalar
    Tensors (dims read at run time). It compares and hashes as the static shape, with None
    for the symbolic dims, so `x.shape == (None, 3)` still asks what is known; as a tensor
    (fc.as_tensor, a function output) it is the int64 vector `fc.shape(x)`."""

    def __new__(cls, dims, of=None):
        self = super().__new__(cls, dims)
        self.of = of  # the tensor whose shape this is (None for a shape put together by hand)
        return self

    @property
    def static(self):
        """The shape with None for every symbolic dim."""
        return static_shape(self)

    def __eq__(self, other):
        if isinstance(other, (tuple, list)):
            return self.static == static_shape(other)
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(self.static)

    def __repr__(self):
        return "Shape(" + ", ".join("?" if isinstance(d, Tensor) else repr(d) for d in self) \
            + ("," if len(self) == 1 else "") + ")"


COMPARISONS = ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal")


class _Tag:
    """Attributes the user hangs on a tensor (x.tag.test_value = ...)."""


def static_shape(shape) -> tuple:
    """A shape with None for each dim that is not a Python int (a Tensor or None)."""
    return tuple(None if d is None or isinstance(d, Tensor) else int(d) for d in shape)


class Tensor:
    """A symbolic tensor: node `id` of `graph`. Arithmetic on it adds nodes to the graph."""

    __slots__ = ("graph", "id")
    __array_priority__ = 1000  # so `ndarray * tensor` defers to Tensor.__rmul__

    def __init__(self, graph, nid: int):
        self.graph = graph
        self.id = nid

    # -- static facts ---------------------------------------------------------------------
    @property
    def node(self) -> dict:
        return self.graph.nx.nodes[self.id]

    @property
    def type(self):
        return self.node["type"]

    @property
    def shape(self):
        """The shape as a tuple: ints for the dims known when the graph is built, int64
        scalar Tensors (read at run time) for the others. `.type.shape` has None there."""
        return _ops().shape_tuple(self)

    @property
    def ndim(self) -> int:
        return len(self.type.shape)

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def op(self) -> str:
        return self.node["op"]

    @property
    def name(self):
        return self.node.get("name")

    @name.setter
    def name(self, value):
        self.node["name"] = value

    @property
    def broadcastable(self):
        """Theano's flags: True where the dim is known to be 1."""
        return self.type.broadcastable

    @property
    def tag(self):
        """A namespace for the user's notes on this tensor (Theano's `x.tag`); not saved."""
        return self.node.setdefault("tag", _Tag())

    def describe(self) -> str:
        """'name: f64[?,784] (op, made at file:line)' for error messages."""
        d = self.node
        who = d.get("name") or f"%{self.id}"
        return f"{who}: {d['type'].short()} ({d['op']}, made at {d.get('trace') or '?'})"

    def __repr__(self):
        return f"<Tensor {self.describe()}>"

    def __hash__(self):
        # Hashable by node identity, as PyTorch tensors are by object: sets and dicts of
        # tensors keep working although == is elementwise (dicts compare with `is` first).
        return hash((id(self.graph), self.id))

    # == and != are elementwise, as in NumPy (`fc.mean(pred == y)` is an accuracy). Code
    # that means identity writes `a is b` or compares `.id`. None compares as no tensor.
    def __eq__(self, other):
        if other is None:
            return False
        if not _comparable(other):
            return NotImplemented
        return _ops().equal(self, other)

    def __ne__(self, other):
        if other is None:
            return True
        if not _comparable(other):
            return NotImplemented
        return _ops().not_equal(self, other)

    def __bool__(self):
        # As in Theano: a variable is true (`if not W:` tests for a missing one), but the
        # result of a comparison has no truth value until it is computed.
        if self.op in COMPARISONS:
            raise TypeError("a symbolic comparison has no truth value (== is elementwise); "
                            "use flowc.where for a condition, `a is b` or a.id == b.id for "
                            "identity")
        return True

    def __len__(self):
        raise TypeError("a symbolic Tensor has no len(); use .shape")

    def __iter__(self):
        raise TypeError("a symbolic Tensor cannot be iterated; index it with t[i]")

    # -- parameter state ------------------------------------------------------------------
    def get_value(self, borrow: bool = False, return_internal_type: bool = False):
        """The parameter's current value (a copy unless borrow=True; with
        return_internal_type=True a GPU value stays a CuPy array)."""
        cell = self._cell()
        v = cell.value
        if hasattr(v, "get"):  # device array
            return (v if borrow else v.copy()) if return_internal_type else v.get()
        return v if borrow else np.array(v, copy=True)

    def set_value(self, value, borrow: bool = False):
        """Replace the parameter's value; dtype must be castable safely and ndim must match."""
        from .errors import InputError
        cell = self._cell()
        t = self.type
        arr = np.asarray(value)
        if arr.ndim != t.ndim or not np.can_cast(arr.dtype, t.dtype, "same_kind"):
            raise InputError(f"set_value on param {self.name!r}: expected {t.short()}, got "
                             f"{arr.dtype.name}{list(arr.shape)}")
        for want, got in zip(t.shape, arr.shape):
            if want is not None and want != got:
                raise InputError(f"set_value on param {self.name!r}: expected shape "
                                 f"{t.shape}, got {arr.shape}")
        new = arr.astype(t.dtype, copy=not borrow)
        if hasattr(cell.value, "device") and hasattr(cell.value, "get"):
            import cupy  # the cell lives on the GPU: keep it there
            new = cupy.asarray(new)
        cell.value = new

    def _cell(self):
        if self.op != "param":
            raise TypeError(f"get_value/set_value need a param, but {self.describe()} is not one")
        return self.graph.cells[self.id]

    # -- operators ------------------------------------------------------------------------
    def __add__(self, o): return _ops().add(self, o)
    def __radd__(self, o): return _ops().add(o, self)
    def __sub__(self, o): return _ops().sub(self, o)
    def __rsub__(self, o): return _ops().sub(o, self)
    def __mul__(self, o): return _ops().mul(self, o)
    def __rmul__(self, o): return _ops().mul(o, self)
    def __truediv__(self, o): return _ops().div(self, o)
    def __rtruediv__(self, o): return _ops().div(o, self)
    def __floordiv__(self, o): return _ops().floor_divide(self, o)
    def __rfloordiv__(self, o): return _ops().floor_divide(o, self)
    def __mod__(self, o): return _ops().mod(self, o)
    def __rmod__(self, o): return _ops().mod(o, self)
    def __pow__(self, o): return _ops().pow(self, o)
    def __rpow__(self, o): return _ops().pow(o, self)
    def __matmul__(self, o): return _ops().matmul(self, o)
    def __rmatmul__(self, o): return _ops().matmul(o, self)
    def __neg__(self): return _ops().neg(self)
    def __pos__(self): return self
    def __abs__(self): return _ops().abs(self)
    def __lt__(self, o): return _ops().less(self, o)
    def __le__(self, o): return _ops().less_equal(self, o)
    def __gt__(self, o): return _ops().greater(self, o)
    def __ge__(self, o): return _ops().greater_equal(self, o)
    def __getitem__(self, idx): return _ops().getitem(self, idx)

    # -- methods --------------------------------------------------------------------------
    @property
    def T(self): return _ops().transpose(self)

    @property
    def at(self):
        """Functional index updates: x.at[i].set(v), x.at[i].add(v) (new tensors)."""
        from ..ops.api_index import IndexUpdate
        return IndexUpdate(self)
    def abs(self): return _ops().abs(self)
    def sum(self, axis=None, keepdims=False): return _ops().sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops().mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops().max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return _ops().min(self, axis, keepdims)
    def prod(self, axis=None, keepdims=False): return _ops().prod(self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False): return _ops().argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims=False): return _ops().argmin(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _ops().reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return _ops().transpose(self, axes or None)

    def astype(self, dtype): return _ops().cast(self, dtype)
    def dot(self, o): return _ops().dot(self, o)
    def clip(self, lo, hi): return _ops().clip(self, lo, hi)
    def round(self): return _ops().round(self)
    def squeeze(self, axis=None): return _ops().squeeze(self, axis)
    def copy(self): return self  # values are immutable: a copy is the same value

    def flatten(self, ndim=1):
        """Keep the first ndim - 1 axes and flatten the rest (Theano's flatten)."""
        from ..ops.api_vocab import flatten
        return flatten(self, ndim)

    def dimshuffle(self, *pattern):
        """Theano's dimshuffle: a permutation of axes with 'x' for new unit axes."""
        from ..ops.api_vocab import dimshuffle
        return dimshuffle(self, *pattern)

    def sort(self, axis=-1):
        from ..ops.api_vocab import sort
        return sort(self, axis)

    def argsort(self, axis=-1):
        from ..ops.api_vocab import argsort
        return argsort(self, axis)

    def var(self, axis=None, keepdims=False, ddof=0):
        """Variance (fc.var: population by default, ddof=0 as NumPy's)."""
        from ..ops.api_norm import var
        return var(self, axis, ddof, keepdims)

    def std(self, axis=None, keepdims=False, ddof=0):
        """Standard deviation (fc.std)."""
        from ..ops.api_norm import std
        return std(self, axis, ddof, keepdims)

    def norm(self, L=2, axis=None):
        """Theano's x.norm(L): (sum |x|^L)^(1/L) over axis (all axes when None)."""
        if L == 2:
            return _ops().sqrt(_ops().sum(_ops().square(self), axis))
        if L == 1:
            return _ops().sum(_ops().abs(self), axis)
        return _ops().sum(_ops().abs(self) ** L, axis) ** (1.0 / L)

    def eval(self, inputs_to_values=None):
        """This tensor's value now, given {input: value} for the inputs it needs (Theano's
        eval). The compiled function is cached on the graph per tensor and input set."""
        givens = dict(inputs_to_values or {})
        key = (self.id,) + tuple(sorted(t.id for t in givens))
        cache = self.graph.eval_cache
        ins = sorted(givens, key=lambda t: t.id)
        f = cache.get(key)
        if f is None:
            from ..function import function
            f = cache[key] = function(ins, self)
        return f(*[givens[t] for t in ins])
