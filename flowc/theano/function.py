"""theano.function and theano.In: a flowc Function called the way Theano's functions are."""
from __future__ import annotations

import numpy as np

from ..function import Function
from ..ir.errors import InputError
from ..ir.tensor import Tensor
from .unsupported import unsupported


class In:
    """theano.In(variable, value=..., name=...): an input with a default value."""

    def __init__(self, variable, name=None, value=None, **kwargs):
        if kwargs:
            unsupported(f"theano.In({', '.join(sorted(kwargs))}=...)")
        self.variable, self.name, self.value = variable, name or variable.name, value


class TheanoFunction(Function):
    """A compiled Function that also takes defaults, keyword arguments and Python numbers.

    A Python number or list converts to the input's dtype when no value changes (Theano's
    rule: an int 1 fits an iscalar); NumPy arrays keep flowc's safe-casting check.
    """

    def __init__(self, inputs, *args, **kwargs):
        specs = [i if isinstance(i, In) else In(i) for i in inputs]
        super().__init__([s.variable for s in specs], *args, **kwargs)
        self.specs = specs

    def __call__(self, *args, **kwargs):
        if len(args) > len(self.specs):
            raise InputError(f"expected at most {len(self.specs)} input(s), got {len(args)}")
        values = list(args)
        for s in self.specs[len(args):]:
            if s.name in kwargs:
                values.append(kwargs.pop(s.name))
            elif s.value is not None:
                values.append(s.value)
            else:
                raise InputError(f"missing input {s.name or s.variable!r}")
        if kwargs:
            raise InputError(f"unknown input name(s): {', '.join(sorted(kwargs))}")
        return super().__call__(*[_convert(v, s.variable) for v, s in zip(values, self.specs)])

    def copy(self, *args, **kwargs):
        unsupported("theano.function(...).copy")


def _convert(value, var: Tensor):
    """A Python number or list as var's dtype when that changes no value; else unchanged."""
    if isinstance(value, (np.ndarray, np.generic)) or not isinstance(value, (int, float, list,
                                                                             tuple, bool)):
        return value
    raw = np.asarray(value)
    try:
        conv = raw.astype(var.dtype)
    except (TypeError, ValueError):
        return value
    with np.errstate(all="ignore"):
        same = conv.shape == raw.shape and bool(np.all(conv == raw))
    return conv if same else value
