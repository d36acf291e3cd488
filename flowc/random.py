"""Random streams: noise inside the graph (dropout, denoising, sampling, RBMs).

    s = fc.random.Stream(seed=1)
    noise = s.normal(like=x, std=0.1)          # shaped like x at call time
    mask = s.binomial((100,), p=0.8)           # a fixed size
    f = fc.function([x], x * mask + noise)     # the stream advances on every call

A Stream's state is one float64 param [key, counter]. Every draw is a node built from the
`random_uniform` op (SplitMix64 of key, counter, the draw's stream number and the element
index), so the same seed gives the same numbers on CPU and GPU, a checkpoint (which saves the
param) resumes the stream, and the numbers of call k depend only on the seed and k. Each draw
gets stream numbers of its own: two draws are independent, one draw used twice is the same
numbers. The state has a default update, counter + 1, that `fc.function` adds to every
function using a draw (Theano's `default_update`) unless `no_default_updates=True`; updates
commit last, so a failed call advances no stream.

Draws other than uniform are graph compositions of uniform numbers and elementwise ops, so
every backend runs them with the kernels it already has:
- normal: Box-Muller, computed in float64 and rounded once to the dtype (see `normal`).
- binomial(n, p): the count of n uniform numbers below p.
- integers(low, high): floor(low + u * (high - low)) from a float64 u.
- permutation(n) / choice without replacement: the order of n uniform numbers.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .ir.errors import ArgumentError
from .ir.graph import default_graph
from .ir.tensor import Tensor
from .leaves import param
from .ops import api as F
from .ops.api_linalg import topk
from .ops.api_make import zeros
from .ops.api_shape import has_tensor
from .ops.api_vocab import argsort
from .ops.build import apply, constant
from .ir.trace import user_trace

__all__ = ["Stream"]

FLOATS = ("float32", "float64")
INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def _error(what, message):
    """A bad draw argument: the draw, the user's line and what was wrong."""
    return ArgumentError(f"random {what} at {user_trace()}: {message}")


