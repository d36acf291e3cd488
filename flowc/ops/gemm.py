"""gemm: alpha * (A @ B) + beta * C in one BLAS call, made by the specialize pass.

Like the fused ops it exists only after autodiff (no derivative rules). C broadcasts into
the product's shape (a bias row, or a matrix of the same shape) and has its dtype.
"""
from __future__ import annotations

from ..ir.errors import ShapeError
from ..ir.types import TensorType, broadcast_shapes, fmt_shape
from .registry import OpDef, get_op, register


def _gemm_infer(types, attrs):
    a, b, c = types
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"gemm needs two matrices, got shapes {fmt_shape(a.shape)} and "
                         f"{fmt_shape(b.shape)}")
    prod = get_op("matmul").infer([a, b], {})
    if c.dtype != prod.dtype or prod.dtype not in ("float32", "float64"):
        raise ShapeError(f"gemm computes in float32 or float64 with C of the product's dtype; "
                         f"got product {prod.dtype} and C {c.dtype}")
    shape = broadcast_shapes(prod.shape, c.shape, what="gemm's C and A @ B")
    if len(shape) != 2 or any(p is not None and s != p for s, p in zip(shape, prod.shape)):
        raise ShapeError(f"gemm's C {fmt_shape(c.shape)} must broadcast into the product's "
                         f"shape {fmt_shape(prod.shape)}")
    return prod


register(OpDef("gemm", 3, _gemm_infer, attrs={"alpha": 1.0, "beta": 1.0},
               differentiable=False,
               doc="alpha * (A @ B) + beta * C in one BLAS call (made by the O2 specialize pass)"))
