"""Shapes as values: x.shape (ints where known, int64 scalar tensors elsewhere), fc.shape(x),
and size arguments that mix Python ints with run-time integer scalars."""
from __future__ import annotations

import numpy as np

from ..ir.tensor import Shape, Tensor
from .build import apply, as_tensor, constant, op_error
from .size_ops import ARG


def dim(x, axis):
    """x.shape[axis]: a Python int where known when the graph is built, else the int64
    scalar read at run time (one node per tensor and axis, made on first use)."""
    d = x.type.shape[axis]
    if d is not None:
        return d
    axis %= x.ndim
    G = x.graph.nx
    for s in G.successors(x.id):
        n = G.nodes[s]
        if n["op"] == "dim" and n["attrs"]["axis"] == axis:
            return Tensor(x.graph, s)
    return apply("dim", [x], axis=axis)


def shape_tuple(x):
    """x.shape as a Shape tuple (see flowc/ir/tensor.py)."""
    return Shape(tuple(dim(x, i) for i in range(x.ndim)), of=x)


def shape(x):
    """x's shape as an int64 vector: a constant where every dim is known, else read at run
    time (no copy of x is made and x's buffer is not kept alive for it)."""
    x = as_tensor(x)
    if None not in x.type.shape:
        return constant(np.array(x.type.shape, dtype=np.int64), graph=x.graph)
    return apply("shape", [x])


def shape_vector(dims, graph=None):
    """A shape (a Shape, or a tuple of ints and integer scalars) as one int64 vector."""
    if isinstance(dims, Shape) and dims.of is not None:
        return shape(dims.of)
    from .api import cast, stack
    if not any(isinstance(d, Tensor) for d in dims):
        return constant(np.array([int(d) for d in dims], dtype=np.int64), graph=graph)
    g = next(d.graph for d in dims if isinstance(d, Tensor))
    return stack([cast(d, "int64") if isinstance(d, Tensor) and d.dtype != "int64"
                  else as_tensor(d, graph=g) if isinstance(d, Tensor)
                  else constant(np.int64(int(d)), graph=g) for d in dims])


def size_entries(op, shape, x=None, allow_minus_one=False):
    """(entries, operands) of a shape argument: ints stay ints, an integer scalar tensor is
    "arg" (its value read at run time), and for reshape a dim of x itself is ("dim", k).
    A 1-D integer tensor of known length (fc.shape(y)) gives one entry per element."""
    if isinstance(shape, Tensor) and shape.ndim == 1:
        n = shape.type.shape[0]
        if n is None:
            raise op_error(op, [shape], "a shape given as a tensor needs a length known when "
                           "the graph is built")
        shape = tuple(shape[i] for i in range(n))
    elif isinstance(shape, (Tensor, int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise op_error(op, [], f"shape must be an int or a tuple of ints and integer "
                       f"scalars, got {shape!r}")
    entries, operands = [], []
    for d in shape:
        if isinstance(d, Tensor):
            if d.ndim != 0 or np.dtype(d.dtype).kind not in "iu":
                raise op_error(op, [d], f"a size must be an integer scalar, got {d.type.short()}")
            ref = _dim_of(d, x)
            if ref is not None:
                entries.append(("dim", ref))
            else:
                entries.append(ARG)
                operands.append(d)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)):
            d = int(d)
            if d < 0 and not (allow_minus_one and d == -1):
                raise op_error(op, [] if x is None else [x],
                               f"negative dimensions are not allowed, got {tuple(shape)}")
            entries.append(d)
        else:
            raise op_error(op, [], f"a size must be an int or an integer scalar tensor, "
                           f"got {d!r}")
    return tuple(entries), operands


def _dim_of(d, x):
    """k when d is dim(x, k) of x itself (so reshape can keep sizes it can prove)."""
    if x is None or d.graph is not x.graph or d.op != "dim":
        return None
    return d.node["attrs"]["axis"] if d.graph.operands(d.id) == [x.id] else None


def reshape_sizes(x, shape):
    """reshape where some sizes are tensors (x.shape[0], n): the reshape_dyn op."""
    entries, operands = size_entries("reshape", shape, x, allow_minus_one=True)
    if operands or any(isinstance(e, tuple) for e in entries):
        return apply("reshape_dyn", [x] + operands, shape=entries)
    return None


def has_tensor(shape):
    """Whether a shape argument holds a run-time size."""
    if isinstance(shape, Tensor):
        return True
    return isinstance(shape, (tuple, list)) and any(isinstance(d, Tensor) for d in shape)
