"""Recurrent layers on fc.scan: RNN, LSTM and GRU over (batch, steps, features) inputs, and
Reshape (a digit image read row by row is a sequence of 8 steps of 8 pixels).

Each layer projects every step's input with one GEMM before the loop (x @ W for all steps
at once); the loop carries the state and does only the recurrent product. With
return_sequences=False the output is the last state (batch, units), else every step's
(batch, steps, units). `mask` (batch, steps), 1 for real steps and 0 for padding, keeps the
state through padded steps (their outputs repeat the last real state).
"""
from __future__ import annotations

import numpy as np

from .. import ops as _ops  # noqa: F401
from ..ir.errors import FlowcError, ShapeError
from ..leaves import param
from ..ops import api as F
from ..ops.api_control import scan
from ..ops.api_make import zeros
from . import init as I
from .layers import Layer

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


class Recurrent(Layer):
    """The shared machinery of RNN, LSTM and GRU (see the module doc)."""

    kind = "rnn"

    def __init__(self, units, return_sequences=False, init="glorot_uniform",
                 recurrent_init="orthogonal", name=None, seed=None, dtype=None):
        super().__init__(name, seed)
        if not isinstance(units, (int, np.integer)) or units <= 0:
            raise FlowcError(f"{type(self).__name__}: units must be a positive int, got {units!r}")
        self.units, self.return_sequences = int(units), bool(return_sequences)
        self.init, self.rinit = I.get(init), I.get(recurrent_init)
        self.dtype = dtype

    def build(self, x):
        if x.ndim != 3 or x.type.shape[-1] is None:
            raise ShapeError(f"{self.where()}: expects (batch, steps, features) with the "
                             f"features known, got {x.describe()}")
        n_in, g, u = x.type.shape[-1], GATES[self.kind], self.units
        dtype = self.dtype or (x.dtype if np.dtype(x.dtype).kind == "f" else "float64")
        rng = lambda what: I.rng_for(self.seed, f"{self.name}.{what}")  # noqa: E731
        self.W = param(f"{self.name}.W", self.init(rng("W"), (n_in, g * u), dtype), graph=x.graph)
        U = np.concatenate([self.rinit(rng(f"U{k}"), (u, u), dtype) for k in range(g)], axis=1)
        self.U = param(f"{self.name}.U", U, graph=x.graph)
        b = np.zeros(g * u, dtype)
        if self.kind == "lstm":
            b[u:2 * u] = 1.0  # forget gate open at the start (Jozefowicz et al., 2015)
        self.b = param(f"{self.name}.b", b, graph=x.graph)
        self.params = [self.W, self.U, self.b]

    def forward(self, x, training, mask=None):
        steps = F.transpose(x, (1, 0, 2))                          # (steps, batch, features)
        proj = F.reshape(F.reshape(steps, (-1, steps.type.shape[-1])) @ self.W + self.b,
                         (steps.shape[0], steps.shape[1], -1))      # one GEMM for all steps
        batch, u = x.shape[0], self.units
        h0 = zeros((batch, u), self.W.dtype)
        init = (h0, h0) if self.kind == "lstm" else h0
        seqs = proj if mask is None else (proj, F.cast(F.transpose(mask, (1, 0)), self.W.dtype))
        last, hs = scan(self._step(mask is not None), init, seqs)
        if self.return_sequences:
            return F.transpose(hs, (1, 0, 2))
        return last[0] if self.kind == "lstm" else last

    def __call__(self, x, training=False, mask=None):
        if mask is None:
            return super().__call__(x, training)
        forward = self.forward
        self.forward = lambda xx, tr: forward(xx, tr, mask)  # noqa: E731
        try:
            return super().__call__(x, training)
        finally:
            self.forward = forward

    def _step(self, masked):
        u, U = self.units, self.U

        def step(c, xt):
            pt, m = (xt if masked else (xt, None))
            new = self.cell(c, pt, U, u)
            if masked:  # padding keeps the state: m is 1 for a real step, 0 for padding
                m = F.expand_dims(m, 1)
                new = tuple(m * a + (1 - m) * b for a, b in zip(new, c)) \
                    if isinstance(new, tuple) else m * new + (1 - m) * c
            out = new[0] if isinstance(new, tuple) else new
            return new, out
        return step


class RNN(Recurrent):
    """h = tanh(x_t W + h U + b)."""

    kind = "rnn"

    def cell(self, h, p, U, u):
        return F.tanh(p + h @ U)


class LSTM(Recurrent):
    """The LSTM: gates i, f, g, o from x_t W + h U + b; c = f c + i g; h = o tanh(c)."""

    kind = "lstm"

    def cell(self, c, p, U, u):
        h, cell = c
        z = p + h @ U
        i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
        cell = F.sigmoid(f) * cell + F.sigmoid(i) * F.tanh(g)
        return F.sigmoid(o) * F.tanh(cell), cell


class GRU(Recurrent):
    """The GRU (as in Cho et al. 2014, reset applied to h U): z, r gates; h = z h + (1-z) n."""

    kind = "gru"

    def cell(self, h, p, U, u):
        hu = h @ U
        z = F.sigmoid(p[:, :u] + hu[:, :u])
        r = F.sigmoid(p[:, u:2 * u] + hu[:, u:2 * u])
        n = F.tanh(p[:, 2 * u:] + r * hu[:, 2 * u:])
        return z * h + (1 - z) * n


class Reshape(Layer):
    """x reshaped to (batch,) + shape (the batch size is kept, whatever it is)."""

    kind = "reshape"

    def __init__(self, shape, name=None):
        super().__init__(name)
        self.shape = tuple(int(d) for d in shape)

    def forward(self, x, training):
        rest = x.type.shape[1:]
        if None not in rest and int(np.prod(rest)) != int(np.prod(self.shape)):
            raise ShapeError(f"{self.where()}: cannot reshape {x.describe()} to (batch,) + "
                             f"{self.shape}: {int(np.prod(rest))} values per example, the "
                             f"shape holds {int(np.prod(self.shape))}")
        return F.reshape(x, (x.shape[0],) + self.shape)
