"""flowc's runtime: executes a Program with NumPy (CPU) or CuPy (GPU). Imports nothing of flowc.

    prog = runtime.Program.load("model")        # a Program saved by flowc
    f = runtime.link(prog, device="cpu")         # generated straight-line Python
    outputs = f(x, y)                            # parameters live in f.cells
"""
from .errors import (CallError, CallShapeError, FlowcError, PlanError, ProgramError,
                     ProgramFileError, ProgramIndexError, ProgramValueError)
from .link.linker import Executable
from .memory.verify import verify_plan
from .program.format import FORMAT_VERSION, Instr, Program
from .storage import Cell
from .cpu import loops as _loops  # noqa: F401  (registers the loop kernel)


def link(program, device="cpu", cells=None, single=None, downcast=False, host_outputs=False,
         cuda_graph=False, checks=True) -> Executable:
    """Link `program` for `device` ("cpu" or "gpu") into a callable Executable.

    GPU options (the CPU accepts and ignores them, so code runs unchanged on either device):
    host_outputs=True returns NumPy arrays instead of CuPy arrays; cuda_graph=True replays
    each shape signature's step as a captured CUDA graph (see runtime/gpu/executable.py).
    checks=False skips the per-call input checks (a loop body, fed by its loop).
    """
    from .backends import get_backend
    backend = get_backend(device)
    if backend.executable is None:
        return Executable(program, backend, cells=cells, single=single, downcast=downcast,
                          checks=checks)
    return backend.executable(program, backend, cells=cells, single=single, downcast=downcast,
                              host_outputs=host_outputs, cuda_graph=cuda_graph, checks=checks)


def load(path, device="cpu") -> Executable:
    """Load a saved Program and link it, with its saved parameter values.

    Every field of PATH.json and PATH.npz is checked before anything is linked or run; a
    bad file raises ProgramFileError naming the file and the field (runtime/program/validate.py).
    """
    from .backends import get_backend
    return link(Program.load(path, kernels=get_backend(device).kernels), device=device)


__all__ = ["CallError", "CallShapeError", "Cell", "Executable", "FlowcError", "FORMAT_VERSION",
           "Instr", "PlanError", "Program", "ProgramError", "ProgramFileError", "ProgramIndexError", "ProgramValueError", "link", "load",
           "verify_plan"]
