"""Run old Theano code on flowc: `import flowc.theano as theano`, `from flowc.theano import
tensor as T`. What is covered is listed in flowc/theano/README.md; anything else raises
NotImplementedError naming the Theano feature, never a silent substitute."""
from __future__ import annotations

import numpy as np

from ..ir.tensor import Shape, Tensor
from ..ops.build import constant as _const
from ..leaves import param as _param
from ..render.text import pp  # noqa: F401
from . import ifelse, printing, sandbox, scan_module, tensor  # noqa: F401
from .config import config  # noqa: F401
from .function import In, Out, TheanoFunction
from .scan import scan
from .unsupported import unsupported

# Theano's debugging modes are both flowc's checked mode (flowc/checked.py): it compares the
# optimized program with the unoptimized one (DebugMode) and stops at NaN/inf (NanGuardMode).
CHECKED_MODES = ("DebugMode", "DEBUG_MODE", "NanGuardMode")

__all__ = ["In", "Mode", "Out", "config", "scan", "function", "grad", "pp", "printing", "sandbox", "shared", "tensor"]


class Mode:
    """theano.Mode(linker=, optimizer=): flowc has one linker (generated code, which runs
    only the branch an ifelse takes, as Theano's "vm" does); the optimizer maps onto flowc's
    levels: None or "fast_compile" is O0, anything else O2."""

    def __init__(self, linker=None, optimizer="default"):
        if linker not in (None, "vm", "cvm", "py", "c", "c|py", "vm_nogc", "cvm_nogc"):
            unsupported(f"theano.Mode(linker={linker!r})")
        self.linker, self.optimizer = linker, optimizer
        self.name = "FAST_COMPILE" if optimizer in (None, "None", "fast_compile") else "FAST_RUN"


def shared(value, name=None, borrow=False, strict=False, allow_downcast=None):
    """A shared variable: a flowc param with get_value/set_value."""
    arr = np.asarray(value) if borrow else np.array(value, copy=True)
    if isinstance(value, float) and not strict:
        arr = arr.astype(config.floatX)
    # borrow=True keeps the caller's array as the value (Theano's aliasing on the CPU): an
    # update replaces it, so the alias holds until the first call that updates it.
    return _param(name, arr, borrow=borrow)


def function(inputs, outputs=None, updates=None, givens=None, mode=None, name=None,
             allow_input_downcast=None, on_unused_input=None, profile=None, no_default_updates=False):
    """theano.function: list outputs give a list, one output one array; In() defaults."""
    if isinstance(mode, Mode):
        mode = mode.name
    if mode not in (None, "FAST_RUN", "FAST_COMPILE") + CHECKED_MODES:
        unsupported(f"theano.function(mode={mode!r})")
    if profile:
        unsupported("theano.function(profile=True)")
    if updates is not None and not isinstance(updates, dict):
        updates = list(updates)
    single = isinstance(outputs, (Tensor, Shape, int, Out))
    outputs = [outputs] if single else outputs if outputs is not None else []
    # x.shape[i] is a symbolic scalar in Theano even where the dim is known: an int here.
    outputs = [_constant(o) if isinstance(o, (int, np.integer)) and not isinstance(o, bool)
               else o for o in outputs]
    return TheanoFunction(list(inputs), outputs, updates, device="cpu",
                          optimize="O0" if mode == "FAST_COMPILE" else "O2",
                          allow_input_downcast=bool(allow_input_downcast), verify=False,
                          givens=givens, single_output=single,
                          mode="check" if mode in CHECKED_MODES else None,
                          no_default_updates=no_default_updates)


def _constant(v):
    return _const(np.int64(v))


dot = tensor.dot  # theano.dot, as Theano exports it at the top level


def grad(cost, wrt, consider_constant=None, disconnected_inputs="raise"):
    """theano.grad / T.grad (disconnected inputs raise by default, as in Theano)."""
    return tensor.grad(cost, wrt, consider_constant=consider_constant,
                       disconnected_inputs=disconnected_inputs)


def __getattr__(name):
    # Only to name what is missing: nothing is forwarded anywhere.
    if name.startswith("__"):  # import machinery, hasattr(), copy: not a Theano feature
        raise AttributeError(name)
    unsupported(f"theano.{name}")
