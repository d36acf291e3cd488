"""The `loop` kernel (NumPy or CuPy arrays alike). Importing this module registers it in the
NumPy kernel table (runtime/__init__.py does), and the CuPy table registers its own from
make_loop.

The loop's value is a tuple: the final carries, then each per-step output stacked along a
new leading axis, in step order whichever way the loop walks.

On the CPU a scan or fori loop is *inlined*: one generated Python function holds the step
loop with the body's statements written out inside it (the linker's allocating statements,
same kernels, same rules for what source text may contain), so a step costs the body's own
kernel calls and nothing more: no call of a linked body, no input hand-off, no per-step
shape-signature lookup, no output copies. Body values are fresh arrays each step (no
buffers), and nothing in a step writes into an array it did not just make, so a carry or a
per-step output that is a view of a step's inputs (a carry passed through, a transposed
sequence row) is always read intact; stacked rows are copies. Steps over large values
(BIG elements), the while form (`cond`), the GPU and `INLINE = False` link the body as an
Executable (memory plan, loop groups) and call it once per step.
"""
from __future__ import annotations

import itertools
import math
import os

import numpy as np

from ..errors import kernel_error
from .kernels import KERNELS, Kernel
from .loop_groups import GROUP_MIN

# Inline the body into one generated loop (CPU scans and fori loops). False (or the
# environment variable FLOWC_LOOP_INLINE=0) calls the linked body once per step: the
# reference the inlined loop is tested against. Read when a loop is linked.
INLINE = os.environ.get("FLOWC_LOOP_INLINE", "1") != "0"

# Steps whose values reach this many elements (a carry, a sequence row, or a body value
# whose static type says so) run the linked body per step instead (see `small` below): the
# size from which the linker's chunked loop groups pay, and where fresh arrays stop paying.
BIG = GROUP_MIN

_COUNTER = itertools.count()


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
        n_ys = len(program.outputs) - n_carry
        by_slot = {ins.out: (ins.dtype, ins.shape) for ins in program.instrs}
        by_slot.update({p["slot"]: (p["dtype"], p["shape"]) for p in program.inputs})
        y_specs = [by_slot[s] for s in program.outputs[n_carry:]]
        inlined = InlinedLoop(program, n_seq, n_carry, stack_axis) \
            if INLINE and device == "cpu" and cond is None else None
        # Which body values reach BIG elements whatever the unknown dims (a lower bound).
        big_type = any(_known_size(ins.shape) >= BIG for ins in program.instrs)
        linked = []  # the body as an Executable, linked when a step first needs it

        def body_exe():
            # Only large steps need it when the loop is inlined (linked at their first call).
            if not linked:
                # The loop feeds the body its own arrays: the input checks are the loop's.
                linked.append(link(program, device=device, single=False, checks=False))
            return linked[0]
        test = None if cond is None else link(Program.from_json(cond).validate(), device=device,
                                              single=True, checks=False)
        if inlined is None or big_type:
            body_exe()

        def small(steps, seqs, carries):
            # Large steps keep the linked body: its memory plan reuses buffers step after step
            # and its loop groups chunk large elementwise runs, which is worth more there
            # than the call it costs (fresh arrays of that size cost page faults).
            return not big_type and all(c.size < BIG for c in carries) and \
                all(s.size < BIG * max(steps, 1) for s in seqs)

        def run(*args):
            if n_cond:
                args, cond_args = args[:-n_cond], args[-n_cond:]
            else:
                cond_args = ()
            seqs = args[:n_seq]
            if test is not None:
                return _while(seqs, list(args[n_seq:n_seq + n_carry]), args[n_seq + n_carry:],
                              cond_args)
            steps = length if length is not None else (len(seqs[0]) if seqs else 0)
            for i, s in enumerate(seqs):
                if s.ndim == 0 or s.shape[0] != steps:
                    raise ValueError(f"loop: sequence {i} has {s.shape[0] if s.ndim else 0} "
                                     f"steps, expected {steps}")
            order = range(steps - 1, -1, -1) if reverse else range(steps)
            if inlined is not None and small(steps, seqs, args[n_seq:n_seq + n_carry]):
                carries, ys = inlined.run(order, *args)
            else:
                carries, ys = _per_step(order, steps, seqs, list(args[n_seq:n_seq + n_carry]),
                                        args[n_seq + n_carry:])
            ys = [_zero_rows(spec, stack_axis, xp) if y is None else y
                  for y, spec in zip(ys, y_specs)]
            return tuple(carries) + tuple(ys)

        def _per_step(order, steps, seqs, carries, consts):
            # The reference path: the linked body called once per step, rows copied out. On
            # the CPU its generated function is called straight (its call wrapper only
            # explains errors, which the loop does itself).
            exe = body_exe()
            call = exe._run if device == "cpu" else exe
            ys = [None] * n_ys
            lead = (slice(None),) * stack_axis
            for t in order:
                try:
                    outs = call(*[s[t, ...] for s in seqs], *carries, *consts)
                except Exception as e:  # name the step; keep the error's kind
                    why = exe._explain(e) if device == "cpu" else e
                    raise kernel_error(e, f"at step {t} of the loop: {why}") from e
                carries = outs[:n_carry]
                for j, y in enumerate(outs[n_carry:]):
                    if ys[j] is None:
                        ys[j] = _stack(y, steps, stack_axis, xp)
                    ys[j][lead + (t,)] = y
            return carries, ys

        def _while(seqs, carries, consts, cond_args):
            # Steps run while the condition holds (checked first); sequences or the length
            # bound them. The ys hold the steps that ran.
            exe = body_exe()
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
        run.inlined = inlined  # tests and tools read the generated source here
        return run
    return prepare


