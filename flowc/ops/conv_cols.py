"""A conv through explicit im2col columns, so its weight gradient can reuse them (made by
the O2 `share_conv_columns` pass; like gemm, no derivative rules: they exist only after
autodiff, and only with every size known but the batch).

im2col(x; kernel, stride, pad, dilation, lhs_dilation) -> cols (N * P, C * KK):
  cols[(n, p), (c, i)] = x~[n, c, p * s + i * d], x~ dilated by lhs_dilation and padded;
conv_cols(cols, w[, b]; spatial, flip, groups) -> (N, O, *spatial): per group, the group's
  column block @ its w rows (O / groups, C / groups * KK).T (+ b);
conv_wgrad(cols, gt; kernel) -> (C, O, *kernel): the weight gradient's conv, the one the
  vjp of conv(x, w) writes as conv(x transposed, g transposed): gt (O, N, *P) as an
  (O, N * P) matrix times cols, no second im2col of x.
"""
from __future__ import annotations

import math

from ..ir.errors import ShapeError
from ..ir.types import TensorType
from .conv import bias_channels
from .registry import OpDef, register

GEOMETRY = {"kernel": (1,), "stride": (1,), "pad": ((0, 0),), "dilation": (1,),
            "lhs_dilation": (1,)}


def _known(*types, batch=()):
    """Every size known, except the dims named in `batch` (type index, dim) pairs."""
    for i, t in enumerate(types):
        if any(d is None and (i, k) not in batch for k, d in enumerate(t.shape)):
            raise ShapeError("im2col lowering needs every size known but the batch, got "
                             + ", ".join(t.short() for t in types))


def _times(a, b):
    return None if a is None or b is None else a * b


def _im2col_infer(types, attrs):
    (x,) = types
    _known(x, batch={(0, 0)})
    from .conv import out_size
    P = math.prod(out_size(h, k, s, p, d, u) for h, k, s, p, d, u in zip(
        x.shape[2:], attrs["kernel"], attrs["stride"], attrs["pad"], attrs["dilation"],
        attrs["lhs_dilation"]))
    return TensorType(x.dtype, (_times(x.shape[0], P), x.shape[1] * math.prod(attrs["kernel"])))


def _conv_cols_infer(types, attrs):
    cols, w = types[:2]
    _known(cols, w, batch={(0, 0)})
    P, g = math.prod(attrs["spatial"]), attrs["groups"]
    if cols.ndim != 2 or w.ndim < 3 or cols.shape[1] != g * math.prod(w.shape[1:]) \
            or w.shape[0] % g or (cols.shape[0] is not None and cols.shape[0] % P) \
            or cols.dtype != w.dtype:
        raise ShapeError(f"conv_cols needs columns (N * {P}, C * KK) matching w in {g} "
                         f"group(s), got {cols.short()} and {w.short()}")
    n = None if cols.shape[0] is None else cols.shape[0] // P
    y = TensorType(w.dtype, (n, w.shape[0]) + tuple(attrs["spatial"]))
    if len(types) == 3 and not bias_channels(y, types[2]):
        raise ShapeError(f"conv_cols' bias must broadcast along the channels of {y.short()}, "
                         f"got {types[2].short()}")
    return y


def _conv_wgrad_infer(types, attrs):
    cols, gt = types
    _known(cols, gt, batch={(0, 0), (1, 1)})
    KK = math.prod(attrs["kernel"])
    rows = None if gt.shape[1] is None else math.prod(gt.shape[1:])
    if cols.ndim != 2 or cols.shape[1] % KK or cols.dtype != gt.dtype or \
            (None not in (rows, cols.shape[0]) and cols.shape[0] != rows):
        raise ShapeError(f"conv_wgrad needs columns (N * P, C * {KK}) and a cotangent "
                         f"(O, N, *P), got {cols.short()} and {gt.short()}")
    return TensorType(gt.dtype, (cols.shape[1] // KK, gt.shape[0]) + tuple(attrs["kernel"]))


register(OpDef("im2col", 1, _im2col_infer, differentiable=False, attrs=dict(GEOMETRY),
               doc="a conv's input windows as an (N * positions, C * kernel) matrix"))
register(OpDef("conv_cols", None, _conv_cols_infer, differentiable=False,
               attrs={"spatial": (1,), "flip": False, "groups": 1},
               doc="a conv from its im2col columns: one GEMM (+ a per-channel bias)"))
register(OpDef("conv_wgrad", 2, _conv_wgrad_infer, differentiable=False,
               attrs={"kernel": (1,)},
               doc="a conv's weight gradient from the forward's im2col columns: one GEMM"))
