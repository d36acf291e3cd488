"""Run a Program one instruction at a time with fresh arrays (no memory plan, no loop groups).

The checked mode (flowc's `mode="check"`) uses this to look at every value a Program
computes: each kernel is called without an `out=` buffer, so no value shares bytes with
another, and the caller sees each result as it is made.

    st = Stepper(program)                       # kernels prepared once (fused groups compile)
    for k, value in st.run(inputs, params):     # k: instruction index, value: its result
        ...
    st.slots                                     # every slot still live after the run
"""
from __future__ import annotations

import functools

import numpy as np

from ..backends import get_backend
from .linker import ProgramError, kernel_error  # noqa: F401  (ProgramError re-exported)


class Stepper:
    """A Program prepared for instruction-by-instruction runs on the NumPy backend."""

    def __init__(self, program, downcast=False, error=TypeError):
        backend = get_backend("cpu")
        program.validate(backend.kernels)
        self.program = program
        self._error = error
        self._check = [backend.input_checker(spec, downcast, error) for spec in program.inputs]
        self._fns = [_kernel(backend.kernels[ins.kernel], ins.attrs) for ins in program.instrs]
        self._consts = {c["slot"]: np.asarray(program.values[f"const{c['slot']}"])
                        for c in program.consts}
        self.slots = {}

    def run(self, inputs, params):
        """Yield (instruction index, result) in program order; frees values after last use.

        `inputs` are checked like the linked function checks them; `params` are the
        parameter arrays in `program.params` order (not modified).
        """
        prog = self.program
        if len(inputs) != len(prog.inputs):
            raise self._error(f"expected {len(prog.inputs)} input(s) "
                              f"({', '.join(i['name'] for i in prog.inputs)}), got {len(inputs)}")
        slots = dict(self._consts)
        for spec, check, x in zip(prog.inputs, self._check, inputs):
            slots[spec["slot"]] = check(x)
        for spec, p in zip(prog.params, params):
            slots[spec["slot"]] = p
        self.slots = slots
        for k, (ins, fn) in enumerate(zip(prog.instrs, self._fns)):
            try:
                value = fn(*[slots[a] for a in ins.args])
            except Exception as e:  # say which instruction and whose line, as the linker does
                raise kernel_error(e, f"instruction {k} ({ins.kernel}) for {ins.where} failed: "
                                   f"{type(e).__name__}: {e}") from e
            # 0-d reductions give NumPy scalars; a loop's or cond's value is a tuple of parts.
            if not isinstance(value, (np.ndarray, tuple)):
                value = np.asarray(value)
            slots[ins.out] = value
            yield k, value
            for s in prog.free[k]:
                slots.pop(s, None)

    def results(self):
        """(outputs, update values) of the last complete run, as the Program lists them."""
        outs = [self.slots[s] for s in self.program.outputs]
        return outs, [self.slots[u["slot"]] for u in self.program.updates]


def _kernel(kern, attrs):
    if kern.prepare is not None:
        return kern.prepare(**attrs)
    return functools.partial(kern.fn, **attrs) if attrs else kern.fn