def _known_size(shape):
    """The product of a static shape's known dims (None dims count as 1)."""
    n = 1
    for d in shape:
        n *= d if type(d) is int else 1
    return n


def _stack(y, steps, axis, xp=np):
    """The array the rows of per-step output y go into (made at the first step)."""
    return xp.empty(y.shape[:axis] + (steps,) + y.shape[axis:], dtype=y.dtype)


class InlinedLoop:
    """A loop body inlined with its step loop into one generated function (NumPy)."""

    def __init__(self, program, n_seq, n_carry, stack_axis):
        from ..link.linker import _runtime_env
        from .backend import BACKEND as backend
        program.validate(backend.kernels)
        self.program = program
        kinds = [backend.kernels[ins.kernel].kind for ins in program.instrs]
        self.source, self._line_instr = loop_source(program, kinds, n_seq, n_carry, stack_axis)
        env = _runtime_env(program, backend, [], False, checks=False)
        env.update(_stack=_stack, _fail=self._fail)
        # Its own file name: the enclosing Executable's error explanation looks for its own
        # generated frames by the `<flowc-generated` prefix and must not read these lines.
        self._file = f"<flowc-loop-{next(_COUNTER)}>"
        exec(compile(self.source, self._file, "exec"), env)
        self.env = env  # its kernels (a nested loop's prepared kernel among them)
        self.run = env["loop_run"]

    def _fail(self, e, t):
        """The error for a step that raised: the step, the body instruction, the user's line."""
        from ..link.linker import instr_message
        tb, i = e.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self._file:
                i = self._line_instr.get(tb.tb_lineno)
                break
            tb = tb.tb_next
        what = f"{type(e).__name__}: {e}" if i is None else instr_message(self.program, i, e)
        return kernel_error(e, f"at step {t} of the loop: {what}")


BIG_TEMP = 1024  # elements: smaller step temporaries are not worth a statement each


def _early_frees(program, keep):
    """{instruction k: slots of big body values whose last reader is k}: without it a step's
    temporaries stay alive until the next step reassigns them (a checkpointed backward
    held 7-10 extra carry-sized arrays). Small ones are left: a statement costs ~30 ns."""
    from ..link.linker import _n
    last = {}
    for k, ins in enumerate(program.instrs):
        for a in ins.args:
            last[_n(a)] = k
    drop = {}
    for ins in program.instrs:
        out = _n(ins.out)
        shape = list(ins.shape or [])
        big = any(not isinstance(d, int) for d in shape) or math.prod(shape) >= BIG_TEMP
        if big and out not in keep and out in last:
            drop.setdefault(last[out], []).append(out)
    return drop


