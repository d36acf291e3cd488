"""Errors raised by the compiler; each says what was expected, what came, and where.

FlowcError is the runtime's base class (runtime/errors.py), the same object: the runtime
imports nothing of flowc, and `except FlowcError` must also catch its errors (a kernel that
failed, a call with bad inputs).
"""
from flowc_runtime.errors import FlowcError

__all__ = ["ArgumentError", "DisconnectedGradientWarning", "FlowcError", "GradError",
           "GraphError", "InputError", "InputShapeError", "MissingInputError", "ShapeError"]


class ShapeError(FlowcError, ValueError):
    """An op's operands have shapes or dtypes the op cannot take."""


class GraphError(FlowcError, ValueError):
    """A graph breaks the IR schema (unknown op, cycle, bad ports, bad attrs)."""


class MissingInputError(ShapeError):
    """A loop's step reads a value it was not given (theano.scan(strict=True): a shared
    variable missing from non_sequences); Theano's name for it."""


class GradError(FlowcError, ValueError):
    """A gradient was asked for that cannot be computed (non-scalar cost, integer input, ...)."""


class DisconnectedGradientWarning(UserWarning):
    """fc.grad was asked for the gradient of a tensor the cost does not depend on (zeros)."""


class InputError(FlowcError, TypeError):
    """A compiled function was called with inputs that do not match its declaration."""


class InputShapeError(InputError, ShapeError):
    """A compiled function was called with an input of the wrong shape (also a ValueError)."""


class ArgumentError(FlowcError, ValueError):
    """A function was given an argument value it does not take (an unknown name, a bad option)."""
