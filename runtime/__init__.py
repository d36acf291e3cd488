"""flowc's runtime: executes a Program with NumPy (CPU) or CuPy (GPU). Imports nothing of flowc.

    prog = runtime.Program.load("model")        # a Program saved by flowc
    f = runtime.link(prog, device="cpu")         # generated straight-line Python
    outputs = f(x, y)                            # parameters live in f.cells
"""
from .linker import CallError, Executable, ProgramError
from .plan_verify import PlanError, verify_plan
from .program import FORMAT_VERSION, Instr, Program
from .storage import Cell


def link(program, device="cpu", cells=None, single=None, downcast=False, host_outputs=False,
         cuda_graph=False) -> Executable:
    """Link `program` for `device` ("cpu" or "gpu") into a callable Executable.

    GPU options (the CPU accepts and ignores them, so code runs unchanged on either device):
    host_outputs=True returns NumPy arrays instead of CuPy arrays; cuda_graph=True replays
    each shape signature's step as a captured CUDA graph (see runtime/gpu_executable.py).
    """
    from .backends import get_backend
    backend = get_backend(device)
    if backend.executable is None:
        return Executable(program, backend, cells=cells, single=single, downcast=downcast)
    return backend.executable(program, backend, cells=cells, single=single, downcast=downcast,
                              host_outputs=host_outputs, cuda_graph=cuda_graph)


def load(path, device="cpu") -> Executable:
    """Load a saved Program and link it, with its saved parameter values."""
    return link(Program.load(path), device=device)


__all__ = ["CallError", "Cell", "Executable", "FORMAT_VERSION", "Instr", "Program",
           "PlanError", "ProgramError", "link", "load", "verify_plan"]
