"""Graph leaves: inputs (given at each call), parameters (state kept between calls), constants."""
from __future__ import annotations

import numpy as np

from flowc_runtime.storage import Cell

from .ir.errors import ShapeError
from .ir.graph import default_graph
from .ir.tensor import Tensor
from .ir.types import TensorType
from .ops.build import constant, leaf  # noqa: F401  (constant is re-exported)


def input(name, shape=(), dtype="float64", graph=None):
    """A value given at each call; a dimension of None is known only at call time (so is a
    symbolic dim of another tensor's shape: fc.input("t", x.shape) has x's static shape)."""
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(None if isinstance(d, Tensor) else d for d in shape)
    if any(d is not None and (not isinstance(d, (int, np.integer)) or d < 0) for d in shape):
        raise ShapeError(f"input {name!r}: shape must hold non-negative ints or None, got {shape}")
    return leaf("input", TensorType(dtype, tuple(shape)), name=name, graph=graph)


def param(name, value, dtype=None, graph=None, borrow=False):
    """A parameter: state with an initial value, kept by the runtime between calls
    (borrow=True keeps `value` itself when it is already an array of the dtype)."""
    arr = np.asarray(value, dtype=dtype) if borrow else np.array(value, dtype=dtype)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ShapeError(f"param {name!r}: expected a numeric array, got {type(value).__name__}")
    g = graph or default_graph()
    t = leaf("param", TensorType(arr.dtype.name, arr.shape), name=name, graph=g)
    g.cells[t.id] = Cell(arr)
    # The node keeps the initial value too, so a saved graph can be rebuilt.
    g.nx.nodes[t.id]["value"] = np.array(arr, copy=True)
    return t


def scalar(name=None, dtype="float64"):
    """A 0-d input."""
    return input(name, (), dtype)


def vector(name=None, dtype="float64"):
    """A 1-d input of any length."""
    return input(name, (None,), dtype)


def matrix(name=None, dtype="float64"):
    """A 2-d input of any size."""
    return input(name, (None, None), dtype)
