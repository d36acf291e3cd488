"""The builder: turn (op, operand tensors, attrs) into a checked, typed graph node."""
from __future__ import annotations

import numpy as np

from ..ir.errors import FlowcError, GraphError, ShapeError
from ..ir.graph import default_graph
from ..ir.tensor import Shape, Tensor
from ..ir.trace import user_trace
from ..ir.types import TensorType, is_float, normalize_axis
from .registry import canonical_attrs, get_op


def apply(opname: str, inputs, name=None, **attrs) -> Tensor:
    """Add node `opname(*inputs, **attrs)` to the operands' graph and return its Tensor."""
    opdef = get_op(opname)
    trace = user_trace()
    graph = _common_graph(inputs, opname, trace)
    if opdef.arity is not None and len(inputs) != opdef.arity:
        raise GraphError(f"{opname} takes {opdef.arity} operands, got {len(inputs)} (at {trace})")
    try:
        attrs = canonical_attrs(opdef, attrs)
        ttype = opdef.infer([t.type for t in inputs], attrs)
    except FlowcError as e:
        raise op_error(opname, inputs, str(e), type(e), graph._trace or trace) from None
    nid = graph.add_node(opname, [t.id for t in inputs], attrs, ttype, name=name, trace=trace)
    return Tensor(graph, nid)


def op_error(opname, inputs, message, cls=ShapeError, trace=None):
    """The error for a bad use of `opname`: the op, the user's line, what the operands are."""
    graph = inputs[0].graph if inputs else None
    trace = trace or (graph._trace if graph is not None else None) or user_trace()
    operands = "; ".join(t.describe() for t in inputs)
    return cls(f"{opname} at {trace}: {message}" + (f". Operands: {operands}" if operands else ""))


def op_axes(opname, x, axis, ndim=None, one=False):
    """`axis` (an int or a sequence of ints) normalized for `opname` on x: a sorted tuple,
    or with one=True the single axis. A bad axis names the op and the user's line."""
    try:
        if one and not _is_int(axis):
            raise ShapeError(f"axis must be one integer, got {axis!r}")
        axes = normalize_axis(axis_tuple(axis), x.ndim if ndim is None else ndim)
    except ShapeError as e:
        raise op_error(opname, [x], str(e)) from None
    return axes[0] if one else axes


def axis_tuple(axis):
    """None, or `axis` (an int or a sequence of ints) as a tuple of Python ints."""
    if axis is None:
        return None
    if _is_int(axis):
        return (int(axis),)
    if isinstance(axis, (list, tuple)) and all(_is_int(a) for a in axis):
        return tuple(int(a) for a in axis)
    raise ShapeError(f"axis must be an integer or a tuple of integers, got {axis!r}")


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def leaf(op: str, ttype: TensorType, name=None, value=None, graph=None) -> Tensor:
    """Add an operand-free node (input, param, const) to `graph` (default: the current graph)."""
    graph = graph or default_graph()
    nid = graph.add_node(op, [], {}, ttype, name=name, trace=user_trace(), value=value)
    return Tensor(graph, nid)


def constant(value, dtype=None, name=None, graph=None) -> Tensor:
    """A constant tensor holding a copy of `value`."""
    arr = np.array(value, dtype=dtype)
    if arr.dtype == object:
        raise ShapeError(f"constant: cannot make a tensor from {type(value).__name__}")
    arr.setflags(write=False)
    return leaf("const", TensorType(arr.dtype.name, arr.shape), name=name, value=arr, graph=graph)


def as_tensor(v, like: Tensor = None, graph=None) -> Tensor:
    """A Tensor for v; Python scalars are weak (take `like`'s dtype kind, as NumPy 2 does)."""
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (tuple, list)) and (isinstance(v, Shape) or any(isinstance(d, Tensor)
                                                                      for d in v)):
        from .api_shape import shape_vector  # a shape with run-time sizes: an int64 vector
        return shape_vector(v)
    graph = like.graph if like is not None else graph
    if isinstance(v, (bool, int, float)) and not isinstance(v, np.generic):
        return constant(v, dtype=weak_dtype(v, like.dtype if like is not None else None), graph=graph)
    return constant(v, graph=graph)


def weak_dtype(v, other):
    """The dtype a Python scalar takes next to an array of dtype `other` (NumPy 2 weak rules)."""
    if other is None:
        return np.result_type(v).name if not isinstance(v, float) else "float64"
    o = np.dtype(other)
    if isinstance(v, bool):
        return o.name
    if isinstance(v, int):
        return o.name if o.kind in "iuf" else "int64"
    if isinstance(v, float):
        return o.name if is_float(o.name) else "float64"
    return np.result_type(v).name


def _common_graph(inputs, opname, trace):
    graphs = {id(t.graph): t.graph for t in inputs}
    if not graphs:
        return default_graph()
    if len(graphs) > 1:
        raise GraphError(f"{opname} at {trace}: operands come from different graphs: "
                         + "; ".join(t.describe() for t in inputs))
    return inputs[0].graph
