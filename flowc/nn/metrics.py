"""Metrics as graph tensors (scalars averaged over the batch)."""
from __future__ import annotations

import numpy as np

from ..ir.errors import ArgumentError
from ..ops import api as F
from ..ops.build import as_tensor


def accuracy(logits, target):
    """Fraction of correct predictions from logits.

    Several classes (N, K): argmax of the logits against integer labels (N,) or the argmax of
    one-hot targets (N, K). One logit per sample (N,) or (N, 1): z > 0 against y > 0.5.
    """
    z = as_tensor(logits)
    y = as_tensor(target)
    binary = z.ndim == 0 or z.type.shape[-1] == 1 or z.ndim == y.ndim and z.ndim == 1
    if binary:
        if z.ndim == y.ndim + 1:
            z = F.squeeze(z, -1)
        hit = F.equal(z > 0, y > 0.5)
    else:
        want = y if np.issubdtype(np.dtype(y.dtype), np.integer) and y.ndim == z.ndim - 1 \
            else F.argmax(y, axis=-1)
        hit = F.equal(F.argmax(z, axis=-1), F.cast(want, "int64"))
    return F.mean(F.cast(hit, "float64"))


METRICS = {"accuracy": accuracy, "acc": accuracy}


def get(name):
    """A metric function from its name, or the callable itself."""
    if callable(name):
        return name
    try:
        return METRICS[name]
    except KeyError:
        raise ArgumentError(f"unknown metric {name!r}; known: "
                            f"{', '.join(sorted(METRICS))}") from None
