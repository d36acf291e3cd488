"""theano.tensor.signal.pool.pool_2d on flowc's pooling (flowc/ops/api_pool.py)."""
from __future__ import annotations

from ....ops.api_pool import avg_pool, max_pool, sum_pool
from ....ops.build import op_error

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")


def pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode="max",
            ds=None, st=None, padding=None):
    """Pooling over the last two axes of input (..., rows, cols), Theano's arguments:
    ws the window, stride (default ws), pad, ignore_border (True, Theano's default since
    0.9: windows past the border are dropped; False keeps the partial last window, and
    needs pad (0, 0)), mode 'max', 'sum', 'average_inc_pad' or 'average_exc_pad'. The old
    names ds, st and padding are taken too."""
    ws = ws if ws is not None else ds
    stride = stride if stride is not None else st
    pad = pad if padding is None else padding
    if ws is None:
        raise op_error("pool_2d", [], "needs ws (the window size)")
    if mode not in MODES:
        raise op_error("pool_2d", [], f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    ws, pad = tuple(ws), tuple(pad)
    stride = ws if stride is None else tuple(stride)
    ceil = ignore_border is False
    if ceil and pad != (0, 0):
        raise op_error("pool_2d", [], f"padding needs ignore_border=True, got pad {pad}")
    x = input
    lead = x.shape[:-2]  # Theano pools any leading axes: make them (N, C)
    if x.ndim != 4:
        x = x.reshape((-1, 1) + tuple(x.shape[-2:]))
    if mode == "max":
        y = max_pool(x, ws, stride, pad, ceil, fn="pool_2d")
    elif mode == "sum":
        y = sum_pool(x, ws, stride, pad, ceil, fn="pool_2d")
    else:
        y = avg_pool(x, ws, stride, pad, ceil, count_include_pad=mode == "average_inc_pad",
                     fn="pool_2d")
    return y if input.ndim == 4 else y.reshape(tuple(lead) + tuple(y.shape[-2:]))
