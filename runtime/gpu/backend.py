"""The CuPy (GPU) backend: the same Program on an NVIDIA GPU.

`load_backend()` imports CuPy only when device="gpu" is asked for, and says clearly what is
missing (CuPy, or a CUDA device) and how to fix it. The kernels are in runtime/gpu/kernels.py
(generated CUDA for every elementwise op, reduction and fused group; cuBLAS matmul; cuSOLVER;
CuPy functions for the rest) and the Executable in runtime/gpu/executable.py (parameters on
the device, NumPy or CuPy inputs, CuPy or NumPy outputs, optional CUDA-graph replay).

What does not need CuPy lives here too, so it works on any machine:
  kernel_kinds(program)        which instructions run as cuBLAS / generated CUDA / CuPy / a view
  preview(program, inputs)     the generated CUDA the GPU would launch for these inputs, planned
                               from a CPU run of the Program (for reading, nvcc, emulation)
"""
from __future__ import annotations

import dataclasses
import math
import sys
from typing import List, NamedTuple

import numpy as np

from . import codegen as cg
from . import launch_plan as cplan
from ..cpu.kernels_extra import shard_start
from ..errors import FlowcError
from .inputs import make_gpu_input_checker
from .kinds import CUSOLVER, GENERATED, VIEWS, kernel_kind, kernel_kinds  # noqa: F401

INSTALL = "pip install 'flowc[gpu]' (CuPy for CUDA 13: the cupy-cuda13x package)"


class GPUUnavailable(FlowcError, RuntimeError):
    """device="gpu" was asked for where it cannot run."""


def _import_cupy():
    try:
        import cupy
    except ImportError as e:
        raise GPUUnavailable(f"device='gpu' needs CuPy, which is not installed ({e}); install "
                             f"the GPU extra: {INSTALL}") from None
    return cupy


def _require_device(cupy):
    try:
        available = bool(cupy.is_available())
        reason = ""
    except Exception as e:  # CuPy present but the CUDA driver or runtime is not usable
        available, reason = False, f" ({type(e).__name__}: {e})"
    if not available:
        raise GPUUnavailable("device='gpu' needs an NVIDIA GPU, but CuPy finds no usable CUDA "
                             f"device on this machine{reason}; use device='cpu'")


_BACKEND = None


def load_backend():
    """The GPU backend, or a GPUUnavailable error that says what is missing and how to fix it."""
    global _BACKEND
    cupy = _import_cupy()
    _require_device(cupy)
    if _BACKEND is None:
        from . import kernels as kernels_cupy
        from .executable import CupyExecutable
        from ..cpu.backend import Backend
        _BACKEND = Backend("cupy", kernels_cupy.KERNELS, to_device=cupy.asarray,
                           copy=lambda a: cupy.array(a, copy=True),
                           input_checker=make_gpu_input_checker, executable=CupyExecutable)
    return _BACKEND


# -- preview: the generated CUDA for a Program, planned from a CPU run ---------------------------
class Generated(NamedTuple):
    """One instruction the GPU runs as generated CUDA, recorded on the CPU."""

    index: int                 # instruction index in the Program
    kernel: str                # "fused", "add", "sum", ...
    spec: tuple                # (expr, reduce, axis, keepdims)
    args: list                 # the NumPy operands it got
    result: np.ndarray         # what the NumPy kernel computed
    plan: object               # runtime.cuda_plan.Plan (sources, grid, parameters)


def generated_spec(kernel, attrs, nargs):
    """(expr, reduce, axis, keepdims) of an instruction that runs as generated CUDA
    (for random_uniform: ("random_uniform", stream, dtype))."""
    if kernel == "random_uniform":
        return ("random_uniform", attrs.get("stream", 0), attrs.get("dtype", "float64"),
                attrs.get("sharded", False))
    if kernel == "fused":
        return attrs["expr"], None, None, False
    if kernel == "fused_reduce":
        return attrs["expr"], attrs["reduce"], attrs.get("axis"), attrs.get("keepdims", False)
    if kernel in cg.REDUCTIONS:
        return cplan.ARG0, kernel, attrs.get("axis"), attrs.get("keepdims", False)
    return cplan.node_expr(kernel, attrs, nargs), None, None, False


def make_plan(spec, arrays, sms=cplan.DEFAULT_SMS):
    """The launch plan of `spec` (see generated_spec) for operand arrays (NumPy or CuPy)."""
    if spec[0] == "random_uniform":
        n = math.prod(arrays[0].shape)
        return cplan.random_plan(arrays[0].shape, spec[2], spec[1], sms, shard_start(n, spec[3]))
    expr, reduce, axis, keepdims = spec
    if reduce is None:
        return cplan.elementwise_plan(expr, arrays, sms)
    return cplan.reduce_plan(expr, arrays, reduce, axis, keepdims, sms)


def preview(program, inputs, param_values=None, sms=cplan.DEFAULT_SMS) -> List[Generated]:
    """Run `program` once on the CPU and plan, for each instruction the GPU would run as
    generated CUDA, the kernels it would launch (sources are specialized to the operands'
    layouts, so they come from real operands). Needs neither CuPy nor a GPU."""
    from ..cpu.kernels import Kernel
    from ..link.linker import Executable
    from ..storage import Cell
    from ..cpu.backend import BACKEND
    seen = []

    def wrap_fn(name, fn):
        def k(*args, out=None, **attrs):
            r = fn(*args, out=out, **attrs)
            seen.append((name, attrs, [np.array(a, copy=True) for a in args], np.array(r)))
            return r
        return k

    def wrap_prepare(name, prepare):
        def prep(**attrs):
            inner = prepare(**attrs)

            def k(*args, out=None):
                r = inner(*args, out=out)
                seen.append((name, attrs, [np.array(a, copy=True) for a in args], np.array(r)))
                return r
            return k
        return prep

    kernels = dict(BACKEND.kernels)
    for name in GENERATED:
        kern = kernels[name]
        kernels[name] = (Kernel(None, kern.kind, wrap_prepare(name, kern.prepare), kern.inplace)
                         if kern.prepare is not None else
                         Kernel(wrap_fn(name, kern.fn), kern.kind, None, kern.inplace))
    backend = dataclasses.replace(BACKEND, kernels=kernels)
    values = param_values if param_values is not None else \
        [program.values[f"param{i}"] for i in range(len(program.params))]
    exe = Executable(program, backend, cells=[Cell(np.array(v, copy=True)) for v in values],
                     single=False)
    exe(*inputs)
    # Straight-line code: the recorded calls are the generated instructions, in order.
    which = [k for k, ins in enumerate(program.instrs) if ins.kernel in GENERATED]
    out = []
    for k, (name, attrs, args, result) in zip(which, seen):
        spec = generated_spec(name, attrs, len(args))
        try:
            plan = make_plan(spec, args, sms)
        except cg.Unsupported:
            plan = None  # the GPU evaluates this one with CuPy functions
        out.append(Generated(k, name, spec, args, result, plan))
    return out


def print_sources(generated, file=None):
    """Print each previewed instruction's generated CUDA."""
    file = file or sys.stdout
    for g in generated:
        for ks in (g.plan.sources if g.plan else []):
            print(f"// instruction {g.index} ({g.kernel})\n{ks.source}", file=file)
