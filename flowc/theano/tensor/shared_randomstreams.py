"""theano.tensor.shared_randomstreams.RandomStreams on flowc's random streams (flowc/random.py).

The numbers are flowc's (SplitMix64), not Theano's: the same seed gives the same numbers
on flowc's CPU and GPU, not the numbers Theano gave. Each draw's stream advances on every
call of a function using it (Theano's default update) unless the function is compiled with
`no_default_updates=True`.
"""
from __future__ import annotations

import numpy as np

from ...ir.errors import ArgumentError
from ...ir.tensor import Shape, Tensor
from ...random import Stream
from ..config import config
from ..unsupported import unsupported


def _float(dtype):
    return dtype or config.floatX


class _TheanoStreams:
    """What both Theano random-stream classes share: the size rules and seed()."""

    _what = "RandomStreams"

    def __init__(self, seed=None, default_seed=0):
        self.default_seed = default_seed if seed is None else seed
        self.stream = Stream(self.default_seed)

    def seed(self, seed=None):
        """Restart every draw from `seed` (the constructor's seed when None)."""
        self.stream.seed(self.default_seed if seed is None else seed)

    def _size(self, method, size, ndim, like, p=None):
        """(size, like) for flowc: a Tensor `like`, or p's run-time shape when `size` is p's
        (Theano's `size=h.shape, p=h`), or the size itself."""
        if like is not None:
            return None, like
        if size is None and isinstance(p, Tensor):
            return None, p
        if isinstance(size, Shape) and isinstance(p, Tensor) and size.of is p:
            return None, p  # size=h.shape, p=h: drawn with h's run-time shape
        if isinstance(size, Tensor) or isinstance(size, (tuple, list)) and any(
                isinstance(d, Tensor) for d in size):  # a shape read at run time
            if ndim is not None and isinstance(size, (tuple, list)) and ndim != len(size):
                raise ArgumentError(f"{self._what}.{method}: ndim={ndim} does not match size")
            return size, None
        if size is None:
            raise ArgumentError(f"{self._what}.{method} needs a size")
        size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        if ndim is not None and ndim != len(size):
            raise ArgumentError(f"{self._what}.{method}: ndim={ndim} does not match size {size}")
        return size, None

    def uniform(self, size=(), low=0.0, high=1.0, ndim=None, dtype=None, like=None, **kw):
        """Uniform numbers in [low, high)."""
        self._extra("uniform", kw)
        size, like = self._size("uniform", size, ndim, like)
        return self.stream.uniform(size, low, high, _float(dtype), like=like)

    def normal(self, size=(), avg=0.0, std=1.0, ndim=None, dtype=None, like=None, **kw):
        """Normal numbers with mean avg and standard deviation std."""
        if kw.pop("truncate", False):
            unsupported(f"{self._what}.normal(truncate=True)")
        self._extra("normal", kw)
        size, like = self._size("normal", size, ndim, like)
        return self.stream.normal(size, avg, std, _float(dtype), like=like)

    def binomial(self, size=(), n=1, p=0.5, ndim=None, dtype="int64", prob=None, like=None,
                 **kw):
        """Counts of successes in n trials of probability p."""
        self._extra("binomial", kw)
        p = prob if prob is not None else p
        size, like = self._size("binomial", size, ndim, like, p)
        return self.stream.binomial(size, n, p, dtype, like=like)

    def _extra(self, method, kw):
        kw.pop("nstreams", None)  # MRG's number of generator streams: flowc needs none
        if kw:
            unsupported(f"{self._what}.{method}({', '.join(sorted(kw))}=...)")


class RandomStreams(_TheanoStreams):
    """theano.tensor.shared_randomstreams.RandomStreams(seed)."""

    def random_integers(self, size=(), low=0, high=1, ndim=None, dtype="int64"):
        """Integers from low to high, both included (Theano's rule)."""
        size, _ = self._size("random_integers", size, ndim, None)
        return self.stream.integers(low, high + 1, size=size, dtype=dtype)

    def choice(self, size=(), a=2, replace=True, p=None, ndim=None, dtype="int64"):
        """Entries of a (range(a) for an int), with or without replacement."""
        size, _ = self._size("choice", size, ndim, None)
        return self.stream.choice(a, size=size, replace=replace, p=p, dtype=dtype)

    def permutation(self, size=(), n=1, ndim=None, dtype="int64"):
        """One random order of 0 .. n-1 (size=() or None)."""
        if size not in ((), None, []):
            unsupported("RandomStreams.permutation(size=...) with several permutations")
        return self.stream.permutation(n, dtype=dtype)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        unsupported(f"RandomStreams.{name}")
