"""Random numbers as graph ops: a counter-based generator whose state is a parameter.

The state is one param `NAME` = [key, counter]: `key` comes from the seed, `counter` counts
training steps (the generator's update adds 1 to it). Every draw is a pure function of
(key, counter, stream, element index), so the same seed gives the same run, a checkpoint
(which saves the param) resumes the same stream, and compiling twice changes nothing.

`uniform_like` is the one place that makes the numbers, with the `random_uniform` op
(flowc/ops/random_ops.py: SplitMix64 over (key, counter, stream, element index)).
"""
from __future__ import annotations

import numpy as np

from ..ir.errors import FlowcError
from ..leaves import param
from ..ops.build import apply
from .init import rng_for

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
    dtype = like.dtype if like.dtype in ("float32", "float64") else "float64"
    return apply("random_uniform", [like, state], stream=int(stream), dtype=dtype)
