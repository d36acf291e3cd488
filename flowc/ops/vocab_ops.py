"""argsort (sort is a gather by it, so its gradient scatters back) and specify_shape."""
from __future__ import annotations

from ..ir.errors import ShapeError
from ..ir.types import TensorType, fmt_shape, normalize_axis
from .build import apply
from .registry import REQUIRED, OpDef, register
from .shape_rules import linear_jvp


def _argsort_infer(types, attrs):
    (x,) = types
    normalize_axis(attrs["axis"], x.ndim)
    return TensorType("int64", x.shape)


register(OpDef("argsort", 1, _argsort_infer, attrs={"axis": -1}, differentiable=False,
               batch=lambda c: apply("argsort", c.inputs,
                                     axis=normalize_axis(c.attrs["axis"], c.out.ndim)[0] + 1),
               doc="indices that sort x along axis (stable: equal entries keep their order)"))


def _specify_infer(types, attrs):
    (x,) = types
    shape = tuple(attrs["shape"])
    if len(shape) != x.ndim:
        raise ShapeError(f"specify_shape: x has {x.ndim} dimensions {fmt_shape(x.shape)}, "
                         f"the shape given has {len(shape)}: {fmt_shape(shape)}")
    for d, e in zip(x.shape, shape):
        if d is not None and e is not None and d != e:
            raise ShapeError(f"specify_shape: x has shape {fmt_shape(x.shape)}, not "
                             f"{fmt_shape(shape)}")
    return TensorType(x.dtype, tuple(e if e is not None else d for d, e in zip(x.shape, shape)))


def _specify_batch(c):
    return apply("specify_shape", c.inputs, shape=(c.size,) + tuple(c.attrs["shape"]))


register(OpDef("specify_shape", 1, _specify_infer, attrs={"shape": REQUIRED}, linear=True,
               vjp=lambda c: [c.g], jvp=linear_jvp(0), batch=_specify_batch,
               doc="x, checked at run time to have `shape` (None: any size there)"))
