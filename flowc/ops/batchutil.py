"""Helpers for batching rules: operands with and without the new leading batch axis."""
from __future__ import annotations

import math

from ..ir.errors import ShapeError
from . import api as F
from .build import apply


def materialize(x, ref):
    """Unbatched x repeated along the batch axis of the batched tensor `ref`: (B,) + x.shape."""
    zb = F.cast(F.zeros_like(_per_entry(ref)), x.dtype)
    if x.ndim:
        zb = F.expand_dims(zb, tuple(range(1, x.ndim + 1)))
    return zb + F.expand_dims(x, 0)


def _per_entry(ref):
    """A (B,) tensor from the batched `ref`, one element per batch entry: a view where every
    other axis is known to be non-empty, else a sum over at most one element per entry (an
    axis of size 0 has no element to pick, and a sum over nothing is still defined)."""
    if ref.ndim == 1:
        return ref
    rest = ref.type.shape[1:]
    if all(d is not None and d > 0 for d in rest):
        return ref[(slice(None),) + (0,) * len(rest)]
    head = ref[(slice(None),) + (slice(None, 1),) * len(rest)]
    return F.sum(head, tuple(range(1, ref.ndim)))


def rows(x, n):
    """Batched x as an (n, rest) matrix, rest spelled out where it is known: NumPy cannot
    resolve a -1 next to an empty axis (the Jacobian of a size-0 tensor has batch size 0)."""
    rest = x.type.shape[1:]
    return F.reshape(x, (n, math.prod(rest) if None not in rest else -1))


def align(x, rank):
    """Batched x with size-1 axes inserted after the batch axis until it has `rank` axes."""
    k = rank - x.ndim
    return F.expand_dims(x, tuple(range(1, 1 + k))) if k > 0 else x


def batched_operands(c):
    """All operands batched: unbatched ones are materialized against a batched one."""
    ref = next(x for x, b in zip(c.inputs, c.batched) if b)
    return [x if b else materialize(x, ref) for x, b in zip(c.inputs, c.batched)]


def shift_axes(axis, ndim):
    """Axes of the unbatched op, moved past the batch axis (None: every original axis)."""
    if axis is None:
        return tuple(range(1, ndim + 1))
    if isinstance(axis, int):
        return axis + 1
    return tuple(a + 1 for a in axis)


def batch_elementwise(c):
    """Shared batching rule of elementwise ops: batched operands get the output's rank."""
    rank = c.out.ndim + 1
    args = [align(x, rank) if b else x for x, b in zip(c.inputs, c.batched)]
    return apply(c.op, args, **c.attrs)


def static_size(c, what):
    """The batch size, which some rules (broadcast_to, reshape with -1) must know."""
    if c.size is None:
        raise ShapeError(f"batching {what} needs a batch size known when the graph is built")
    return c.size
