"""Integer-array (advanced) indexing and functional index updates, NumPy semantics.

`advindex(x, *arrays)` is x[index]; `index_add(x, v, *arrays)` is x with v added at x[index]
(repeated indices accumulate, np.add.at); `index_set(x, v, *arrays)` is x with x[index] = v.
The `index` attr is getitem's item list plus ("array",) for each integer-array operand, in
order; a slice bound "arg" is an integer scalar operand read at run time (data[i*bs:(i+1)*bs]).
The update ops also take an index without arrays (x.at[1:, 0].set(v)).
"""
from __future__ import annotations

from ..ir.errors import ShapeError
from ..ir.types import TensorType, broadcast_shapes, fmt_shape
from . import api as F
from .batchutil import materialize
from .build import apply
from .registry import REQUIRED, OpDef, register
from .shape_rules import FULL, linear_jvp

INT = ("int64", "int32", "int16", "int8", "uint8", "uint16", "uint32")


def expand(index, ndim):
    """Items with the ellipsis spelled out as full slices and trailing full slices added."""
    n_real = sum(1 for it in index if it[0] in ("int", "slice", "array"))
    if n_real > ndim:
        raise ShapeError(f"too many indices ({n_real}) for a tensor with {ndim} dimensions")
    out = []
    for it in index:
        if it[0] == "ellipsis":
            out.extend([FULL] * (ndim - n_real))
            n_real = ndim  # a second ellipsis is rejected by the API
        else:
            out.append(it)
    if not any(it[0] == "ellipsis" for it in index):
        out.extend([FULL] * (ndim - n_real))
    return out


def split_operands(index, operands):
    """(index arrays, slice-bound scalars) among an index's operands, each in order."""
    arrays, bounds, k = [], [], 0
    for it in index:
        if it[0] == "array":
            arrays.append(operands[k])
            k += 1
        elif it[0] == "slice":
            for b in it[1:]:
                if b == "arg":
                    bounds.append(operands[k])
                    k += 1
    return arrays, bounds


def n_operands(index):
    """How many operands an index reads: one per array item and per "arg" slice bound."""
    return sum(1 if it[0] == "array" else sum(1 for b in it[1:] if b == "arg")
               if it[0] == "slice" else 0 for it in index)


def index_shape(x, index, operands):
    """The shape of x[index] (NumPy's rules: the broadcast index shape replaces the indexed
    axes where the advanced items are adjacent, else it goes first)."""
    arrays, _ = split_operands(index, operands)
    items = expand(index, x.ndim)
    has_arrays = any(it[0] == "array" for it in items)
    shape, adv, dim, k = [], [], 0, 0
    for pos, it in enumerate(items):
        kind = it[0]
        if kind == "newaxis":
            shape.append(1)
            continue
        size = x.shape[dim]
        if kind == "int":
            if size is not None and not -size <= it[1] < size:
                raise ShapeError(f"index {it[1]} is out of bounds for axis {dim} with size {size}")
            if has_arrays:
                adv.append((pos, len(shape)))
        elif kind == "array":
            adv.append((pos, len(shape)))
            k += 1
        else:
            _, start, stop, step = it
            if step == 0:
                raise ShapeError("slice step cannot be zero")
            if size is None or "arg" in (start, stop, step):
                shape.append(None)
            else:
                shape.append(len(range(*slice(start, stop, step).indices(size))))
        dim += 1
    if not adv:
        return tuple(shape)
    try:
        b = broadcast_shapes(*[_static(a) for a in arrays])
    except ShapeError:
        raise ShapeError("index arrays do not broadcast together: "
                         + ", ".join(fmt_shape(_static(a)) for a in arrays)) from None
    at = adv[0][1] if adjacent(items) else 0
    return tuple(shape[:at]) + tuple(b) + tuple(shape[at:])


def _static(a):
    """The static shape of a Tensor or a TensorType (shape rules see either)."""
    return a.type.shape if hasattr(a, "type") else a.shape


def adjacent(items):
    """Whether the advanced items (arrays, and ints next to arrays) stand next to each other."""
    pos = [i for i, it in enumerate(items) if it[0] in ("array", "int")]
    return not pos or pos[-1] - pos[0] + 1 == len(pos)


def _check_operands(index, operands):
    n = n_operands(index)
    if n != len(operands):
        raise ShapeError(f"the index names {n} operand(s), {len(operands)} came")
    arrays, bounds = split_operands(index, operands)
    for a in arrays:
        if a.dtype not in INT:
            raise ShapeError(f"index arrays must be integer, got {a.short()}")
    for b in bounds:
        if b.dtype not in INT or b.ndim:
            raise ShapeError(f"slice bounds must be integer scalars, got {b.short()}")


def _index_infer(types, attrs):
    x, arrays = types[0], types[1:]
    _check_operands(attrs["index"], arrays)
    return TensorType(x.dtype, index_shape(x, attrs["index"], arrays))


