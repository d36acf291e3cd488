"""Random numbers as a pure op: a counter-based generator, so graphs stay deterministic."""
from __future__ import annotations

import numpy as np

from ..ir.errors import ShapeError
from ..ir.types import TensorType
from .build import apply
from .registry import OpDef, register


def _infer(types, attrs):
    like, state = types
    if state.shape != (2,) or state.dtype != "float64":
        raise ShapeError(f"random_uniform needs a float64 state of shape (2,) = [key, counter], "
                         f"got {state.short()}")
    if attrs["dtype"] not in ("float64", "float32"):
        raise ShapeError(f"random_uniform makes float64 or float32, not {attrs['dtype']}")
    return TensorType(np.dtype(attrs["dtype"]).name, like.shape)


def _batch(c):
    (like, state), (bl, bs) = c.inputs, c.batched
    if bs:
        raise ShapeError("batching random_uniform over its generator state is not supported "
                         "(one generator draws one stream)")
    # Only like's shape matters: every batch entry draws the same numbers.
    return apply("random_uniform", [apply("getitem", [like], index=(("int", 0),)), state],
                 **c.attrs), False


register(OpDef(
    "random_uniform", 2, _infer, attrs={"stream": 0, "dtype": "float64", "sharded": False},
    differentiable=False, batch=_batch,
    doc="uniform [0, 1) numbers shaped like operand 0 from state [key, counter]: element i is "
        "SplitMix64(key, counter, stream, i), the same bits on every backend; sharded (set by "
        "the data_parallel pass): i counts from rank * size, the element's place in the global "
        "batch"))


def _check_infer(types, attrs):
    (x,) = types
    lo, hi = attrs["lo"], attrs["hi"]
    if not (isinstance(lo, float) and isinstance(hi, float) and lo <= hi):
        raise ShapeError(f"random_check needs float bounds lo <= hi, got lo={lo!r}, hi={hi!r}")
    return x


# The call-time half of the random draws' argument checks (the build-time half is in
# flowc/random.py): a probability that is a graph value is checked when the call computes it.
# Raising inside the call means no update commits, so no parameter or stream advances.
register(OpDef(
    "random_check", 1, _check_infer, attrs={"lo": 0.0, "hi": 1.0, "what": "value"},
    differentiable=False,
    batch=lambda c: apply("random_check", c.inputs, **c.attrs),
    doc="operand 0 unchanged, or an error at call time naming `what` when an element is NaN "
        "or outside [lo, hi] (a draw's probability)"))
