"""Random numbers as graph ops: a counter-based generator whose state is a parameter.

The state is one param `NAME` = [key, counter]: `key` comes from the seed, `counter` counts
training steps (the generator's update adds 1 to it). Every draw is a pure function of
(key, counter, stream, element index), so the same seed gives the same run, a checkpoint
(which saves the param) resumes the same stream, and compiling twice changes nothing.

`uniform_like` is the one place that makes the numbers. The op registry has no random op
yet, so it builds a stand-in from float ops (a sin-based hash, fine for dropout masks, not
for statistics). When an op `random_uniform(like, state; stream, dtype)` is registered it is
used instead; its contract is in `RANDOM_UNIFORM_SPEC`.
"""
from __future__ import annotations

import numpy as np

from ..ir.errors import FlowcError
from ..leaves import param
from ..ops import api as F
from ..ops.api_grad import stop_gradient
from ..ops.build import apply, constant
from ..ops.registry import OPS
from .init import rng_for

RANDOM_UNIFORM_SPEC = """\
random_uniform(like, state; stream: int = 0, dtype: str = "float64") -> dtype[like.shape]
  like:   any tensor; only its run-time shape is read.
  state:  the generator param, shape (2,): [key, counter].
  result: uniform numbers in [0, 1), C-order element i = U(key, counter, stream, i), where U
          is a counter-based generator (Philox4x32-10: key words (key, stream), counter words
          (counter, i)); the top 53 (float64) or 24 (float32) bits of the first output word
          pair scaled by 2**-53 or 2**-24. Same bits on every backend.
  flags:  differentiable=False (no gradient to either operand), not elementwise."""


class Generator:
    """A seeded random generator whose state lives in a param named `name`."""

    def __init__(self, seed=0, name="rng"):
        self.seed, self.name = int(seed), name
        self.state = None
        self._streams = 0

    def _state_for(self, graph):
        if self.state is None:
            key = rng_for(self.seed, self.name).random()  # a well-mixed float in [0, 1)
            self.state = param(self.name, np.array([key, 0.0]), graph=graph)
        elif self.state.graph is not graph:
            raise FlowcError(f"generator {self.name!r} belongs to another graph")
        return self.state

    def uniform(self, like):
        """Uniform [0, 1) numbers shaped like `like`; each call draws a fresh stream."""
        state = self._state_for(like.graph)
        stream = self._streams
        self._streams += 1
        return uniform_like(like, state, stream)

    def updates(self):
        """The state update to pass to fc.function: the counter advances by one per call."""
        if self.state is None:
            return []
        return [(self.state, self.state + np.array([0.0, 1.0]))]


def uniform_like(like, state, stream=0):
    """Uniform [0, 1) numbers shaped like `like` from generator `state` ([key, counter])."""
    dtype = like.dtype if np.issubdtype(np.dtype(like.dtype), np.floating) else "float64"
    if "random_uniform" in OPS:
        return apply("random_uniform", [like, state], stream=int(stream), dtype=dtype)
    return F.cast(stop_gradient(_hash_uniform(like, state, stream)), dtype)


def _fract_sin(v):
    # fract(|sin(v)| * 43758.5453): the classic shader hash; t >= 0, so trunc is floor.
    t = F.abs(F.sin(v) * 43758.5453123)
    return t - F.cast(F.cast(t, "int64"), "float64")


def _hash_uniform(like, state, stream):
    """The stand-in: two rounds of the sin hash over (key, counter, stream, flat index)."""
    idx = flat_index(like)
    key, counter = state[0], state[1]
    k = _fract_sin(key * 91.3458 + counter * 1.6180339887 + (0.7548776662 * stream + 0.1234))
    u = _fract_sin(idx * 12.9898 + k * 78.233 + 0.5)
    return _fract_sin(u * 63.7264 + idx * 0.0137 + k * 10.7)


def flat_index(like):
    """The C-order flat index of each element of `like`, as float64 (sizes read at run time)."""
    g, nd = like.graph, like.ndim
    if nd == 0:
        return constant(0.0, graph=g)
    total = None
    for a, d in enumerate(like.shape):
        if d is not None:
            ix = constant(np.arange(d, dtype=np.float64), graph=g)
        else:
            # No iota op: argmax over the identity basis of a 1-D slice gives 0..n-1 (n*n work,
            # so only for the unknown axes, usually the batch).
            line = like[tuple(slice(None) if i == a else 0 for i in range(nd))]
            ix = F.cast(F.argmax(apply("basis", [line]), axis=0), "float64")
        if nd > 1:
            ix = F.reshape(ix, tuple(-1 if i == a else 1 for i in range(nd)))
        later = tuple(range(a + 1, nd))
        if later:
            ix = ix * F.count(like, axis=later, dtype="float64")
        total = ix if total is None else total + ix
    return total
