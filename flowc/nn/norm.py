"""Normalization layers: BatchNorm (batch statistics in training, running ones at evaluation)
and LayerNorm, with PyTorch's parameter names and defaults."""
from __future__ import annotations

import numbers

import numpy as np

from ..ir.errors import FlowcError, ShapeError
from ..leaves import param
from ..ops import api as F
from ..ops.api_norm import batch_norm, layer_norm, moments
from .layers import Layer


def _dtype(layer, x):
    return layer.dtype or (x.dtype if np.issubdtype(np.dtype(x.dtype), np.floating)
                           else "float64")


def _check_eps(eps, who):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise FlowcError(f"{who}: eps must be a positive number, got {eps!r}")
    return float(eps)


class BatchNorm(Layer):
    """Batch normalization over every axis but the channels (axis 1): x (N, C) or
    (N, C, *spatial). Params `weight` (ones) and `bias` (zeros) are trained; `running_mean`
    and `running_var` are params the training step updates (PyTorch's momentum rule, the
    unbiased batch variance) and evaluation reads. Covers BatchNorm1d/2d/3d."""

    kind = "batchnorm"
    # training=True builds another graph (batch statistics, state updates), so the Task
    # builds an evaluation graph too, as it does for Dropout.
    stochastic = True

    def __init__(self, num_features=None, eps=1e-5, momentum=0.1, affine=True, name=None,
                 seed=None, dtype=None):
        super().__init__(name, seed)
        if num_features is not None and (isinstance(num_features, bool) or not isinstance(
                num_features, (int, np.integer)) or num_features <= 0):
            raise FlowcError(f"BatchNorm: num_features must be a positive int, got "
                             f"{num_features!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or \
                not 0.0 <= momentum <= 1.0:
            raise FlowcError(f"BatchNorm: momentum must be a number in [0, 1], got "
                             f"{momentum!r}")
        self.num_features, self.affine, self.dtype = num_features, bool(affine), dtype
        self.eps, self.momentum = _check_eps(eps, "BatchNorm"), float(momentum)
        self.weight = self.bias = self.running_mean = self.running_var = None
        self.buffers = []   # the running statistics: params, but not trained
        self._updates = []

    def build(self, x):
        c = x.type.shape[1] if x.ndim >= 2 else None
        if x.ndim < 2 or c is None:
            raise ShapeError(f"{self.where()}: expected an input (N, C, ...) with a known "
                             f"channel count C, got {x.describe()}")
        if self.num_features is not None and self.num_features != c:
            raise ShapeError(f"{self.where()} expects {self.num_features} channels, got "
                             f"{x.describe()}")
        self.num_features = c
        dt = _dtype(self, x)

        def mk(what, value):
            return param(f"{self.name}.{what}", np.full((c,), value, dt), graph=x.graph)
        if self.affine:
            self.weight, self.bias = mk("weight", 1.0), mk("bias", 0.0)
            self.params = [self.weight, self.bias]
        self.running_mean, self.running_var = mk("running_mean", 0.0), mk("running_var", 1.0)
        self.buffers = [self.running_mean, self.running_var]

    def forward(self, x, training):
        if x.ndim < 2 or x.type.shape[1] not in (None, self.num_features):
            raise ShapeError(f"{self.where()} expects (N, {self.num_features}, ...), got "
                             f"{x.describe()}")
        if not training:
            return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.eps)
        axes = (0,) + tuple(range(2, x.ndim))
        mean, var = moments(x, axes, keepdims=False)
        sizes = [x.type.shape[a] for a in axes]
        if None not in sizes and int(np.prod(sizes)) < 2:
            raise ShapeError(f"{self.where()}: training needs more than one value per "
                             f"channel, got {x.describe()}")
        self._updates = self._running_updates(x, axes, mean, var)
        return batch_norm(x, mean, var, self.weight, self.bias, self.eps)

    def _running_updates(self, x, axes, mean, var):
        m, dt = self.momentum, self.running_var.dtype
        n = 1
        for a in axes:
            n = n * x.shape[a]   # an int, or an int64 scalar where the size is unknown
        if isinstance(n, int):
            unbiased = var * (n / (n - 1))
        else:
            n = F.cast(n, dt)
            # A batch of one (a ragged last batch) has variance 0: keep it 0 rather than
            # making the running variance 0/0 = nan.
            unbiased = var * (n / F.maximum(n - 1.0, 1.0))
        return [(self.running_mean, (1.0 - m) * self.running_mean + m * mean),
                (self.running_var, (1.0 - m) * self.running_var + m * unbiased)]

    def state_updates(self):
        """The running statistics' updates of the latest training-mode call."""
        return list(self._updates)


class LayerNorm(Layer):
    """Normalizes each sample over its trailing `normalized_shape` sizes (default: the last
    axis, read from the input), then * weight + bias when elementwise_affine."""

    kind = "layernorm"

    def __init__(self, normalized_shape=None, eps=1e-5, elementwise_affine=True, name=None,
                 seed=None, dtype=None):
        super().__init__(name, seed)
        if isinstance(normalized_shape, (int, np.integer)) and not isinstance(
                normalized_shape, bool):
            normalized_shape = (int(normalized_shape),)
        if normalized_shape is not None:
            normalized_shape = tuple(normalized_shape)
            if not normalized_shape or not all(isinstance(s, (int, np.integer)) and s > 0
                                               for s in normalized_shape):
                raise FlowcError(f"LayerNorm: normalized_shape must be positive ints, got "
                                 f"{normalized_shape!r}")
        self.normalized_shape = normalized_shape
        self.eps, self.affine, self.dtype = _check_eps(eps, "LayerNorm"), \
            bool(elementwise_affine), dtype
        self.weight = self.bias = None

    def build(self, x):
        shape = self.normalized_shape or (x.type.shape[-1] if x.ndim else None,)
        k = len(shape)
        if x.ndim < k or tuple(x.type.shape[x.ndim - k:]) != tuple(shape):
            raise ShapeError(f"{self.where()}: the input's trailing sizes must be known and "
                             f"equal normalized_shape {tuple(shape)}, got {x.describe()}")
        self.normalized_shape = tuple(int(s) for s in shape)
        if self.affine:
            dt = _dtype(self, x)
            self.weight = param(f"{self.name}.weight", np.ones(self.normalized_shape, dt),
                                graph=x.graph)
            self.bias = param(f"{self.name}.bias", np.zeros(self.normalized_shape, dt),
                              graph=x.graph)
            self.params = [self.weight, self.bias]

    def forward(self, x, training):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
