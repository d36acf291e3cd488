"""Losses (mean over the batch). Cross-entropies take logits, not probabilities: they are
written with log_softmax and softplus, which stay finite where probabilities would round to
0 or 1."""
from __future__ import annotations

import numpy as np

from ..ir.errors import ArgumentError, ShapeError
from ..ops import api as F
from ..ops.api_linalg import take_along_axis
from ..ops.build import as_tensor


def _is_int(t):
    return np.issubdtype(np.dtype(t.dtype), np.integer) or t.dtype == "bool"


def mse(pred, target):
    """Mean squared error: mean((pred - target)**2)."""
    pred = as_tensor(pred)
    target = as_tensor(target, like=pred)
    if _is_int(target):
        target = F.cast(target, pred.dtype)
    return F.mean(F.square(pred - _match(target, pred)))


def binary_cross_entropy(logits, target):
    """-y log sigmoid(z) - (1-y) log(1 - sigmoid(z)), averaged; z are logits, y in [0, 1].

    Written as softplus(z) - y z, exact and finite for any z. Logits of shape (N, 1) go with
    targets of shape (N,).
    """
    z = as_tensor(logits)
    y = as_tensor(target, like=z)
    if _is_int(y):
        y = F.cast(y, z.dtype)
    if z.ndim == y.ndim + 1 and z.type.shape[-1] == 1:
        z = F.squeeze(z, -1)
    return F.mean(F.softplus(z) - _match(y, z) * z)


def categorical_cross_entropy(logits, target):
    """-sum(y * log_softmax(z)) averaged over the batch; z are logits (N, K).

    The target is one-hot (or soft) labels (N, K), or integer class labels (N,).
    """
    z = as_tensor(logits)
    y = as_tensor(target)
    if z.ndim < 1:
        raise ShapeError(f"categorical_cross_entropy needs logits with a class axis, got "
                         f"{z.describe()}")
    logp = F.log_softmax(z, axis=-1)
    if _is_int(y):
        if y.ndim != z.ndim - 1:
            raise ShapeError(f"categorical_cross_entropy: integer labels must have one "
                             f"dimension less than the logits; got {y.describe()} for "
                             f"{z.describe()}")
        picked = take_along_axis(logp, F.expand_dims(F.cast(y, "int64"), -1), axis=-1)
        return -F.mean(picked)
    return -F.mean(F.sum(_match(y, z) * logp, axis=-1))


def _match(y, z):
    """Catch shape mismatches early, naming both tensors (broadcasting would hide them)."""
    if y.ndim != z.ndim or any(a is not None and b is not None and a != b
                               for a, b in zip(y.type.shape, z.type.shape)):
        raise ShapeError(f"the target {y.describe()} does not match the model's output "
                         f"{z.describe()}")
    return y


LOSSES = {
    "mse": mse, "mean_squared_error": mse,
    "binary_crossentropy": binary_cross_entropy, "binary_cross_entropy": binary_cross_entropy,
    "categorical_crossentropy": categorical_cross_entropy,
    "categorical_cross_entropy": categorical_cross_entropy,
    "cross_entropy": categorical_cross_entropy,
}


def get(name):
    """A loss function from its name, or the callable itself."""
    if callable(name):
        return name
    try:
        return LOSSES[name]
    except KeyError:
        raise ArgumentError(f"unknown loss {name!r}; known: "
                            f"{', '.join(sorted(LOSSES))}") from None
