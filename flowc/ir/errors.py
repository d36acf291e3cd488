"""Errors raised by the compiler; each says what was expected, what came, and where."""


class FlowcError(Exception):
    """Base class of every error flowc raises on purpose."""


class ShapeError(FlowcError, ValueError):
    """An op's operands have shapes or dtypes the op cannot take."""


class GraphError(FlowcError, ValueError):
    """A graph breaks the IR schema (unknown op, cycle, bad ports, bad attrs)."""


class GradError(FlowcError, ValueError):
    """A gradient was asked for that cannot be computed (non-scalar cost, integer input, ...)."""


class InputError(FlowcError, TypeError):
    """A compiled function was called with inputs that do not match its declaration."""
