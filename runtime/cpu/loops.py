"""The `loop` kernel: a body Program linked once, run once per step (NumPy or CuPy arrays
alike). Importing this module registers it in the NumPy kernel table (runtime/__init__.py
does), and the CuPy table registers its own from make_loop.

The loop's value is a tuple: the final carries, then each per-step output stacked along a
new leading axis, in step order whichever way the loop walks. The body is linked at link
time with the same backend; each step calls it (its own memory plan reuses the body's
buffers step after step) and copies its per-step outputs into their rows.
"""
from __future__ import annotations

import numpy as np

from ..errors import kernel_error
from .kernels import KERNELS, Kernel


def _zero_rows(spec, axis, xp):
    """An empty stack for a loop of no steps, from the body output's static type."""
    shape = tuple(0 if d is None else d for d in spec[1])
    return xp.empty(shape[:axis] + (0,) + shape[axis:], dtype=spec[0])


def make_loop(device, xp):
    """The `prepare` of the loop kernel for one device."""

    def prepare(body, n_seq, n_carry, reverse=False, length=None, stack_axis=0, cond=None,
                n_cond=0):
        from .. import link
        from ..program.format import Program
        program = Program.from_json(body).validate()
        # The loop feeds the body its own arrays: the input checks are the loop's (done once).
        exe = link(program, device=device, single=False, checks=False)
        test = None if cond is None else link(Program.from_json(cond).validate(), device=device,
                                              single=True, checks=False)
        # On the CPU the body's generated function is called straight (its call wrapper only
        # explains errors, which the loop does itself): a third of the per-step overhead.
        call = exe._run if device == "cpu" else exe
        n_ys = len(program.outputs) - n_carry

        def explain(e):
            return exe._explain(e) if device == "cpu" else e
        by_slot = {ins.out: (ins.dtype, ins.shape) for ins in program.instrs}
        by_slot.update({p["slot"]: (p["dtype"], p["shape"]) for p in program.inputs})
        y_specs = [by_slot[s] for s in program.outputs[n_carry:]]

        def run(*args):
            if n_cond:
                args, cond_args = args[:-n_cond], args[-n_cond:]
            else:
                cond_args = ()
            seqs, carries = args[:n_seq], list(args[n_seq:n_seq + n_carry])
            consts = args[n_seq + n_carry:]
            if test is not None:
                return _while(seqs, carries, consts, cond_args)
            steps = length if length is not None else (len(seqs[0]) if seqs else 0)
            for i, s in enumerate(seqs):
                if s.ndim == 0 or s.shape[0] != steps:
                    raise ValueError(f"loop: sequence {i} has {s.shape[0] if s.ndim else 0} "
                                     f"steps, expected {steps}")
            ys = None
            order = range(steps - 1, -1, -1) if reverse else range(steps)
            lead = (slice(None),) * stack_axis
            for t in order:
                try:
                    outs = call(*[s[t, ...] for s in seqs], *carries, *consts)
                except Exception as e:  # name the step; keep the error's kind
                    raise kernel_error(e, f"at step {t} of the loop: {explain(e)}") from e
                carries = outs[:n_carry]
                if n_ys:
                    if ys is None:
                        ys = [xp.empty(y.shape[:stack_axis] + (steps,) + y.shape[stack_axis:],
                                       dtype=y.dtype) for y in outs[n_carry:]]
                    for buf, y in zip(ys, outs[n_carry:]):
                        buf[lead + (t,)] = y
            if ys is None:
                ys = [_zero_rows(spec, stack_axis, xp) for spec in y_specs]
            return tuple(carries) + tuple(ys)

        def _while(seqs, carries, consts, cond_args):
            # Steps run while the condition holds (checked first); sequences or the length
            # bound them. The ys hold the steps that ran.
            bound = length if length is not None else (len(seqs[0]) if seqs else None)
            rows, t = [], 0
            while (bound is None or t < bound) and bool(test(*carries, *cond_args)):
                try:
                    outs = exe(*[s[t, ...] for s in seqs], *carries, *consts)
                except Exception as e:
                    raise kernel_error(e, f"at step {t} of the loop: {e}") from e
                carries = outs[:n_carry]
                rows.append(outs[n_carry:])
                t += 1
            ys = [xp.stack([r[i] for r in rows], axis=stack_axis) if rows else
                  _zero_rows(spec, stack_axis, xp) for i, spec in enumerate(y_specs)]
            return tuple(carries) + tuple(ys)
        return run
    return prepare


def make_cond(device):
    """The `prepare` of the cond kernel: both branches linked, only the one taken runs."""
    def prepare(branches):
        from .. import link
        from ..program.format import Program
        exes = [link(Program.from_json(b).validate(), device=device, single=False,
                     checks=False) for b in branches]

        def run(pred, *args):
            return tuple(exes[0 if bool(pred) else 1](*args))
        return run
    return prepare


KERNELS["loop"] = Kernel(None, "view", prepare=make_loop("cpu", np))
KERNELS["cond"] = Kernel(None, "view", prepare=make_cond("cpu"))

