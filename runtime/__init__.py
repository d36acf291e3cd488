"""flowc's runtime: executes a Program with NumPy (CPU) or CuPy (GPU). Imports nothing of flowc.

    prog = runtime.Program.load("model")        # a Program saved by flowc
    f = runtime.link(prog, device="cpu")         # generated straight-line Python
    outputs = f(x, y)                            # parameters live in f.cells
"""
from .linker import CallError, Executable, ProgramError
from .program import FORMAT_VERSION, Instr, Program
from .storage import Cell


def link(program, device="cpu", cells=None, single=None, downcast=False) -> Executable:
    """Link `program` for `device` ("cpu" or "gpu") into a callable Executable."""
    from .backends import get_backend
    return Executable(program, get_backend(device), cells=cells, single=single, downcast=downcast)


def load(path, device="cpu") -> Executable:
    """Load a saved Program and link it, with its saved parameter values."""
    return link(Program.load(path), device=device)


__all__ = ["CallError", "Cell", "Executable", "FORMAT_VERSION", "Instr", "Program",
           "ProgramError", "link", "load"]
