"""Collective ops for data-parallel training: grad_pack, allreduce, grad_unpack.

The data_parallel pass (flowc/passes/data_parallel.py) puts them between each gradient and
its update. They exist only after autodiff (no derivative rules). Their kernels reduce over
the runtime's current communicator (flowc_runtime.comm); with one process they are copies.
"""
from __future__ import annotations

from math import prod

from ..ir.errors import ShapeError
from ..ir.types import TensorType, fmt_shape
from .registry import OpDef, register

REDUCE_OPS = ("sum", "mean")


def _pack_infer(types, attrs):
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:  # one dtype per bucket (one MPI datatype per call)
        raise ShapeError(f"grad_pack needs operands of one dtype, got {sorted(dtypes)}")
    if any(None in t.shape for t in types):
        raise ShapeError("grad_pack needs static shapes, got "
                         + ", ".join(fmt_shape(t.shape) for t in types))
    return TensorType(types[0].dtype, (sum(prod(t.shape) for t in types),))


def _pack_infer_checked(types, attrs):
    t = _pack_infer(types, attrs)
    if attrs["mean"] and t.dtype not in ("float16", "float32", "float64"):
        raise ShapeError(f"grad_pack mean=True needs float operands, got {t.dtype}")
    return t


def _allreduce_infer(types, attrs):
    if attrs["op"] not in REDUCE_OPS:
        raise ShapeError(f"allreduce op must be one of {REDUCE_OPS}, got {attrs['op']!r}")
    if attrs["op"] == "mean" and types[0].dtype not in ("float16", "float32", "float64"):
        raise ShapeError(f"allreduce mean needs a float operand, got {types[0].dtype}")
    return types[0]


def _unpack_infer(types, attrs):
    (t,) = types
    size = prod(attrs["shape"])
    if t.ndim != 1 or t.shape[0] is None or attrs["offset"] < 0 or \
            attrs["offset"] + size > t.shape[0]:
        raise ShapeError(f"grad_unpack of {fmt_shape(attrs['shape'])} at offset "
                         f"{attrs['offset']} does not fit a flat buffer {fmt_shape(t.shape)}")
    return TensorType(t.dtype, tuple(attrs["shape"]))


register(OpDef("grad_pack", None, _pack_infer_checked, attrs={"mean": False},
               differentiable=False,
               doc="gradients flattened and concatenated into one bucket buffer; mean=True "
                   "scales them by 1 / the number of processes on the way (the copy is made "
                   "anyway), so a sum allreduce then gives the mean"))
register(OpDef("allreduce", 1, _allreduce_infer, attrs={"op": "sum"}, differentiable=False,
               doc="sum (or mean) of x over every process of the data-parallel world"))
register(OpDef("grad_unpack", 1, _unpack_infer, attrs={"offset": 0, "shape": ()},
               differentiable=False,
               doc="one gradient read back from a reduced bucket (a view)"))
