"""theano.function and theano.In: a flowc Function called the way Theano's functions are."""
from __future__ import annotations

import numpy as np

from ..function import Function
from ..ir.errors import InputError
from ..ir.tensor import Tensor
from .unsupported import unsupported


class In:
    """theano.In(variable, value=..., name=...): an input with a default value. `borrow`,
    `mutable`, `strict` and `allow_downcast` are accepted: flowc never writes into an input
    array (so borrowing is always safe) and checks dtypes the same way either way."""

    def __init__(self, variable, name=None, value=None, borrow=False, mutable=False,
                 strict=False, allow_downcast=None, **kwargs):
        if kwargs:
            unsupported(f"theano.In({', '.join(sorted(kwargs))}=...)")
        self.variable, self.name, self.value = variable, name or variable.name, value


class Out:
    """theano.Out(variable, borrow=...): an output. Results are fresh arrays on every call,
    so borrow changes nothing."""

    def __init__(self, variable, borrow=False):
        self.variable, self.borrow = variable, borrow


class TheanoFunction(Function):
    """A compiled Function that also takes defaults, keyword arguments and Python numbers.

    A Python number or list converts to the input's dtype when no value changes (Theano's
    rule: an int 1 fits an iscalar); NumPy arrays keep flowc's safe-casting check.
    """

    def __init__(self, inputs, outputs, updates, **kwargs):
        specs = [i if isinstance(i, In) else In(i) for i in inputs]
        outputs = [o.variable if isinstance(o, Out) else o for o in outputs]
        super().__init__([s.variable for s in specs], outputs, updates, **kwargs)
        self.specs = specs
        self._made = (inputs, outputs, updates, kwargs)

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

    def copy(self, share_memory=False, swap=None, delete_updates=False, name=None,
             profile=None):
        """Theano's f.copy: the same function, with shared variables swapped for others
        ({old: new}: new is read and updated instead) and/or without its updates."""
        if share_memory or profile:
            unsupported("theano.function(...).copy(share_memory=/profile=)")
        inputs, outputs, updates, kwargs = self._made
        swap = dict(swap or {})
        pairs = list(updates.items()) if isinstance(updates, dict) else list(updates or [])
        pairs = [] if delete_updates else [(swap.get(p, p), v) for p, v in pairs]
        givens = kwargs.get("givens") or {}
        givens = list(givens.items()) if isinstance(givens, dict) else list(givens)
        # Theano's copy returns a list even for one output: so does this one.
        kw = dict(kwargs, givens=givens + list(swap.items()), single_output=False)
        if delete_updates:
            kw["no_default_updates"] = True
        return TheanoFunction(inputs, outputs, pairs, **kw)

    @property
    def maker(self):
        """f.maker.fgraph.inputs / .outputs: the optimized graph's tensors (for pp)."""
        from types import SimpleNamespace
        from ..ir.graph import Graph
        g = Graph(self.graph)
        ids = self.graph.graph
        return SimpleNamespace(fgraph=SimpleNamespace(
            inputs=[Tensor(g, n) for n in ids.get("inputs", [])],
            outputs=[Tensor(g, n) for n in ids.get("outputs", [])]))


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
