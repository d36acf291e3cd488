"""Ops that steer differentiation: stop_gradient, custom_vjp boundaries, and basis."""
from __future__ import annotations

import math

from ..ir.errors import GradError
from ..ir.types import TensorType
from .build import apply
from .registry import REQUIRED, OpDef, register

register(OpDef("stop_gradient", 1, lambda ts, a: ts[0], vjp=lambda c: [None],
               jvp=lambda c: None, elementwise=True,
               doc="x unchanged, but no gradient flows through it"))


def _custom_vjp(c):
    vjp_fn, _ = c.out.graph.custom_rules[c.attrs["rule"]]
    cts = vjp_fn(list(c.inputs[1:]), c.out, c.g)
    cts = [cts] if not isinstance(cts, (list, tuple)) else list(cts)
    if len(cts) != len(c.inputs) - 1:
        raise GradError(f"custom vjp rule returned {len(cts)} cotangents for "
                        f"{len(c.inputs) - 1} inputs")
    return [None] + cts  # nothing flows through the wrapped expression itself


def _custom_jvp(c):
    _, jvp_fn = c.out.graph.custom_rules[c.attrs["rule"]]
    if jvp_fn is None:
        raise GradError("this custom_vjp has no jvp rule; give one (custom_vjp(fn, vjp, jvp=...))"
                        " or use reverse mode")
    # The user's rule gets a zero tangent (not None) for inputs nothing varies.
    from . import api as F
    tangents = [t if t is not None else F.zeros_like(x)
                for x, t in zip(c.inputs[1:], c.tangents[1:])]
    return jvp_fn(list(c.inputs[1:]), c.out, tangents)


register(OpDef("custom_vjp", None, lambda ts, a: ts[0], attrs={"rule": REQUIRED},
               vjp=_custom_vjp, jvp=_custom_jvp,
               batch=lambda c: apply("custom_vjp", c.inputs, **c.attrs),
               doc="the value of operand 0, differentiated by a user rule w.r.t. the others"))


def _basis_infer(types, attrs):
    (t,) = types
    n = None if None in t.shape else math.prod(t.shape)
    return TensorType(t.dtype, (n,) + t.shape)


register(OpDef("basis", 1, _basis_infer, differentiable=False,
               # Depends only on the shape of one entry: the same for every batch entry.
               batch=lambda c: (apply("basis", [_entry(c.inputs[0])]), False),
               doc="the standard basis of t's shape: eye(t.size) reshaped to (t.size,) + t.shape"))


def _entry(xb):
    """One entry of a batched tensor (its shape is what basis reads)."""
    return apply("getitem", [xb], index=(("int", 0),))
