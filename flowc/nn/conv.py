"""Convolutional layers, channels first as in PyTorch: Conv1D/2D/3D, ConvTranspose2D,
MaxPool2D, AvgPool2D, GlobalAvgPool and Flatten, on fc.conv, fc.conv_transpose and the
pooling functions.

Weights use PyTorch's layouts, (out, in / groups, *kernel) for a conv and (in, out / groups,
*kernel) for a transposed one, and are drawn by the initializers with the conv's fans
(fan_in = in / groups * kernel elements), so He and Glorot mean what they mean for Keras
and PyTorch.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.errors import FlowcError, ShapeError
from ..leaves import param
from ..ops import api as F
from ..ops.api_conv import conv, conv_transpose
from ..ops.api_pool import avg_pool, max_pool
from . import init as I
from .layers import Layer, activation_fn


def _ints(layer, name, v, nd, lo):
    """An int per spatial dim from an int or nd ints, each >= lo."""
    vals = (v,) * nd if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v
    if not isinstance(vals, (tuple, list)) or len(vals) != nd or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= lo
            for i in vals):
        raise FlowcError(f"{layer}: {name} must be an int >= {lo} or {nd} of them, got {v!r}")
    return tuple(int(i) for i in vals)


def _conv_init(init, rng, shape, dtype, transposed=False):
    """Draw a conv weight with the conv's fans: the initializers take (*kernel, in, out)
    like Keras; the result is laid out as PyTorch's (out, in, *kernel), or (in, out,
    *kernel) for a transposed conv."""
    a, b, kernel = shape[0], shape[1], tuple(shape[2:])
    fan_in, fan_out = (a, b) if transposed else (b, a)
    w = init(rng, kernel + (fan_in, fan_out), dtype)
    nd = len(kernel)
    order = (nd, nd + 1) if transposed else (nd + 1, nd)
    return np.ascontiguousarray(np.transpose(w, order + tuple(range(nd))))


class _Conv(Layer):
    """The shared machinery of the conv layers (see the module doc)."""

    nd = 2
    transposed = False

    def __init__(self, filters, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 activation=None, use_bias=True, init="he_uniform", bias_init="zeros",
                 output_padding=0, name=None, seed=None, dtype=None):
        super().__init__(name, seed)
        what = type(self).__name__
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or \
                filters <= 0:
            raise FlowcError(f"{what}: filters must be a positive int, got {filters!r}")
        if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or \
                groups <= 0 or filters % groups:
            raise FlowcError(f"{what}: groups must be a positive int dividing filters "
                             f"({filters}), got {groups!r}")
        self.filters, self.groups = int(filters), int(groups)
        self.kernel = _ints(what, "kernel_size", kernel_size, self.nd, 1)
        self.stride = _ints(what, "stride", stride, self.nd, 1)
        self.dilation = _ints(what, "dilation", dilation, self.nd, 1)
        if isinstance(padding, str) and not self.transposed:
            if padding not in ("same", "valid"):
                raise FlowcError(f"{what}: padding must be 'same', 'valid', an int or "
                                 f"{self.nd} ints, got {padding!r}")
            self.padding = padding
        else:
            self.padding = _ints(what, "padding", padding, self.nd, 0)
        self.output_padding = _ints(what, "output_padding", output_padding, self.nd, 0)
        self.activation, self.act = activation, activation_fn(activation)
        self.use_bias = bool(use_bias)
        self.init, self.bias_init = I.get(init), I.get(bias_init)
        self.dtype = dtype
        self.W = self.b = None

    def build(self, x):
        if x.ndim != self.nd + 2 or x.type.shape[1] is None:
            raise ShapeError(f"{self.where()}: expects (batch, channels, {self.nd} spatial "
                             f"dims) with the channels known, got {x.describe()}")
        c = x.type.shape[1]
        if c % self.groups:
            raise ShapeError(f"{self.where()}: groups={self.groups} must divide the input's "
                             f"{c} channels ({x.describe()})")
        dtype = self.dtype or (x.dtype if np.dtype(x.dtype).kind == "f" else "float64")
        shape = ((c, self.filters // self.groups) if self.transposed else
                 (self.filters, c // self.groups)) + self.kernel
        self.W = param(f"{self.name}.W", _conv_init(
            self.init, I.rng_for(self.seed, f"{self.name}.W"), shape, dtype, self.transposed),
            graph=x.graph)
        self.params = [self.W]
        if self.use_bias:
            self.b = param(f"{self.name}.b", self.bias_init(
                I.rng_for(self.seed, f"{self.name}.b"), (self.filters,), dtype), graph=x.graph)
            self.params.append(self.b)

    def forward(self, x, training):
        if self.transposed:
            y = conv_transpose(x, self.W, self.stride, self.padding, self.output_padding,
                               self.groups, self.dilation, fn=type(self).__name__)
        else:
            y = conv(x, self.W, self.stride, self.padding, self.dilation, self.groups,
                     fn=type(self).__name__)
        if self.b is not None:
            y = y + F.reshape(self.b, (-1,) + (1,) * self.nd)
        return self.act(y)


class Conv1D(_Conv):
    """y = activation(conv1d(x, W) + b) over x (batch, channels, length)."""

    kind, nd = "conv1d", 1


class Conv2D(_Conv):
    """y = activation(conv2d(x, W) + b) over x (batch, channels, height, width)."""

    kind, nd = "conv2d", 2


class Conv3D(_Conv):
    """y = activation(conv3d(x, W) + b) over x (batch, channels, depth, height, width)."""

    kind, nd = "conv3d", 3


class ConvTranspose2D(_Conv):
    """y = activation(conv_transpose2d(x, W) + b), W (in, filters / groups, kh, kw) as in
    PyTorch; output_padding picks among the sizes a strided conv maps to one."""

    kind, nd, transposed = "conv_transpose2d", 2, True


class _Pool(Layer):
    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, name=None):
        super().__init__(name)
        what = type(self).__name__
        self.kernel = _ints(what, "kernel_size", kernel_size, self.nd, 1)
        self.stride = self.kernel if stride is None else _ints(what, "stride", stride,
                                                               self.nd, 1)
        self.padding = _ints(what, "padding", padding, self.nd, 0)
        self.ceil_mode = bool(ceil_mode)


class MaxPool2D(_Pool):
    """The maximum of each window (PyTorch's MaxPool2d; ties send the gradient to the
    window's first maximum)."""

    kind = "maxpool2d"

    def forward(self, x, training):
        return max_pool(x, self.kernel, self.stride, self.padding, self.ceil_mode,
                        fn=type(self).__name__)


class AvgPool2D(_Pool):
    """The mean of each window (PyTorch's AvgPool2d; count_include_pad=True divides by the
    window's size in the padded input)."""

    kind = "avgpool2d"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, name=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, name)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x, training):
        return avg_pool(x, self.kernel, self.stride, self.padding, self.ceil_mode,
                        self.count_include_pad, fn=type(self).__name__)


class GlobalAvgPool(Layer):
    """The mean over every spatial axis: (batch, channels, *spatial) -> (batch, channels)."""

    kind = "globalavgpool"

    def forward(self, x, training):
        if x.ndim < 3:
            raise ShapeError(f"{self.where()}: expects (batch, channels, *spatial), got "
                             f"{x.describe()}")
        return F.mean(x, axis=tuple(range(2, x.ndim)))


class Flatten(Layer):
    """(batch, *rest) -> (batch, prod(rest)): a conv stack's output for dense layers."""

    kind = "flatten"

    def forward(self, x, training):
        rest = x.type.shape[1:]
        if x.ndim < 1:
            raise ShapeError(f"{self.where()}: expects a batch axis, got {x.describe()}")
        size = math.prod(rest) if None not in rest else -1
        return F.reshape(x, (x.shape[0], size))