def seed_key(seed) -> float:
    """The generator key for an integer seed: a well-mixed float in [0, 1) (53 bits)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ArgumentError(f"a random seed must be a non-negative integer, got {seed!r}")
    words = [int(seed) >> (32 * i) & 0xFFFFFFFF for i in range(max(1, -(-int(seed).bit_length()
                                                                          // 32)))]
    return float(np.random.default_rng([0x5EED] + words).random())


class Stream:
    """A seeded stream of random draws whose state is the param `name` = [key, counter]."""

    def __init__(self, seed=0, name=None, graph=None):
        self.key = seed_key(seed)
        self.name, self._graph, self.state, self.update = name, graph, None, None
        self._streams = 0

    # -- state --------------------------------------------------------------------------
    def _state_for(self, graph):
        if self.state is None:
            graph = graph or self._graph or default_graph()
            name = self.name or _free_name(graph, "random")
            self.state = param(name, np.array([self.key, 0.0]), graph=graph)
            self.update = self.state + constant(np.array([0.0, 1.0]), graph=graph)
            graph.default_updates[self.state.id] = self.update.id
        elif graph is not None and self.state.graph is not graph:
            raise ArgumentError(f"random stream {self.state.name!r} belongs to another graph")
        return self.state

    def seed(self, seed):
        """Restart the stream from `seed` (counter 0); compiled functions see it at once."""
        self.key = seed_key(seed)
        if self.state is not None:
            self.state.set_value(np.array([self.key, 0.0]))  # stays on the GPU if it is there

    def updates(self):
        """The state's (param, new value) pair, for a function compiled without defaults."""
        return [] if self.state is None else [(self.state, self.update)]

    def _shape_of(self, what, size, like):
        """A tensor whose (run-time) shape is the draw's: `like`, or one built for `size`."""
        if like is not None:
            if size is not None:
                raise _error(what, "give size or like, not both")
            if not isinstance(like, Tensor):
                raise _error(what, f"like must be a flowc Tensor, got {type(like).__name__}")
            self._state_for(like.graph)
            return like
        if size is not None and has_tensor(size):  # sizes read at run time (x.shape[0], n)
            sized = zeros(size, dtype="bool")
            self._state_for(sized.graph)
            return sized
        shape = check_size(what, () if size is None else size)
        graph = self._state_for(None).graph
        return F.broadcast_to(constant(np.zeros((), bool), graph=graph), shape)

    def _uniform01(self, shape_t, dtype="float64"):
        stream = self._streams
        self._streams += 1
        return apply("random_uniform", [shape_t, self.state], stream=stream, dtype=dtype)

    # -- draws ---------------------------------------------------------------------------
    def uniform(self, size=None, low=0.0, high=1.0, dtype="float64", like=None):
        """Uniform numbers in [low, high) of shape `size` (or like's run-time shape)."""
        dtype = _float_dtype("uniform", dtype)
        shape_t = self._shape_of("uniform", size, like)
        _check_bounds("uniform", low, high, "low", "high", strict=True)
        u = self._uniform01(shape_t, dtype)
        if _is_const(low, 0.0) and _is_const(high, 1.0):
            return u
        graph = self.state.graph
        r = F.cast(_t(low, graph), dtype) + F.cast(_t(high, graph) - _t(low, graph), dtype) * u
        if _is_number(low) and _is_number(high):
            # Rounding can reach `high` (1 + 3 * (1 - 2**-24) is 4 in float32): keep it open.
            top = np.nextafter(np.array(high, dtype), np.array(low, dtype))
            r = F.minimum(r, constant(top, graph=graph))
        return r

    def normal(self, size=None, mean=0.0, std=1.0, dtype="float64", like=None):
        """Normal numbers with `mean` and `std` of shape `size` (or like's run-time shape).

        Box-Muller, z = sqrt(-2 log(1 - u1)) cos(2 pi u2), computed in float64 from two
        53-bit uniform draws and rounded once to `dtype`. It is exact (a closed form, not an
        approximation of the inverse CDF; it needs only log, sqrt and cos, which every
        backend has to within an ulp), 1 - u1 lies in (0, 1] so log never sees 0, and the
        largest |z| is sqrt(2 * 53 ln 2) = 8.57: the tail beyond it has probability 1e-17.
        Computing it in float32 would cut the tail at 5.77 (24-bit uniforms; probability
        8e-9, visible in a long run) and lose digits of log near 1.
        """
        dtype = _float_dtype("normal", dtype)
        shape_t = self._shape_of("normal", size, like)
        if _is_number(std) and std < 0:
            raise _error("normal", f"std must be >= 0, got {std!r}")
        u1, u2 = self._uniform01(shape_t), self._uniform01(shape_t)
        z = F.sqrt(-2.0 * F.log(1.0 - u1)) * F.cos((2.0 * math.pi) * u2)
        if not (_is_const(mean, 0.0) and _is_const(std, 1.0)):
            graph = self.state.graph
            z = F.cast(_t(mean, graph), "float64") + F.cast(_t(std, graph), "float64") * z
        return z if dtype == "float64" else F.cast(z, dtype)

    def binomial(self, size=None, n=1, p=0.5, dtype="int64", like=None):
        """Counts of successes in n trials of probability p (p broadcasts to the draw shape)."""
        _int_arg("binomial", "n", n, 0)
        shape_t = self._shape_of("binomial", size, like)
        p = self._probability("binomial", p)
        if n == 0:
            hits = F.less(self._uniform01(shape_t), -1.0)  # no trials, no successes
        elif n == 1 or like is not None:
            # One draw per trial (n stream numbers); with a fixed size, one draw of n rows.
            hits = F.less(self._uniform01(shape_t), p)
            for _ in range(n - 1):
                hits = F.add(F.cast(hits, "int64"), F.cast(F.less(self._uniform01(shape_t), p),
                                                           "int64"))
        else:
            trials = self._shape_of("binomial", (n,) + tuple(shape_t.type.shape), None)
            hits = F.sum(F.cast(F.less(self._uniform01(trials), p), "int64"), axis=0)
        return F.cast(hits, _dtype("binomial", dtype))

    def integers(self, low, high=None, size=None, dtype="int64", like=None):
        """Integers in [low, high) (NumPy's `integers`; high=None draws from [0, low))."""
        low, high = (0, low) if high is None else (low, high)
        _int_arg("integers", "low", low)
        _int_arg("integers", "high", high)
        if high <= low:
            raise _error("integers", f"needs low < high, got low={low}, high={high}")
        if high - low > 2 ** 53:
            raise _error("integers", f"high - low must be at most 2**53, got {high - low}")
        shape_t = self._shape_of("integers", size, like)
        # u has 53 bits, so floor(u * span) is uniform over the span up to 2**-53 * span.
        k = F.cast(self._uniform01(shape_t) * float(high - low), "int64")
        return F.cast(k + low if low else k, _dtype("integers", dtype))

    def permutation(self, n, dtype="int64"):
        """A random order of 0 .. n-1 (n may be an integer scalar tensor, read at run time)."""
        if isinstance(n, Tensor):  # the whole order: a stable argsort of n uniform keys
            keys = self._uniform01(self._shape_of("permutation", (n,), None))
            return F.cast(argsort(keys), _dtype("permutation", dtype))
        _int_arg("permutation", "n", n, 0)
        return F.cast(self._order("permutation", n, n), _dtype("permutation", dtype))

    def choice(self, a, size=None, replace=True, p=None, dtype=None):
        """Entries of `a` (or of range(a) for an int): uniformly, with probabilities `p`, or
        without replacement."""
        pool = None
        # The state first: with p, the probabilities are checked before any draw is built.
        self._state_for(a.graph if isinstance(a, Tensor) else None)
        if isinstance(a, numbers.Integral) and not isinstance(a, bool):
            _int_arg("choice", "a", a, 1)
            count = int(a)
        else:
            pool = a if isinstance(a, Tensor) else np.asarray(a)
            pshape = pool.type.shape if isinstance(pool, Tensor) else pool.shape
            if pool.ndim != 1 or pshape[0] in (None, 0):
                raise _error("choice", f"a must be a positive int or a non-empty 1-d array of "
                             f"known length, got shape {pshape}")
            count = int(pshape[0])
        if size is not None and has_tensor(size):  # a size read at run time: with replacement
            if not replace or p is not None:
                raise _error("choice", "a size read at run time needs replace=True and no p")
            idx = self.integers(0, count, size=size)
            return F.cast(idx, _dtype("choice", dtype or "int64")) if pool is None else \
                self._pick(pool, idx, dtype)
        shape = check_size("choice", () if size is None else size)
        m = int(np.prod(shape, dtype=np.int64))
        if not replace:
            if p is not None:
                raise _error("choice", "p with replace=False is not supported")
            if m > count:
                raise _error("choice", f"cannot take {m} entries of {count} without "
                             "replacement")
            idx = F.reshape(self._order("choice", count, m), shape)
        elif p is None:
            idx = self.integers(0, count, size=shape)
        else:
            idx = self._categorical(shape, count, p)
        if pool is None:
            return F.cast(idx, _dtype("choice", dtype or "int64"))
        return self._pick(pool, idx, dtype)

    def _pick(self, pool, idx, dtype):
        pool = pool if isinstance(pool, Tensor) else constant(pool, graph=self.state.graph)
        out = F.take(pool, idx)
        return out if dtype is None else F.cast(out, dtype)

    # -- helpers -------------------------------------------------------------------------
    def _order(self, what, n, k):
        """The first k entries of a random order of 0 .. n-1 (ties need equal 53-bit draws)."""
        keys = self._uniform01(self._shape_of(what, (n,), None))
        return topk(keys, k, largest=False)[1] if n else F.cast(keys, "int64")

    def _categorical(self, shape, count, p):
        """Indices drawn with probabilities p: how many cumulative sums u is at or above."""
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (count,):
            raise _error("choice", f"p must have shape ({count},), got {p.shape}")
        self._probability("choice", p)
        if not np.isclose(p.sum(), 1.0, rtol=0, atol=1e-8):
            raise _error("choice", f"probabilities p must sum to 1, got {p.sum()!r}")
        cdf = np.cumsum(p)[:-1]  # the last bin takes everything above, whatever rounding did
        u = self._uniform01(self._shape_of("choice", shape, None))
        above = F.greater_equal(F.expand_dims(u, -1), constant(cdf, graph=self.state.graph))
        return F.sum(F.cast(above, "int64"), axis=-1)

    def _probability(self, what, p):
        """p as a float64 tensor; checked now when it is known, else when the call computes it."""
        graph = self.state.graph
        if isinstance(p, Tensor):
            if p.op == "const":
                _check_prob(what, np.asarray(graph.nx.nodes[p.id]["value"]))
                return F.cast(p, "float64")
            return apply("random_check", [F.cast(p, "float64")], lo=0.0, hi=1.0,
                         what=f"random {what}: probability p")
        arr = np.asarray(p, dtype=np.float64) if not isinstance(p, np.ndarray) else p
        if arr.dtype.kind not in "biuf":
            raise _error(what, f"p must be a number or an array of numbers, got {p!r}")
        _check_prob(what, arr)
        return constant(arr.astype(np.float64), graph=graph)


