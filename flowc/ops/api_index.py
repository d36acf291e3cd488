"""Indexing with integer arrays and functional index updates: x[i, j], x.at[i].set(v),
x.at[i].add(v), set_subtensor / inc_subtensor (Theano's names)."""
from __future__ import annotations

import numpy as np

from ..ir.tensor import Tensor
from .build import apply, as_tensor, constant, op_error


def parse_index(x, index, op="getitem"):
    """(items, operands) of a Python index on x: integer arrays and integer scalar tensors
    become ("array",) items, and a slice bound that is a tensor is "arg"; each takes the next
    operand (bounds in start, stop, step order)."""
    if not isinstance(index, tuple):
        index = (index,)
    items, arrays = [], []
    for it in index:
        if isinstance(it, slice):
            items.append(("slice",) + tuple(_bound(x, b, arrays, op)
                                            for b in (it.start, it.stop, it.step)))
        elif it is None:
            items.append(("newaxis",))
        elif it is Ellipsis:
            items.append(("ellipsis",))
        elif isinstance(it, (bool, np.bool_)):
            raise op_error(op, [x], f"unsupported index {it!r}: boolean indices are not supported")
        elif isinstance(it, (int, np.integer)):
            items.append(("int", int(it)))
        elif isinstance(it, (Tensor, list, np.ndarray)):
            arrays.append(_index_array(x, it, op))
            items.append(("array",))
        else:
            raise op_error(op, [x], f"unsupported index {it!r}: use slices, integers, None, "
                           "..., or integer arrays")
    if sum(1 for i in items if i[0] == "ellipsis") > 1:
        raise op_error(op, [x], "an index can only have a single ellipsis")
    return tuple(items), arrays


def _index_array(x, it, op):
    if isinstance(it, Tensor):
        a = it
    else:
        arr = np.asarray(it)
        if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
            raise op_error(op, [x], f"index arrays must hold integers, got {arr.dtype} "
                           f"{_short(it)} (boolean masks are not supported)")
        a = constant(arr.astype(np.int64), graph=x.graph)
    if a.dtype == "bool":
        raise op_error(op, [x], "boolean mask indices are not supported: use flowc.where")
    if np.dtype(a.dtype).kind not in "iu":
        raise op_error(op, [x, a], f"index arrays must be integer, got {a.type.short()}")
    return a


def _short(v):
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _update(op, x, index, v):
    x = as_tensor(x)
    items, arrays = parse_index(x, index, op)
    v = as_tensor(v, like=x)
    if v.dtype != x.dtype:  # the update writes into x: it keeps x's dtype, as NumPy does
        from .api import cast
        v = cast(v, x.dtype)
    return apply(op, [x, v] + arrays, index=items)


class IndexUpdate:
    """`x.at[index]`: functional updates of x at `index` (new tensors; x is unchanged)."""

    def __init__(self, x, index=None):
        self.x, self.index = x, index

    def __getitem__(self, index):
        return IndexUpdate(self.x, index)

    def set(self, v):
        """x with x[index] = v."""
        return _update("index_set", self.x, self.index, v)

    def add(self, v):
        """x with v added at x[index]; repeated indices accumulate."""
        return _update("index_add", self.x, self.index, v)

    def get(self):
        """x[index]."""
        return self.x[self.index]


def _source(sub, op):
    """(x, index items, arrays) of a tensor made by indexing (x[...])."""
    if not isinstance(sub, Tensor):
        raise op_error(op, [], f"expects x[index] as first argument, got {type(sub).__name__}")
    d = sub.node
    ins = [sub.graph.tensor(i) for i in sub.graph.operands(sub.id)]
    if d["op"] == "getitem":
        return ins[0], d["attrs"]["index"], []
    if d["op"] == "advindex":
        return ins[0], d["attrs"]["index"], list(ins[1:])
    if d["op"] == "take" and d["attrs"]["axis"] is not None:
        return ins[0], (("slice", None, None, None),) * d["attrs"]["axis"] + (("array",),), \
            [ins[1]]
    raise op_error(op, [sub], f"expects x[index] (a getitem) as first argument, got a "
                   f"{d['op']} result")


def _subtensor(op, sub, v):
    x, items, arrays = _source(sub, op)
    v = as_tensor(v, like=x)
    if v.dtype != x.dtype:
        from .api import cast
        v = cast(v, x.dtype)
    return apply(op, [x, v] + arrays, index=items)


def set_subtensor(sub, v):
    """Theano's set_subtensor(x[index], v): x with x[index] = v."""
    return _subtensor("index_set", sub, v)


def inc_subtensor(sub, v):
    """Theano's inc_subtensor(x[index], v): x with v added at x[index]."""
    return _subtensor("index_add", sub, v)


def _bound(x, b, operands, op):
    """A slice bound: None, an int, or "arg" for an integer scalar tensor (an operand)."""
    if isinstance(b, Tensor):
        if b.ndim != 0 or np.dtype(b.dtype).kind not in "iu":
            raise op_error(op, [x, b], f"slice bounds must be integer scalars, got "
                           f"{b.type.short()}")
        operands.append(b)
        return "arg"
    if b is None:
        return None
    if isinstance(b, (bool, np.bool_)) or not isinstance(b, (int, np.integer)):
        raise op_error(op, [x], f"slice bounds must be integers, got {b!r}")
    return int(b)
