"""TensorType (dtype + shape with unknown dims) and NumPy-2 style dtype promotion."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .errors import ShapeError

Dim = Optional[int]


_INTERNED = {}


@dataclass(frozen=True)
class TensorType:
    """The static type of a tensor: a NumPy dtype name and a shape whose dims may be None.

    Types are interned (one object per dtype and shape), so `x.type is T.dscalar` holds as in
    Theano; calling a type makes an input of it (`T.dmatrix("x")`)."""

    dtype: str
    shape: Tuple[Dim, ...]

    def __new__(cls, dtype=None, shape=None):
        if dtype is None:  # copy/pickle protocols make an empty object first
            return object.__new__(cls)
        key = (np.dtype(dtype).name, tuple(None if d is None else int(d) for d in shape))
        t = _INTERNED.get(key)
        if t is None:
            t = _INTERNED[key] = object.__new__(cls)
        return t

    def __post_init__(self):
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        object.__setattr__(self, "shape", tuple(None if d is None else int(d) for d in self.shape))

    def __reduce__(self):
        return TensorType, (self.dtype, self.shape)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __call__(self, name=None):
        """A new input of this type (Theano's `T.dmatrix("x")`)."""
        from ..ops.build import leaf
        return leaf("input", self, name=name)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def broadcastable(self):
        """Theano's flags: True where the dim is known to be 1."""
        return tuple(d == 1 for d in self.shape)

    def short(self) -> str:
        """Compact text such as 'f64[?,784]' used in pictures and errors."""
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{short_dtype(self.dtype)}[{dims}]"

    def to_json(self):
        return [self.dtype, list(self.shape)]

    @staticmethod
    def from_json(v):
        if isinstance(v, (TensorType, TupleType)):
            return v
        if v[0] == "tuple":
            return TupleType(tuple(TensorType.from_json(p) for p in v[1]))
        return TensorType(v[0], tuple(v[1]))

    def __str__(self):
        return self.short()


@dataclass(frozen=True)
class TupleType:
    """The type of an op with several results (a loop): one TensorType per part. Consumers
    read it through `part` nodes, so every other node still makes one tensor."""

    parts: Tuple[TensorType, ...]
    dtype: str = "tuple"
    shape: Tuple = ()

    @property
    def ndim(self) -> int:
        return 0

    @property
    def broadcastable(self):
        return ()

    def short(self) -> str:
        return "(" + ", ".join(p.short() for p in self.parts) + ")"

    def to_json(self):
        return ["tuple", [p.to_json() for p in self.parts]]

    def __str__(self):
        return self.short()


_SHORT = {"float64": "f64", "float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32",
          "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "bool", "complex128": "c128"}


def short_dtype(dtype: str) -> str:
    return _SHORT.get(dtype, dtype)


def is_float(dtype: str) -> bool:
    """True for floating dtypes: the only ones gradients flow through (and for a tuple,
    whose float parts carry tangents)."""
    return dtype == "tuple" or np.issubdtype(np.dtype(dtype), np.floating)


def result_dtype(*dtypes: str) -> str:
    """NumPy's promotion of array dtypes (Python scalars are made weak before they get here)."""
    return np.result_type(*[np.dtype(d) for d in dtypes]).name


def broadcast_shapes(*shapes, what="operands") -> Tuple[Dim, ...]:
    """Broadcast static shapes; an unknown dim (None) stays unknown unless the other side fixes it."""
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = [s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError(f"cannot broadcast {what} with shapes "
                             + " and ".join(fmt_shape(s) for s in shapes)
                             + f": dimension {i - nd} is {sorted(known)}")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def fmt_shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def normalize_axis(axis, ndim: int, what="axis"):
    """Normalize an axis argument (None, int or sequence) to a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise ShapeError(f"{what} {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated {what} in {axis}")
    return tuple(sorted(out))
