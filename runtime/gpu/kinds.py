"""Which instruction runs as what on the GPU (cuBLAS, cuSOLVER, generated CUDA, CuPy, a view):
for pictures, profiles and the CUDA-graph capture. Needs no CuPy."""
from __future__ import annotations

import numpy as np

from . import codegen as cg

GENERATED = set(cg.ELEMENTWISE_OPS) | set(cg.REDUCTIONS) | {"fused", "fused_reduce",
                                                             "random_uniform"}
# conv_codegen.py's kernels: generated CUDA too, but not codegen's launch plans (GENERATED)
CONV_GENERATED = {"im2col", "pool_argmax"}
CUSOLVER = {"solve", "inv", "slogdet"}
# Kernels that read values on the host before they launch: integer-array indexing checks its
# indices (CuPy would wrap them), random_check its probabilities (a failed call stops there),
# the ops whose sizes are run-time scalars read them, and shape/dim copy sizes to the device.
CHECKED = {"advindex", "index_add", "index_set", "take", "take_grad", "take_along_axis",
           "put_along_axis_grad", "random_check", "reshape_dyn", "alloc", "arange_dyn", "shape", "dim",
           "loop", "cond",
           "allreduce"}  # not a host read: a collective, kept out of captured CUDA graphs
VIEWS = {"part", "select", "reshape", "reshape_like", "transpose", "expand_dims", "squeeze", "broadcast_to",
         "broadcast_like", "getitem", "concat_grad", "diag_part", "stop_gradient", "specify_shape",
         "custom_vjp"}


def kernel_kind(kernel, dtype="float64") -> str:
    """'generated CUDA', 'cuBLAS', 'cuSOLVER', 'view' (no launch), 'CuPy, checked' (reads
    values on the host first) or 'CuPy' for one kernel."""
    if kernel in GENERATED or kernel in CONV_GENERATED:
        return "generated CUDA"
    if kernel in ("matmul", "gemm", "conv", "conv_bias", "conv_cols", "conv_wgrad"):  # conv: generated im2col, then cuBLAS
        return "cuBLAS" if np.dtype(dtype).kind in "fc" else "CuPy"
    if kernel in CUSOLVER:
        return "cuSOLVER"
    if kernel in VIEWS:
        return "view"
    if kernel in CHECKED:
        return "CuPy, checked"
    return "CuPy"


def kernel_kinds(program):
    """[(instruction index, kernel, node id, kind)] for every instruction of `program` on the
    GPU; {node: kind} of it is what a picture needs to colour nodes by how they run."""
    return [(k, ins.kernel, ins.node, kernel_kind(ins.kernel, ins.dtype))
            for k, ins in enumerate(program.instrs)]
