"""Layers: Dense (Linear), activations, Dropout and Sequential, built on the static graph.

A layer makes its parameters the first time it is called (Keras style: Dense's input size is
read from its input), names them after itself (`dense1.W`, `dense1.b`) and draws their first
values from a generator seeded by (seed, parameter name), so the same seed gives the same
model. Calling a layer adds nodes to the input's graph; every node is credited to the user's
line that called the layer. `training=True` builds the training-time graph (dropout active).
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..ir.errors import FlowcError, ShapeError
from ..ir.scope import scope
from ..ir.tensor import Tensor
from ..ir.trace import user_trace
from ..leaves import param
from ..ops import api as F
from . import init as I
from .random import Generator


def _identity(x):
    return x


def _leaky_relu(x, slope=0.01):
    return F.where(x > 0, x, x * slope)


def _elu(x):
    return F.where(x > 0, x, F.expm1(F.minimum(x, 0.0)))


ACTIVATIONS = {
    "linear": _identity, "relu": F.relu, "tanh": F.tanh, "sigmoid": F.sigmoid,
    "softplus": F.softplus, "softmax": lambda x: F.softmax(x, axis=-1),
    "log_softmax": lambda x: F.log_softmax(x, axis=-1), "leaky_relu": _leaky_relu, "elu": _elu,
}


def activation_fn(name):
    """The function for an activation name (None means linear)."""
    if name is None:
        return _identity
    if callable(name):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise FlowcError(f"unknown activation {name!r}; known: "
                         f"{', '.join(sorted(ACTIVATIONS))}") from None


def _taken(graph, stem):
    return any(n == stem or (n or "").startswith(stem + ".")
               for n in (d.get("name") for _, d in graph.nx.nodes(data=True)))


def unique_name(graph, kind, reserved=()):
    """The first free `kind1`, `kind2`, ... among the graph's node names."""
    k = 1
    while f"{kind}{k}" in reserved or _taken(graph, f"{kind}{k}"):
        k += 1
    return f"{kind}{k}"


class Layer:
    """Base of the layers: a name (given or `kind<k>`), a seed, params made on first call."""

    kind = "layer"
    stochastic = False  # True if training=True builds a different graph

    def __init__(self, name=None, seed=None):
        self.name, self.seed = name, seed
        self.params = []
        self.graph = None
        # Where the layer was declared, when that is not Python code (a model file's
        # `file:line`); its nodes then carry it instead of the caller's line.
        self.trace = None

    def __call__(self, x, training=False):
        if not isinstance(x, Tensor):
            raise FlowcError(f"{self.name or self.kind}: expected a flowc Tensor as input, "
                             f"got {type(x).__name__}")
        if self.graph is not None and x.graph is not self.graph:
            raise FlowcError(f"layer {self.name!r} was built in another graph; make a new layer")
        where = x.graph.emitting("forward", trace=self.trace) if self.trace \
            else contextlib.nullcontext()
        first = x.graph._next_id
        if self.graph is None and self.name is None:
            self.name = unique_name(x.graph, self.kind)
        # The layer's nodes and params carry its name as their scope: a cluster in pictures.
        with where, scope(self.name):
            if self.graph is None:
                self.graph = x.graph
                if self.seed is None:
                    self.seed = 0
                self.build(x)
            y = self.forward(x, training)
        if y.id >= first and not y.name:
            y.node["name"] = self.name  # shows in pictures and errors
        return y

    def build(self, x):
        """Make the parameters, knowing the first input."""

    def where(self) -> str:
        """'name (at file:line)': the layer and the line that declared or called it."""
        return f"{self.name} (at {self.trace or user_trace()})"

    def forward(self, x, training):
        """The layer's output for x (training: the training-time graph)."""
        raise NotImplementedError

    def state_updates(self):
        """Updates of non-trainable state (random generators) for the training step."""
        return []

    def count_params(self) -> int:
        """The number of parameter entries."""
        return int(sum(np.prod(p.type.shape) for p in self.params))

    def __repr__(self):
        return f"<{type(self).__name__} {self.name or '(unbuilt)'}>"


