"""Weight initializers: seeded NumPy draws for a parameter's first value (Glorot, He, ...).

Each takes (rng, shape, dtype) and returns an array. Fans follow Keras and PyTorch: for a
(fan_in, fan_out) matrix the first axis is fan_in, the last fan_out; a vector has both
equal to its length.
"""
from __future__ import annotations

import zlib

import numpy as np

from ..ir.errors import ArgumentError


def fans(shape):
    """(fan_in, fan_out) of a weight of this shape."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(rng, shape, dtype="float64"):
    """All zeros (the usual bias initializer)."""
    return np.zeros(shape, dtype=dtype)


def ones(rng, shape, dtype="float64"):
    """All ones."""
    return np.ones(shape, dtype=dtype)


def glorot_uniform(rng, shape, dtype="float64"):
    """Uniform on [-l, l] with l = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fi, fo = fans(shape)
    limit = np.sqrt(6.0 / (fi + fo))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(rng, shape, dtype="float64"):
    """Normal with std sqrt(2 / (fan_in + fan_out))."""
    fi, fo = fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fi + fo))).astype(dtype)


def he_uniform(rng, shape, dtype="float64"):
    """Uniform on [-l, l] with l = sqrt(6 / fan_in) (He et al., 2015; for ReLU layers)."""
    fi, _ = fans(shape)
    limit = np.sqrt(6.0 / fi)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(rng, shape, dtype="float64"):
    """Normal with std sqrt(2 / fan_in) (for ReLU layers)."""
    fi, _ = fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fi)).astype(dtype)


def lecun_normal(rng, shape, dtype="float64"):
    """Normal with std sqrt(1 / fan_in) (for tanh and SELU layers)."""
    fi, _ = fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(1.0 / fi)).astype(dtype)


def orthogonal(rng, shape, dtype="float64"):
    """A random orthogonal matrix (QR of a normal one, signs fixed): recurrent weights that
    neither grow nor shrink the state at the start (Saxe et al., 2014)."""
    a = rng.standard_normal((max(shape), min(shape)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    return (q if shape[0] >= shape[1] else q.T)[:shape[0], :shape[1]].astype(dtype)


INITIALIZERS = {f.__name__: f for f in (zeros, ones, glorot_uniform, glorot_normal, he_uniform,
                                        he_normal, lecun_normal, orthogonal)}
# Keras spells them xavier_* too.
INITIALIZERS.update(xavier_uniform=glorot_uniform, xavier_normal=glorot_normal)


def get(init):
    """An initializer from its name, or the callable itself."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ArgumentError(f"unknown initializer {init!r}; known: "
                            f"{', '.join(sorted(INITIALIZERS))}") from None


def rng_for(seed, name):
    """The NumPy generator for parameter `name` under `seed`: same seed and name, same draw."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])
