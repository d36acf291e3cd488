"""pool_argmax: for each pooling window of x (N, C, *spatial), the flat index into x's
spatial positions (row-major) of the window's first maximum (row-major window order).

Max pooling is `take_along_axis` of the flattened input at these indices, so its gradient
(put_along_axis_grad: overlapping windows that pick one position add up), jvp, second
order and batching come from take_along_axis's rules; this op has integer results and no
derivative. The per-offset slices in api_pool.py are the reference it is checked against.
attrs: kernel, stride, padding (symmetric, per dim), ceil_mode (PyTorch's meanings).
"""
from __future__ import annotations

from flowc_runtime.cpu.pool import out_sizes

from ..ir.errors import ShapeError
from ..ir.types import TensorType, is_float
from . import api as F
from .build import apply
from .registry import OpDef, register


def _infer(types, attrs):
    (x,) = types
    k, s, p = attrs["kernel"], attrs["stride"], attrs["padding"]
    if x.ndim != len(k) + 2 or not (len(k) == len(s) == len(p)):
        raise ShapeError(f"pool_argmax of {len(k)} spatial dims needs x of rank {len(k) + 2} "
                         f"and one stride and padding per dim, got {x.short()}")
    if not is_float(x.dtype):
        raise ShapeError(f"pool_argmax needs a float x, got {x.short()}")
    sizes = []
    for h, kk, ss, pp in zip(x.shape[2:], k, s, p):
        if h is None:
            sizes.append(None)
            continue
        try:
            sizes += list(out_sizes((h,), (kk,), (ss,), (pp,), attrs["ceil_mode"]))
        except ValueError as e:
            raise ShapeError(str(e)) from None
    return TensorType("int64", tuple(x.shape[:2]) + tuple(sizes))


def pool_argmax(x, kernel, stride, padding, ceil_mode):
    """The pool_argmax node."""
    return apply("pool_argmax", [x], kernel=tuple(kernel), stride=tuple(stride),
                 padding=tuple(padding), ceil_mode=bool(ceil_mode))


def _batch(c):
    """The batch axis folds into N (the windows do not see it)."""
    (x,) = c.inputs
    y = apply("pool_argmax", [F.reshape(x, (-1,) + tuple(x.shape[2:]))], **c.attrs)
    return F.reshape(y, (x.shape[0], x.shape[1]) + tuple(y.shape[1:]))


register(OpDef("pool_argmax", 1, _infer, batch=_batch, differentiable=False,
               attrs={"kernel": (1,), "stride": (1,), "padding": (0,), "ceil_mode": False},
               doc="flat index of each pooling window's first maximum (max pooling's choice)"))
