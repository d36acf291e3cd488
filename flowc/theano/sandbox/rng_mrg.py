"""theano.sandbox.rng_mrg.MRG_RandomStreams on flowc's random streams (flowc/random.py).

Theano's MRG31k3p numbers are not reproduced: flowc draws its own counter-based numbers,
the same on CPU and GPU. `nstreams` is accepted and ignored (flowc needs no stream count).
"""
from __future__ import annotations

from ..tensor.shared_randomstreams import _TheanoStreams
from ..unsupported import unsupported


class MRG_RandomStreams(_TheanoStreams):
    """theano.sandbox.rng_mrg.MRG_RandomStreams(seed=12345)."""

    _what = "MRG_RandomStreams"

    def __init__(self, seed=12345):
        super().__init__(seed)

    def uniform(self, size, low=0.0, high=1.0, ndim=None, dtype=None, nstreams=None, **kw):
        """Uniform numbers in [low, high)."""
        return super().uniform(size, low, high, ndim, dtype, **kw)

    def normal(self, size, avg=0.0, std=1.0, ndim=None, dtype=None, nstreams=None, **kw):
        """Normal numbers with mean avg and standard deviation std."""
        return super().normal(size, avg, std, ndim, dtype, **kw)

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", nstreams=None, **kw):
        """0/1 draws with probability p (MRG supports n=1 only, as here)."""
        if n != 1:
            unsupported(f"MRG_RandomStreams.binomial(n={n!r})")
        return super().binomial(size, n, p, ndim, dtype, **kw)

    def choice(self, size=1, a=None, replace=False, p=None, ndim=None, dtype="int64",
               nstreams=None):
        """Entries drawn without replacement (range(a) for an int a)."""
        if p is not None or a is None:
            unsupported("MRG_RandomStreams.choice(p=...)")
        size, _ = self._size("choice", size, ndim, None)
        return self.stream.choice(a, size=size, replace=replace, dtype=dtype)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        unsupported(f"MRG_RandomStreams.{name}")
