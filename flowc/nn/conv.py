"""Convolution and pooling layers, channels first like PyTorch: x is (N, C, *spatial).

Conv1D, Conv2D and ConvTranspose2D hold a weight in PyTorch's layout ((O, C/groups, *k) for a
conv, (C, O/groups, kh, kw) for a transposed one) and a bias of O entries; MaxPool2D,
AvgPool2D, GlobalAvgPool and Flatten have no parameters. A bad argument is an error naming
the layer and the line that made it; a bad input, the layer and the line that called it.
"""
from __future__ import annotations

import numpy as np

from .. import ops as _ops  # noqa: F401
from ..ir.errors import FlowcError, ShapeError
from ..ir.trace import user_trace
from ..leaves import param
from ..ops import api as F
from ..ops.api_conv import conv as _conv
from ..ops.api_pool import avg_pool, max_pool
from . import init as I
from .layers import Layer, activation_fn

# Activations whose layers start from He's initializer (their gain is sqrt(2)).
_RELU_LIKE = ("relu", "leaky_relu", "elu")


def _bad(layer, message):
    e = FlowcError(f"{layer} (at {user_trace()}): {message}")
    e.detail = f"{layer}: {message}"  # without the line: a model file names its own
    return e


def _ints(layer, name, v, nd, lo):
    """v as nd ints >= lo (an int means the same for every spatial dim)."""
    vals = (v,) * nd if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v
    if not isinstance(vals, (tuple, list)) or len(vals) != nd or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= lo
            for i in vals):
        raise _bad(layer, f"{name} must be an int >= {lo} or {nd} of them, got {v!r}")
    return tuple(int(i) for i in vals)


def _padding(layer, padding, nd, stride, strings=("same", "valid")):
    """'same', 'valid', or ints >= 0 per dim; 'same' only with stride 1 (as in PyTorch)."""
    if isinstance(padding, str):
        if padding not in strings:
            raise _bad(layer, f"padding must be {' or '.join(map(repr, strings))} or ints, "
                       f"got {padding!r}")
        if padding == "same" and any(s != 1 for s in stride):
            raise _bad(layer, f"padding='same' needs stride 1, got stride {stride}")
        return padding
    return _ints(layer, "padding", padding, nd, 0)