def _update_infer(types, attrs):
    x, v, arrays = types[0], types[1], types[2:]
    _check_operands(attrs["index"], arrays)
    target = index_shape(x, attrs["index"], arrays)
    try:
        out = broadcast_shapes(v.shape, target)  # v broadcasts to x[index]
    except ShapeError:
        out = None
    if out is None or len(out) != len(target) or any(
            o is not None and t is not None and o != t for o, t in zip(out, target)):
        raise ShapeError(f"cannot broadcast the value {fmt_shape(v.shape)} to the indexed "
                         f"part {fmt_shape(target)}")
    return x


def gather(x, index, arrays):
    """x[index] as a graph value: getitem without operands, advindex with them."""
    if not arrays:
        return apply("getitem", [x], index=index)
    return apply("advindex", [x] + list(arrays), index=index)


def _index_vjp(c):
    x, arrays = c.inputs[0], c.inputs[1:]
    return [apply("index_add", [F.zeros_like(x), c.g] + list(arrays), index=c.attrs["index"])] \
        + [None] * len(arrays)


def _add_vjp(c):
    arrays = c.inputs[2:]
    return [c.g, gather(c.g, c.attrs["index"], arrays)] + [None] * len(arrays)


def _set_vjp(c):
    # With repeated indices the last write wins in NumPy; the cotangent of v reads g at every
    # written place (as Theano's set_subtensor does), exact when the indices are distinct.
    x, v, arrays = c.inputs[0], c.inputs[1], c.inputs[2:]
    zero = F.constant(0, dtype=c.g.dtype, graph=c.g.graph)
    return [apply("index_set", [c.g, zero] + list(arrays), index=c.attrs["index"]),
            gather(c.g, c.attrs["index"], arrays)] + [None] * len(arrays)


# -- batching: a batched x (or v) gets a leading full slice; batched index arrays are refused --
def _moved(c, first_adv_axis_front, r, ndim_b):
    """Where NumPy puts the broadcast index axes in front (non-adjacent advanced items), the
    batch axis lands after them: move it back to the front."""
    if not first_adv_axis_front or ndim_b == 0:
        return r
    perm = (ndim_b,) + tuple(range(ndim_b)) + tuple(range(ndim_b + 1, r.ndim))
    return F.transpose(r, perm)


def _front(x, index, arrays):
    """(advanced axes go in front, their broadcast rank) for x[index]."""
    items = expand(index, x.ndim)
    arrays, _ = split_operands(index, arrays)
    if not arrays:
        return False, 0
    return not adjacent(items), len(broadcast_shapes(*[a.type.shape for a in arrays]))


def _no_batched_arrays(c, first):
    if any(c.batched[first:]):
        raise ShapeError(f"batching {c.op} over its index arrays is not supported")


def _index_batch(c):
    _no_batched_arrays(c, 1)
    x, arrays = c.inputs[0], c.inputs[1:]
    front, nb = _front(_unbatched_type(x), c.attrs["index"], arrays)
    r = apply("advindex", [x] + list(arrays), index=(FULL,) + tuple(c.attrs["index"]))
    return _moved(c, front, r, nb)


class _unbatched_type:
    """The per-entry view of a batched tensor's type (for the shape rules above)."""

    def __init__(self, t):
        self.shape, self.ndim = t.type.shape[1:], t.ndim - 1


def _update_batch(c):
    _no_batched_arrays(c, 2)
    (x, v), arrays = c.inputs[:2], c.inputs[2:]
    bx, bv = c.batched[:2]
    ref = x if bx else v
    x = x if bx else materialize(x, ref)
    front, nb = _front(_unbatched_type(x), c.attrs["index"], arrays)
    if front and nb and not bv:  # v must line up with the batch axis in the middle
        v, bv = materialize(v, ref), True
    if bv:
        target = len(index_shape(_unbatched_type(x), c.attrs["index"], arrays))
        if v.ndim < target + 1:  # v broadcasts to x[index]: make its batch axis explicit
            v = F.expand_dims(v, tuple(range(1, target + 2 - v.ndim)))
        if front and nb:  # x[(FULL,) + index] puts the index axes before the batch axis
            perm = tuple(range(1, nb + 1)) + (0,) + tuple(range(nb + 1, v.ndim))
            v = F.transpose(v, perm)
    return apply(c.op, [x, v] + list(arrays), index=(FULL,) + tuple(c.attrs["index"]))


register(OpDef("advindex", None, _index_infer, attrs={"index": REQUIRED}, linear=True,
               vjp=_index_vjp, jvp=linear_jvp(0), batch=_index_batch,
               doc="x[index] with integer-array items (NumPy advanced indexing)"))
register(OpDef("index_add", None, _update_infer, attrs={"index": REQUIRED}, linear=True,
               vjp=_add_vjp, jvp=linear_jvp(0, 1), batch=_update_batch,
               doc="x with v added at x[index]; repeated indices accumulate (x.at[i].add(v))"))
register(OpDef("index_set", None, _update_infer, attrs={"index": REQUIRED}, linear=True,
               vjp=_set_vjp, jvp=linear_jvp(0, 1), batch=_update_batch,
               doc="x with x[index] = v (x.at[i].set(v))"))
