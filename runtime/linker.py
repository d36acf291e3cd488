"""Link a Program into an Executable: generated straight-line Python calling backend kernels.

The generated `run` has two bodies. The first call for a given set of input/parameter shapes
runs the *allocating* body (each kernel returns a fresh array) and keeps those arrays as the
buffers for that shape signature; later calls run the *buffered* body, which passes each
kernel its preallocated `out=` buffer. Outputs are always fresh arrays (never a buffer the
next call overwrites). Parameters are updated only after every output and update has been
computed, so a failing call leaves them as they were.
"""
from __future__ import annotations

import functools
import itertools

from .storage import Cell

_COUNTER = itertools.count()


class ProgramError(RuntimeError):
    """A kernel failed while running a Program; the message names the instruction and node."""


class CallError(TypeError):
    """A compiled function was called with inputs that do not match the Program's inputs."""


class Executable:
    """A linked Program: call it with the inputs, get the outputs (a list, or one array)."""

    def __init__(self, program, backend, cells=None, single=None, downcast=False):
        program.validate(backend.kernels)
        self.program = program
        self.backend = backend
        if cells is None:
            cells = [Cell(backend.to_device(program.values[f"param{i}"]))
                     for i in range(len(program.params))]
        self.cells = cells
        single = len(program.outputs) == 1 if single is None else single
        self.source, env, self._line_instr = _generate(program, backend, single)
        env.update(_runtime_env(program, backend, cells, downcast))
        code = compile(self.source, f"<flowc-generated-{next(_COUNTER)}>", "exec")
        exec(code, env)
        self._run = env["run"]
        self._bufs = env["_bufs"]

    def __call__(self, *inputs):
        try:
            return self._run(*inputs)
        except CallError:
            raise
        except TypeError as e:
            if e.__traceback__ is not None and e.__traceback__.tb_next is None:
                n = len(self.program.inputs)
                raise CallError(f"expected {n} input(s) "
                                f"({', '.join(i['name'] for i in self.program.inputs)}), "
                                f"got {len(inputs)}") from None
            raise self._explain(e) from e
        except Exception as e:  # a kernel failed: say which instruction and whose line
            raise self._explain(e) from e

    def _explain(self, e):
        tb, line = e.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.startswith("<flowc-generated"):
                line = tb.tb_lineno
            tb = tb.tb_next
        i = self._line_instr.get(line)
        if i is None:
            return ProgramError(f"{type(e).__name__}: {e}")
        ins = self.program.instrs[i]
        return ProgramError(f"instruction {i} ({ins.kernel}) for {ins.where} failed: "
                            f"{type(e).__name__}: {e}")


def _runtime_env(program, backend, cells, downcast):
    env = {"_bufs": {}, "_cells": cells, "_copy": backend.copy, "_arr": backend.to_device}
    for i, spec in enumerate(program.inputs):
        env[f"_in{i}"] = backend.input_checker(spec, downcast, CallError)
    for c in program.consts:
        env[f"s{c['slot']}"] = backend.to_device(program.values[f"const{c['slot']}"])
    for k, ins in enumerate(program.instrs):
        fn = backend.kernels[ins.kernel].fn
        env[_kname(k, ins)] = functools.partial(fn, **ins.attrs) if ins.attrs else fn
    return env


def _kname(k, ins):
    return f"{ins.kernel}_{k}"


def _generate(program, backend, single):
    """Python source of `run(*inputs)`; also the line → instruction map for error messages."""
    kinds = [backend.kernels[ins.kernel].kind for ins in program.instrs]
    out_slots = set(program.outputs)
    fresh = {ins.out for ins, kind in zip(program.instrs, kinds) if kind == "out"}
    upd_swap = [u for u in program.updates if u["slot"] in fresh and u["slot"] not in out_slots]
    buffered = [ins.out for ins, kind in zip(program.instrs, kinds)
                if kind == "out" and ins.out not in out_slots]
    lines, line_instr = [], {}
    args = ", ".join(f"x{i}" for i in range(len(program.inputs)))
    lines.append(f"def run({args}):")
    for i, spec in enumerate(program.inputs):
        lines.append(f"    s{spec['slot']} = _in{i}(x{i})")
    for j, p in enumerate(program.params):
        lines.append(f"    s{p['slot']} = _cells[{j}].value")
    sig = ", ".join([f"s{d['slot']}.shape" for d in program.inputs + program.params])
    lines.append(f"    key = ({sig}{',' if sig else ''})")
    lines.append("    B = _bufs.get(key)")
    lines.append("    first = B is None")
    lines.append("    if first:")
    lines.append("        B = {}")
    # Allocating body.
    body_alloc, body_fast = [], []
    for k, (ins, kind) in enumerate(zip(program.instrs, kinds)):
        call = f"{_kname(k, ins)}({', '.join(f's{a}' for a in ins.args)}"
        # A 0-d reduction returns a NumPy scalar; keep a 0-d array so it can be a buffer.
        wrap = ("_arr(", ")") if kind == "out" and not ins.shape else ("", "")
        body_alloc.append((k, f"s{ins.out} = {wrap[0]}{call}){wrap[1]}"))
        if kind == "out" and ins.out not in out_slots:
            body_fast.append((k, f"s{ins.out} = {call}, out=B[{ins.out}])"))
        else:
            body_fast.append((k, f"s{ins.out} = {call})"))
    for k, text in body_alloc:
        line_instr[len(lines) + 1] = k
        lines.append("        " + text)
    if buffered:
        lines.append("        " + "; ".join(f"B[{s}] = s{s}" for s in buffered))
    lines.append("    else:")
    for k, text in body_fast:
        line_instr[len(lines) + 1] = k
        lines.append("        " + text)
    if not body_fast:
        lines.append("        pass")
    # Outputs: fresh arrays; leaves, views and repeats are copied.
    outs, seen = [], set()
    for s in program.outputs:
        outs.append(f"s{s}" if s in fresh and s not in seen else f"_copy(s{s})")
        seen.add(s)
    # Updates: compute every new value first, then commit (Theano's semantics).
    for u in program.updates:
        if u not in upd_swap:
            lines.append(f"    n{u['param']} = _copy(s{u['slot']})")
    for u in program.updates:
        j = u["param"]
        if u in upd_swap:
            lines.append(f"    old = _cells[{j}].value; _cells[{j}].value = s{u['slot']}; "
                         f"B[{u['slot']}] = old")
        else:
            lines.append(f"    _cells[{j}].value = n{j}")
    lines.append("    if first:")
    # Keep a few shape signatures (say, a training and an evaluation batch size).
    lines.append("        if len(_bufs) >= 4: _bufs.pop(next(iter(_bufs)))")
    lines.append("        _bufs[key] = B")
    if single and len(outs) == 1:
        lines.append(f"    return {outs[0]}")
    else:
        lines.append(f"    return [{', '.join(outs)}]")
    return "\n".join(lines) + "\n", {}, line_instr