class Dense(Layer):
    """y = activation(x @ W + b), W of shape (in_features, units); also called Linear."""

    kind = "dense"

    def __init__(self, units, activation=None, in_features=None, use_bias=True,
                 init="glorot_uniform", bias_init="zeros", name=None, seed=None, dtype=None):
        super().__init__(name, seed)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise FlowcError(f"Dense: units must be a positive int, got {units!r}")
        self.units, self.in_features, self.use_bias = int(units), in_features, use_bias
        self.activation = activation
        self.act = activation_fn(activation)
        self.init, self.bias_init = I.get(init), I.get(bias_init)
        self.dtype = dtype
        self.W = self.b = None

    def build(self, x):
        n_in = x.type.shape[-1] if x.ndim else None
        if n_in is None:
            raise ShapeError(f"{self.where()}: the last dimension of its input must be known "
                             f"to size the weights, got {x.describe()}")
        if self.in_features is not None and self.in_features != n_in:
            raise ShapeError(f"{self.where()} expects {self.in_features} input features, "
                             f"got {x.describe()}")
        self.in_features = n_in
        dtype = self.dtype or (x.dtype if np.issubdtype(np.dtype(x.dtype), np.floating)
                               else "float64")
        shape = (n_in, self.units)
        self.W = param(f"{self.name}.W",
                       self.init(I.rng_for(self.seed, f"{self.name}.W"), shape, dtype),
                       graph=x.graph)
        self.params = [self.W]
        if self.use_bias:
            self.b = param(f"{self.name}.b", self.bias_init(
                I.rng_for(self.seed, f"{self.name}.b"), (self.units,), dtype), graph=x.graph)
            self.params.append(self.b)

    def forward(self, x, training):
        z = x @ self.W
        if self.b is not None:
            z = z + self.b
        return self.act(z)


class Linear(Dense):
    """PyTorch's spelling: Linear(in_features, out_features) is Dense(out_features)."""

    def __init__(self, in_features, out_features, **kw):
        super().__init__(out_features, in_features=in_features, **kw)


class Activation(Layer):
    """An elementwise activation as a layer (relu, tanh, sigmoid, softplus, ...)."""

    def __init__(self, fn, name=None):
        super().__init__(name)
        self.kind = fn if isinstance(fn, str) else getattr(fn, "__name__", "activation")
        self.fn = activation_fn(fn)

    def forward(self, x, training):
        return self.fn(x)


def ReLU(name=None):
    """Activation('relu')."""
    return Activation("relu", name)


def Tanh(name=None):
    """Activation('tanh')."""
    return Activation("tanh", name)


def Sigmoid(name=None):
    """Activation('sigmoid')."""
    return Activation("sigmoid", name)


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability `rate` and scale the
    rest by 1/(1 - rate); identity at evaluation. Its mask comes from a seeded generator whose
    state is the param `<name>.rng`, advanced by one per training step."""

    kind = "dropout"
    stochastic = True

    def __init__(self, rate, name=None, seed=None, generator=None):
        super().__init__(name, seed)
        if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise FlowcError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.generator = generator

    def build(self, x):
        if self.generator is None:
            self.generator = Generator(self.seed, name=f"{self.name}.rng")

    def forward(self, x, training):
        if not training or self.rate == 0.0:
            return x
        u = self.generator.uniform(x)
        return F.where(u >= self.rate, x * (1.0 / (1.0 - self.rate)), 0.0)

    def state_updates(self):
        return self.generator.updates() if self.generator is not None else []


class Sequential(Layer):
    """Layers applied in order. `seed` seeds every layer that has none of its own."""

    kind = "sequential"

    def __init__(self, layers, seed=0, name=None):
        super().__init__(name, seed)
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise FlowcError(f"Sequential: item {i} is {type(layer).__name__}, not a layer")
        self.stochastic = any(layer.stochastic for layer in self.layers)

    def __call__(self, x, training=False):
        if not isinstance(x, Tensor):
            raise FlowcError(f"Sequential: expected a flowc Tensor as input, got "
                             f"{type(x).__name__}")
        if self.graph is not None and x.graph is not self.graph:
            raise FlowcError("this Sequential was built in another graph; make a new one")
        self.graph = x.graph
        for i, layer in enumerate(self.layers):
            if layer.seed is None:
                layer.seed = self.seed
            try:
                x = layer(x, training)
            except FlowcError as e:
                if not hasattr(e, "layer_index"):
                    e.layer_index = i  # lets a model file point at the layer's line
                raise
        return x

    @property
    def params(self):
        return [p for layer in self.layers for p in layer.params]

    @params.setter
    def params(self, value):  # Layer.__init__ sets it; a Sequential's are its layers'
        pass

    def state_updates(self):
        return [u for layer in self.layers for u in layer.state_updates()]

    def summary(self) -> str:
        """One line per layer: name, kind, parameter shapes and count."""
        rows = [f"{'layer':<12} {'kind':<10} {'parameters':<28} {'count':>8}"]
        for layer in self.layers:
            shapes = ", ".join(f"{p.name.split('.')[-1]}{list(p.type.shape)}" for p in layer.params)
            rows.append(f"{layer.name or '?':<12} {type(layer).__name__:<10} {shapes:<28} "
                        f"{layer.count_params():>8}")
        rows.append(f"{'total':<52} {sum(la.count_params() for la in self.layers):>8}")
        return "\n".join(rows)
