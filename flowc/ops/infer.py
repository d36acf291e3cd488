"""Shared type-inference helpers for op definitions."""
from __future__ import annotations

import functools

import numpy as np

from ..ir.errors import ShapeError
from ..ir.types import TensorType, broadcast_shapes, is_float, normalize_axis


@functools.lru_cache(maxsize=None)
def probe_dtype(fn, *dtypes) -> str:
    """The dtype NumPy's `fn` returns for operands of these dtypes (run on empty arrays)."""
    with np.errstate(all="ignore"):
        try:
            return np.asarray(fn(*[np.ones(1, dtype=d) for d in dtypes])).dtype.name
        except TypeError:  # NumPy has no loop for these dtypes (e.g. sign of bool)
            raise ShapeError(f"not defined for dtype {' and '.join(dtypes)}") from None


def elementwise(np_fn):
    """infer() for an elementwise op whose dtype follows NumPy's `np_fn`."""
    def infer(types, attrs):
        shape = broadcast_shapes(*[t.shape for t in types])
        return TensorType(probe_dtype(np_fn, *[t.dtype for t in types]), shape)
    return infer


def float_unary(types, attrs):
    """infer() for a unary op that returns floats (ints promote as np.exp does)."""
    (t,) = types
    return TensorType(probe_dtype(np.exp, t.dtype), t.shape)


def reduced_shape(shape, axis, keepdims):
    """Shape after reducing `axis` (already normalized)."""
    if keepdims:
        return tuple(1 if i in axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axis)


def reduction(np_fn):
    """infer() for reductions with attrs axis/keepdims; dtype as NumPy's `np_fn` gives it."""
    def infer(types, attrs):
        (t,) = types
        axis = normalize_axis(attrs["axis"], t.ndim)
        dtype = probe_dtype(np_fn, t.dtype)
        return TensorType(dtype, reduced_shape(t.shape, axis, attrs["keepdims"]))
    return infer


def require_float(t: TensorType, what: str):
    if not is_float(t.dtype):
        raise ShapeError(f"{what} needs a floating tensor, got {t.short()}")