def check_size(what, size):
    """`size` (an int or a tuple of ints) as a tuple, or an error naming the draw."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size,)
    try:
        shape = tuple(size)
    except TypeError:
        raise _error(what, f"size must be an int or a tuple of ints, got {size!r}") from None
    for d in shape:
        if d is None:
            raise _error(what, f"size {shape} has a dimension known only at call time; pass "
                         "like=tensor to draw with a tensor's run-time shape")
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise _error(what, f"size must hold ints, got {shape}")
        if d < 0:
            raise _error(what, f"size must not be negative, got {shape}")
    return tuple(int(d) for d in shape)


def _check_prob(what, arr):
    with np.errstate(invalid="ignore"):
        bad = ~((arr >= 0) & (arr <= 1))
    if np.any(bad):
        first = float(np.asarray(arr)[bad].ravel()[0])
        raise _error(what, f"probability p must be in [0, 1], got {first!r}")


def _check_bounds(what, low, high, a, b, strict):
    if _is_number(low) and _is_number(high) and not (low < high if strict else low <= high):
        raise _error(what, f"needs {a} < {b}, got {a}={low!r}, {b}={high!r}")


def _int_arg(what, name, v, least=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise _error(what, f"{name} must be an int, got {v!r}")
    if least is not None and v < least:
        raise _error(what, f"{name} must be at least {least}, got {v}")


def _float_dtype(what, dtype):
    name = np.dtype(dtype).name if dtype is not None else "float64"
    if name not in FLOATS:
        raise _error(what, f"dtype must be float32 or float64, got {name}")
    return name


def _dtype(what, dtype):
    name = np.dtype(dtype).name
    if name not in INTS + FLOATS:
        raise _error(what, f"dtype must be an int or float dtype, got {name}")
    return name


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_const(v, c):
    return _is_number(v) and v == c


def _t(v, graph):
    return v if isinstance(v, Tensor) else constant(np.float64(v), graph=graph)


def _free_name(graph, base):
    taken = {d.get("name") for _, d in graph.nx.nodes(data=True) if d["op"] == "param"}
    k = 0
    while f"{base}{k}" in taken:
        k += 1
    return f"{base}{k}"
