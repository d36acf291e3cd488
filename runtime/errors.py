"""The error classes of the runtime, and the one base class of every error flowc raises.

The base lives here because the runtime imports nothing of flowc: flowc re-exports this same
class as `flowc.FlowcError`, so `except flowc.FlowcError` also catches a failing kernel
(ProgramError) or a bad call (CallError).
"""


class FlowcError(Exception):
    """Base class of every error flowc and its runtime raise on purpose."""


class ProgramError(FlowcError, RuntimeError):
    """A kernel failed while running a Program; the message names the instruction and node."""


class ProgramIndexError(ProgramError, IndexError):
    """A kernel met an index out of bounds (an IndexError too, as NumPy raises)."""


class ProgramFileError(ProgramError, ValueError):
    """A saved Program is malformed or inconsistent; the message names the file and field."""


class PlanError(FlowcError, RuntimeError):
    """A memory plan (or a call's arrays) lets a write clobber a value still to be read."""


class CallError(FlowcError, TypeError):
    """A compiled function was called with inputs that do not match the Program's inputs."""


class CallShapeError(CallError, ValueError):
    """An input has the wrong shape (a ValueError too, as Theano and NumPy raise for shapes)."""


class ProgramValueError(ProgramError, ValueError):
    """A kernel refused a value read at run time: a negative size, a reshape that does not
    divide (NumPy raises ValueError there too)."""


def kernel_error(e, message):
    """The error to raise for a failing kernel, keeping IndexError and ValueError kinds."""
    cls = ProgramIndexError if isinstance(e, IndexError) else \
        ProgramValueError if isinstance(e, ValueError) else ProgramError
    return cls(message)
