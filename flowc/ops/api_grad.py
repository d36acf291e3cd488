"""Public functions that steer differentiation: stop_gradient and custom_vjp."""
from __future__ import annotations

from ..ir.errors import GradError
from ..ir.tensor import Tensor
from .build import apply, as_tensor


def stop_gradient(x):
    """x unchanged, but gradients (and tangents) treat it as a constant."""
    return apply("stop_gradient", [as_tensor(x)])


def custom_vjp(fn, vjp, jvp=None):
    """Wrap fn so its gradient comes from `vjp(inputs, output, g) -> [cotangent per input]`.

    fn maps tensors to one tensor. The rule builds graph nodes with flowc ops, so the result
    renders, compiles and differentiates again. `jvp(inputs, output, tangents)` (optional)
    gives forward mode. Example, gradient clipping:
        clip = fc.custom_vjp(lambda x: x, lambda xs, y, g: [fc.clip(g, -1.0, 1.0)])
    """
    def wrapped(*inputs):
        ins = [as_tensor(x) for x in inputs]
        if not ins:
            raise GradError("custom_vjp needs at least one tensor input")
        y = fn(*ins)
        if not isinstance(y, Tensor):
            raise GradError(f"custom_vjp: fn must return one Tensor, got {type(y).__name__}")
        rules = y.graph.custom_rules
        key = len(rules)
        rules[key] = (vjp, jvp)
        return apply("custom_vjp", [y] + ins, rule=key)
    wrapped.__name__ = getattr(fn, "__name__", "custom_vjp")
    return wrapped