def loop_source(program, kinds, n_seq, n_carry, stack_axis):
    """Python source of `loop_run(order, seq.., carry.., const..)` -> (carries, ys), and its
    line -> body instruction map. Built only from names chosen here, the linker's statements
    (runtime/link/linker.py: ints and identifiers, nothing else of the Program) and ints."""
    from ..link.linker import _n, alloc_statement
    n_seq, n_carry, axis = (int(_n(v)) for v in (n_seq, n_carry, stack_axis))
    ins_specs, outs = program.inputs, program.outputs
    if n_seq + n_carry > len(ins_specs) or n_carry > len(outs):
        raise ValueError(f"loop: a body of {len(ins_specs)} inputs and {len(outs)} outputs "
                         f"cannot take {n_seq} sequences and {n_carry} carries")
    c_in = [_n(d["slot"]) for d in ins_specs[n_seq:n_seq + n_carry]]
    c_out, y_out = [_n(s) for s in outs[:n_carry]], [_n(s) for s in outs[n_carry:]]
    read = {a for ins in program.instrs for a in ins.args} | set(outs)
    inputs = {_n(d["slot"]) for d in ins_specs}
    names = [f"q{i}" for i in range(n_seq)] + [f"x{i}" for i in range(n_seq, len(ins_specs))]
    lines = [f"def loop_run(order, {', '.join(names)}):" if names else "def loop_run(order):"]
    lines += [f"    s{_n(d['slot'])} = x{i}" for i, d in enumerate(ins_specs) if i >= n_seq]
    lines += [f"    y{j} = None" for j in range(len(y_out))]
    lines += ["    t = None", "    it = iter(order)", "    try:"]
    line_instr = {}
    row = ":, " * axis
    drop = _early_frees(program, inputs | set(c_out) | set(y_out))

    def step(first):
        lines.append("        for t in it:")
        for i, d in enumerate(ins_specs[:n_seq]):
            if d["slot"] in read:  # an unread sequence (fori's index) is not sliced
                at = "t" if d["shape"] else "t, ..."  # a row of a vector: a 0-d array
                lines.append(f"            s{_n(d['slot'])} = q{i}[{at}]")
        for k, (ins, kind) in enumerate(zip(program.instrs, kinds)):
            if ins.kernel == "loop" and not first:
                # A nested loop allocates its stacks afresh: drop the previous step's values
                # from here on first (dead by now; carries live in their input slots), so
                # two steps' stacks never coexist (checkpointing's recompute, every k).
                dead = sorted({_n(j.out) for j in program.instrs[k:]} - set(c_in) - inputs)
                lines.append(f"            {' = '.join(f's{d}' for d in dead)} = None")
            stmt, note = alloc_statement(k, ins, kind)
            line_instr[len(lines) + 1] = k
            lines.append(f"            {stmt}  # {note}")
            if drop.get(k):  # big values read for the last time: free them now, not next step
                lines.append(f"            {' = '.join(f's{d}' for d in drop[k])} = None")
        for j, s in enumerate(y_out):  # rows before carries: a y may be an old carry
            if first:
                lines.append(f"            y{j} = _stack(s{s}, len(order), {axis})")
            lines.append(f"            y{j}[{row}t] = s{s}")
        moved = [(a, b) for a, b in zip(c_in, c_out) if a != b]
        if moved:  # one tuple assignment: carries that swap or pass along read old values
            lhs, rhs = ", ".join(f"s{a}" for a, _ in moved), ", ".join(f"s{b}" for _, b in moved)
            lines.append(f"            {lhs} = {rhs}")
        if first:
            lines.append("            break")
    if y_out:  # the first step makes the stacks (their shapes are known then), then the rest
        step(True)
    step(False)
    lines += ["    except Exception as e:", "        raise _fail(e, t) from e"]
    # Final carries: fresh results as they are; inputs, views and repeats copied.
    fresh = {_n(ins.out) for ins, kind in zip(program.instrs, kinds) if kind == "out"}
    ret, seen = [], set()
    for a, b in zip(c_in, c_out):
        ret.append(f"s{a}" if b in fresh and b not in seen else f"_copy(s{a})")
        seen.add(b)
    ys = ", ".join(f"y{j}" for j in range(len(y_out)))
    lines.append(f"    return [{', '.join(ret)}], [{ys}]")
    return "\n".join(lines) + "\n", line_instr


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