class _Conv(Layer):
    """The shared part of Conv1D and Conv2D: checks, weight and bias, the forward conv."""

    nd = 2
    transposed = False

    def __init__(self, filters, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 use_bias=True, activation=None, init=None, bias_init="zeros",
                 in_channels=None, name=None, seed=None, dtype=None):
        super().__init__(name, seed)
        cls, nd = type(self).__name__, self.nd
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters < 1:
            raise _bad(cls, f"filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _ints(cls, "kernel_size", kernel_size, nd, 1)
        self.stride = _ints(cls, "stride", stride, nd, 1)
        self.dilation = _ints(cls, "dilation", dilation, nd, 1)
        self.padding = _padding(cls, padding, nd, self.stride,
                                ("valid",) if self.transposed else ("same", "valid"))
        if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
            raise _bad(cls, f"groups must be a positive int, got {groups!r}")
        if self.filters % groups:
            raise _bad(cls, f"filters ({self.filters}) must be divisible by groups ({groups})")
        self.groups, self.use_bias, self.in_channels = int(groups), bool(use_bias), in_channels
        self.activation, self.act = activation, activation_fn(activation)
        if init is None:  # He for ReLU-like layers, else Glorot (Keras's default)
            init = "he_uniform" if activation in _RELU_LIKE else "glorot_uniform"
        self.init, self.bias_init, self.dtype = I.get(init), I.get(bias_init), dtype
        self.W = self.b = None

    def weight_shape(self, c_in):
        """PyTorch's layout: (O, C/groups, *kernel)."""
        return (self.filters, c_in // self.groups) + self.kernel_size

    def build(self, x):
        nd = self.nd
        if x.ndim != nd + 2 or x.type.shape[1] is None:
            raise ShapeError(f"{self.where()}: expects (batch, channels, {nd} spatial dim"
                             f"{'s' if nd > 1 else ''}) with the channels known, got "
                             f"{x.describe()}")
        c_in = x.type.shape[1]
        if self.in_channels is not None and self.in_channels != c_in:
            raise ShapeError(f"{self.where()} expects {self.in_channels} input channels, got "
                             f"{x.describe()}")
        if c_in % self.groups:
            raise ShapeError(f"{self.where()}: its input's channels ({c_in}) must be divisible "
                             f"by groups ({self.groups}), got {x.describe()}")
        self._check_size(x)
        self.in_channels = c_in
        dtype = self.dtype or (x.dtype if np.dtype(x.dtype).kind == "f" else "float64")
        shape = self.weight_shape(c_in)
        # The init module reads fans Keras's way, (*kernel, in, out): draw in that layout
        # (in = shape[1], so fan_in = C/groups * area for a conv, filters/groups * area for a
        # transposed one, as PyTorch counts), then move the axes to PyTorch's.
        w = self.init(I.rng_for(self.seed, f"{self.name}.W"),
                      self.kernel_size + (shape[1], shape[0]), dtype)
        w = np.ascontiguousarray(np.moveaxis(w, (nd, nd + 1), (1, 0)))
        self.W = param(f"{self.name}.W", w, graph=x.graph)
        self.params = [self.W]
        if self.use_bias:
            self.b = param(f"{self.name}.b", self.bias_init(
                I.rng_for(self.seed, f"{self.name}.b"), (self.out_channels(),), dtype),
                graph=x.graph)
            self.params.append(self.b)

    def out_channels(self):
        return self.filters

    def _check_size(self, x):
        """Each known spatial size must hold one (dilated) kernel after padding."""
        pads = (0,) * self.nd if isinstance(self.padding, str) else self.padding
        if self.padding == "same":
            return
        for h, k, d, p in zip(x.type.shape[2:], self.kernel_size, self.dilation, pads):
            if h is not None and h + 2 * p < d * (k - 1) + 1:
                raise ShapeError(f"{self.where()}: its kernel {self.kernel_size} (dilation "
                                 f"{self.dilation}) is larger than the padded input, got "
                                 f"{x.describe()}")

    def forward(self, x, training):
        z = _conv(x, self.W, stride=self.stride, padding=self.padding,
                  dilation=self.dilation, groups=self.groups, fn=self.kind)
        return self.act(self._bias(z))

    def _bias(self, z):
        if self.b is None:
            return z
        return z + F.reshape(self.b, (-1,) + (1,) * self.nd)  # one per channel


class Conv1D(_Conv):
    """1-D convolution (a correlation, as in PyTorch) of x (N, C, L) to (N, filters, L')."""

    kind, nd = "conv1d", 1


class Conv2D(_Conv):
    """2-D convolution (a correlation, as in PyTorch) of x (N, C, H, W) to (N, filters, H', W')."""

    kind, nd = "conv2d", 2


class ConvTranspose2D(_Conv):
    """The transposed 2-D convolution (PyTorch's ConvTranspose2d): the gradient of a Conv2D
    with respect to its input; weight (C, filters/groups, kh, kw). Out size per dim:
    (H - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1."""

    kind, nd, transposed = "conv_transpose2d", 2, True

    def __init__(self, filters, kernel_size, stride=1, padding=0, output_padding=0, **kw):
        super().__init__(filters, kernel_size, stride=stride, padding=padding, **kw)
        if self.padding == "valid":
            self.padding = (0, 0)
        self.output_padding = _ints(type(self).__name__, "output_padding", output_padding, 2, 0)
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride,
                                                   self.dilation)):
            raise _bad(type(self).__name__, f"output_padding {self.output_padding} must be "
                       f"smaller than the stride {self.stride} or the dilation {self.dilation}")

    def weight_shape(self, c_in):
        return (c_in, self.filters // self.groups) + self.kernel_size

    def _check_size(self, x):
        """Padding crops the output; it must leave at least one element per dim."""
        for h, k, s, d, p, op in zip(x.type.shape[2:], self.kernel_size, self.stride,
                                     self.dilation, self.padding, self.output_padding):
            if h is not None and (h - 1) * s - 2 * p + d * (k - 1) + op + 1 < 1:
                raise ShapeError(f"{self.where()}: its padding {self.padding} crops the whole "
                                 f"output, got {x.describe()}")

    def forward(self, x, training):
        if hasattr(fc_api(), "conv_transpose2d"):
            z = fc_api().conv_transpose2d(x, self.W, stride=self.stride, padding=self.padding,
                                          output_padding=self.output_padding,
                                          groups=self.groups, dilation=self.dilation)
        else:
            z = conv_transpose(x, self.W, self.stride, self.padding, self.output_padding,
                               self.groups, self.dilation)
        return self.act(self._bias(z))


def fc_api():
    """The flowc package (imported late: flowc imports flowc.nn)."""
    import flowc
    return flowc


def conv_transpose(x, w, stride, padding, output_padding, groups, dilation):
    """The transposed conv as a conv: spread x by the stride (lhs_dilation), pad by
    d * (k - 1) - p (plus output_padding at the end) and convolve with the kernel flipped
    (flip=True) and its channel axes swapped within each group."""
    c_in, og = w.type.shape[:2]
    k = w.type.shape[2:]
    nd = len(k)
    wg = F.reshape(w, (groups, c_in // groups, og) + tuple(k))
    wg = F.transpose(wg, (0, 2, 1) + tuple(range(3, 3 + nd)))       # (g, O/g, C/g, *k)
    wt = F.reshape(wg, (groups * og, c_in // groups) + tuple(k))
    pads = tuple((d * (kk - 1) - p, d * (kk - 1) - p + op)
                 for kk, d, p, op in zip(k, dilation, padding, output_padding))
    return _conv(x, wt, stride=1, padding=pads, dilation=dilation, groups=groups,
                 lhs_dilation=stride, flip=True, fn="conv_transpose")


class _Pool(Layer):
    """The shared part of MaxPool2D and AvgPool2D."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, name=None):
        super().__init__(name)
        cls = type(self).__name__
        self.kernel_size = _ints(cls, "kernel_size", kernel_size, 2, 1)
        self.stride = self.kernel_size if stride is None else _ints(cls, "stride", stride, 2, 1)
        self.padding = _ints(cls, "padding", padding, 2, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise _bad(cls, f"padding {self.padding} must be at most half the kernel "
                       f"{self.kernel_size}")
        if not isinstance(ceil_mode, bool):
            raise _bad(cls, f"ceil_mode must be true or false, got {ceil_mode!r}")
        self.ceil_mode = ceil_mode

    def build(self, x):
        if x.ndim != 4 or None in x.type.shape[2:]:
            raise ShapeError(f"{self.where()}: expects (batch, channels, height, width) with "
                             f"the height and width known, got {x.describe()}")
        for h, k, p in zip(x.type.shape[2:], self.kernel_size, self.padding):
            if h + 2 * p < k:
                raise ShapeError(f"{self.where()}: its window {self.kernel_size} is larger "
                                 f"than the padded input, got {x.describe()}")


class MaxPool2D(_Pool):
    """The maximum of each kernel_size window (stride defaults to kernel_size)."""

    kind = "maxpool2d"

    def forward(self, x, training):
        return max_pool(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                        fn=self.kind)


class AvgPool2D(_Pool):
    """The mean of each window; count_include_pad as in PyTorch (True: divide by the window
    size inside the zero padding)."""

    kind = "avgpool2d"

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, name=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, name)
        if not isinstance(count_include_pad, bool):
            raise _bad(type(self).__name__, f"count_include_pad must be true or false, got "
                       f"{count_include_pad!r}")
        self.count_include_pad = count_include_pad

    def forward(self, x, training):
        return avg_pool(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                        self.count_include_pad, fn=self.kind)


class GlobalAvgPool(Layer):
    """The mean over every spatial axis: (N, C, *spatial) -> (N, C)."""

    kind = "globalavgpool"

    def build(self, x):
        if x.ndim < 3:
            raise ShapeError(f"{self.where()}: expects (batch, channels, *spatial), got "
                             f"{x.describe()}")

    def forward(self, x, training):
        return F.mean(x, axis=tuple(range(2, x.ndim)))


class Flatten(Layer):
    """(N, *rest) -> (N, prod(rest)): the bridge from conv features to Dense."""

    kind = "flatten"

    def build(self, x):
        if x.ndim < 1:
            raise ShapeError(f"{self.where()}: expects (batch, ...), got {x.describe()}")

    def forward(self, x, training):
        return F.reshape(x, (x.shape[0], -1))
