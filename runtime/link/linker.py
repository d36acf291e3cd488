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
import re
import time

from ..cpu import loop_groups
from ..errors import CallError, ProgramError, kernel_error  # noqa: F401  (defined there, re-exported)
from ..memory import arena, plan as memory, verify as plan_verify
from ..storage import Cell

_COUNTER = itertools.count()


class Executable:
    """A linked Program: call it with the inputs, get the outputs (a list, or one array)."""

    def __init__(self, program, backend, cells=None, single=None, downcast=False, checks=True):
        """checks=False trusts the inputs' dtypes and shapes (a loop body, called with the
        loop's own arrays step after step): they are only made arrays."""
        program.validate(backend.kernels)
        self.program = program
        self.backend = backend
        if cells is None:
            cells = [Cell(backend.to_device(program.values[f"param{i}"]))
                     for i in range(len(program.params))]
        self.cells = cells
        single = len(program.outputs) == 1 if single is None else single
        self._kinds = [backend.kernels[ins.kernel].kind for ins in program.instrs]
        self._inplace = [backend.kernels[ins.kernel].inplace for ins in program.instrs]
        self._exclusive = {u["slot"] for u in program.updates}
        self._bufs = {}
        self.timings = [0.0] * len(program.instrs)
        self._single = single
        # Runs of elementwise instructions over one large shape share a chunked loop.
        self.loop_groups = loop_groups.find_groups(program, backend.kernels) \
            if backend.loop_groups else []
        self.source, self._line_instr = _generate(program, self._kinds, single, timed=False,
                                                  groups=self.loop_groups)
        env = _runtime_env(program, backend, cells, downcast, checks)
        ends = memory.live_ends(program, self._kinds) if self.loop_groups else {}
        for g, members in enumerate(self.loop_groups):
            esc = loop_groups.escaping(program, ends, members)
            fns = [env[_kname(k, program.instrs[k])] for k in members]
            env[f"_grp{g}"] = loop_groups.LoopGroup(program, members, fns, esc,
                                                    backend.kernels, index=g)
        env.update(_bufs=self._bufs, _plan=self._plan, _T=self.timings, _pc=time.perf_counter,
                   _GM=loop_groups.GROUP_MIN, _lend=arena.lend)
        self._env = env
        exec(compile(self.source, f"<flowc-generated-{next(_COUNTER)}>", "exec"), env)
        self._run = env["run"]
        self._run_timed = None  # the instrumented twin is made on the first profile
        self._verify = False
        if plan_verify.ENABLED:
            self.verify_calls()

    def __call__(self, *inputs):
        return self._guarded(self._run, inputs)

    def algorithms(self):
        """{instruction index: algorithm its last call ran} for kernels that choose one
        (conv)."""
        out = {}
        for k, ins in enumerate(self.program.instrs):
            algo = getattr(self._env.get(_kname(k, ins)), "algorithm", None)
            if algo is not None:
                out[k] = algo
        return out

    def call_timed(self, *inputs):
        """Call once, adding each instruction's seconds to `self.timings` (after a warm call)."""
        if self._run_timed is None:
            src, _ = _generate(self.program, self._kinds, self._single, timed=True,
                               groups=self.loop_groups)
            exec(compile(src, f"<flowc-generated-{next(_COUNTER)}>", "exec"), self._env)
            self._run_timed = self._env["run_timed"]
        return self._guarded(self._run_timed, inputs)

    def _guarded(self, run, inputs):
        try:
            return run(*inputs)
        except (CallError, plan_verify.PlanError):
            raise
        except TypeError as e:
            if e.__traceback__ is not None and e.__traceback__.tb_next is None:
                raise self._arity_error(inputs) from None
            raise self._explain(e) from e
        except Exception as e:  # a kernel failed: say which instruction and whose line
            raise self._explain(e) from e

    def _arity_error(self, inputs):
        n = len(self.program.inputs)
        return CallError(f"expected {n} input(s) "
                         f"({', '.join(i['name'] for i in self.program.inputs)}), "
                         f"got {len(inputs)}")

    def _plan(self, key, raw):
        """Buffers for a new shape signature, shared by liveness (see runtime/memory/plan.py).
        `raw` also holds the loops' tuple values, measured for memory() but not planned."""
        arrays = {s: a for s, a in raw.items() if not isinstance(a, tuple)}
        ghosts = {id(p) for g in range(len(self.loop_groups))
                  for p in self._env[f"_grp{g}"].placeholders}
        arrays = {s: a for s, a in arrays.items() if hasattr(a, "shape") and id(a) not in ghosts}
        # Only groups that ran chunked on this (allocating) call interleave their members;
        # the plan keeps their values live across the group, and later calls with these
        # shapes run the others one by one (Buffers.chunked).
        chunked = [g for g in range(len(self.loop_groups)) if self._env[f"_grp{g}"].last_chunked]
        B = memory.plan(self.program, self._kinds, self._inplace, arrays, self._exclusive,
                        [self.loop_groups[g] for g in chunked])
        B.chunked = frozenset(chunked)
        if self._verify:
            plan_verify.check_layouts(arrays, B)
            plan_verify.verify_buffers(self, B)
        if len(self._bufs) >= 4:  # keep a few signatures (say, a training and an eval batch)
            self._bufs.pop(next(iter(self._bufs)))
        self._bufs[key] = B
        self._last = (memory.sizes(raw), B)  # sizes only: the arrays are not kept alive
        return B

    def verify_calls(self):
        """From now on, check every new memory plan and the arrays of every call with
        runtime/memory/verify.py (PlanError on a conflict); plans already made are checked
        now. NumPy backend only: other array types have no byte addresses to compare."""
        if self._verify or self.backend.name != "numpy":
            return
        src, _ = _generate(self.program, self._kinds, self._single, timed=False,
                           groups=self.loop_groups, check=True)
        self._env["_vchk"] = self._check_call
        exec(compile(src, f"<flowc-generated-{next(_COUNTER)}>", "exec"), self._env)
        self._run = self._checked(self._env["run"])
        self._verify = True
        plan_verify.verify_plan(self)

    def _check_call(self, B, values):
        """Verifier hook (verify_calls): the arrays this call used, before the commits."""
        plan_verify.check_call(self.program, self._kinds, self._inplace,
                               [self.loop_groups[g] for g in B.chunked], values)
        self._call_B = B

    def _checked(self, run):
        """run, then check that what it returned shares no bytes with what outlives the call
        (buffers and spares, parameters, constants, the caller's inputs)."""
        consts = [(f"constant slot {c['slot']}", self._env[f"s{c['slot']}"])
                  for c in self.program.consts]

        def checked_run(*inputs):
            if len(inputs) != len(self.program.inputs):
                raise self._arity_error(inputs)
            self._call_B = None
            out = run(*inputs)
            kept = [(f"the buffer of slot {s}", a) for s, a in (self._call_B or {}).items()]
            kept += [(f"parameter {j}", c.value) for j, c in enumerate(self.cells)]
            kept += [(f"input {j}", x) for j, x in enumerate(inputs)] + consts
            plan_verify.check_outputs(out if isinstance(out, list) else [out], kept)
            self._call_B = None
            return out
        return checked_run

    def chunked_calls(self):
        """Per loop group (see self.loop_groups): how many calls ran it as one chunked loop."""
        return [self._env[f"_grp{g}"].chunked_calls for g in range(len(self.loop_groups))]

    def memory(self, stacks=False):
        """(bytes of the buffers the plan keeps, liveness lower bound[, bytes the loops
        stacked]) for the last new shapes."""
        if not hasattr(self, "_last"):
            raise RuntimeError("call the function once first: sizes are known at call time")
        return memory.report(self.program, self._kinds, *self._last, stacks=stacks)

    def _explain(self, e):
        tb, line = e.__traceback__, None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.startswith("<flowc-generated"):
                line = tb.tb_lineno
            tb = tb.tb_next
        i = getattr(e, "flowc_member", None)  # raised inside a loop group: that member
        if i is None:
            i = self._line_instr.get(line)
        if i is None:
            return kernel_error(e, f"{type(e).__name__}: {e}")
        return kernel_error(e, instr_message(self.program, i, e))


def _trusted(x):
    """An input taken as it comes (checks=False: a loop hands its body its own arrays)."""
    return x


def _runtime_env(program, backend, cells, downcast, checks=True):
    env = {"_cells": cells, "_copy": backend.copy, "_arr": backend.to_device}
    for i, spec in enumerate(program.inputs):
        env[f"_in{i}"] = backend.input_checker(spec, downcast, CallError) if checks else \
            _trusted
    for c in program.consts:
        env[f"s{_n(c['slot'])}"] = backend.to_device(program.values[f"const{c['slot']}"])
    for k, ins in enumerate(program.instrs):
        kern = backend.kernels[ins.kernel]
        if kern.prepare is not None:
            env[_kname(k, ins)] = kern.prepare(**ins.attrs)
        else:
            env[_kname(k, ins)] = functools.partial(kern.fn, **ins.attrs) if ins.attrs else kern.fn
    return env


# Source text is made only of what the linker itself spells: names it chose, ints written by
# _n, and kernel names that are identifiers. Nothing else of the Program (its `where` text,
# attrs, input names) is pasted in: a tampered saved file must not be able to add code.
# Attrs and constants are bound in the namespace as data; `where` stays in the Program.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _n(v) -> str:
    """The digits of a slot / index that is an int (not a bool, str or float), else an error."""
    if type(v) is not int or v < 0:
        raise ProgramError(f"expected a non-negative int slot or index, got {v!r}")
    return str(v)


def _comment(k, ins):
    """`instruction k: kernel` (a fused group adds its ops): identifiers and digits only."""
    ops = _expr_ops(ins.attrs.get("expr")) if ins.kernel in ("fused", "fused_reduce") else []
    return f"instruction {k}: {_kernel_word(ins)}" + (f" of {', '.join(ops)}" if ops else "")


def _expr_ops(expr, most=8):
    """The distinct op names of a fused expression, each checked to be an identifier."""
    ops, stack = {}, [expr]
    while stack and len(ops) < most:
        e = stack.pop()
        if not isinstance(e, tuple) or len(e) != 3 or e[0] in ("arg", "const"):
            continue
        if not isinstance(e[0], str) or not _IDENT.match(e[0]):
            raise ProgramError(f"expected an op name that is an identifier, got {e[0]!r}")
        ops[e[0]] = None
        stack.extend(reversed(e[2]) if isinstance(e[2], tuple) else ())
    return list(ops)


def _kernel_word(ins):
    if not isinstance(ins.kernel, str) or not _IDENT.match(ins.kernel):
        raise ProgramError(f"expected a kernel name that is an identifier, got {ins.kernel!r}")
    return ins.kernel


def _kname(k, ins):
    return f"{_kernel_word(ins)}_{k}"


def _call(k, ins):
    """`kernel_k(sA, sB` (unclosed: the caller may add out=)."""
    return f"{_kname(k, ins)}({', '.join(f's{_n(a)}' for a in ins.args)}"


def _group_call(program, members, g, buffered):
    """`s.., s.. = _grpG(external slots[, B=B])`: one statement for a loop group's members."""
    ext = loop_groups.external_slots(program, members)
    outs = ", ".join(f"s{_n(program.instrs[k].out)}" for k in members)
    args = ", ".join(f"s{_n(a)}" for a in ext) + (", B=B" if buffered else "")
    return f"{outs}, = _grp{g}({args})"


def alloc_statement(k, ins, kind):
    """(`sOUT = kernel_k(sA, ..)`, its comment): instruction k with a fresh result (no out=)."""
    # A 0-d reduction returns a NumPy scalar; keep a 0-d array so it can be a buffer.
    call = _call(k, ins)
    wrap = ("_arr(", ")") if kind == "out" and not ins.shape else ("", "")
    return f"s{_n(ins.out)} = {wrap[0]}{call}){wrap[1]}", _comment(k, ins)


def instr_message(program, i, e):
    """`instruction i (kernel) for WHERE failed: Type: message`, as errors name a kernel."""
    ins = program.instrs[i]
    return f"instruction {i} ({ins.kernel}) for {ins.where} failed: {type(e).__name__}: {e}"


def _generate(program, kinds, single, timed, groups=(), check=False):
    """Python source of `run(*inputs)` (or `run_timed`), and its line → instruction map.
    `check`: hand every slot's array to `_vchk` before the commits (runtime/memory/verify.py)."""
    first = {m[0]: g for g, m in enumerate(groups)}
    inside = {k for m in groups for k in m[1:]}
    out_slots = set(program.outputs)
    fresh = {ins.out for ins, kind in zip(program.instrs, kinds) if kind == "out"}
    # Indexes, not the update dicts: `u in a list of dicts` made this quadratic in params.
    upd_swap = {j for j, u in enumerate(program.updates)
                if u["slot"] in fresh and u["slot"] not in out_slots}
    buffered = [ins.out for ins, kind in zip(program.instrs, kinds)
                if kind == "out" and ins.out not in out_slots]
    lines, line_instr = [], {}
    args = ", ".join(f"x{i}" for i in range(len(program.inputs)))
    lines.append(f"def {'run_timed' if timed else 'run'}({args}):")
    for i, spec in enumerate(program.inputs):
        lines.append(f"    s{_n(spec['slot'])} = _in{i}(x{i})")
    for j, p in enumerate(program.params):
        lines.append(f"    s{_n(p['slot'])} = _cells[{j}].value")
    sig = ", ".join([f"s{_n(d['slot'])}.shape" for d in program.inputs + program.params])
    lines.append(f"    key = ({sig}{',' if sig else ''})")
    lines.append("    B = _bufs.get(key)")
    lines.append("    if B is None:")

    def buffer(k, ins, kind):
        call = _call(k, ins)
        out = _n(ins.out)
        if kind == "out" and ins.out not in out_slots:
            return f"s{out} = {call}{', ' if ins.args else ''}out=B[{out}])", _comment(k, ins)
        if kind == "out" and not ins.shape:  # a 0-d output: an array on every call
            return f"s{out} = _arr({call}))", _comment(k, ins)
        return f"s{out} = {call})", _comment(k, ins)

    def emit(k, stmt, note, pad):
        line_instr[len(lines) + 1] = k
        if timed:
            lines.append(f"{pad}_t = _pc(); {stmt}; _T[{k}] += _pc() - _t")
        else:  # the readable copy says which node each line computes
            lines.append(f"{pad}{stmt}  # {note}")

    def body(make, buffered_call):
        for k, (ins, kind) in enumerate(zip(program.instrs, kinds)):
            if k in inside:
                continue
            if k not in first:
                emit(k, *make(k, ins, kind), "        ")
                continue
            # A loop group: small operands run its members as plain lines (no call layer);
            # large ones go to the group, which decides per shape signature.
            g = first[k]
            members, ext = groups[g], loop_groups.external_slots(program, groups[g])
            small = " and ".join(f"s{_n(a)}.size < _GM" for a in ext) or "True"
            lines.append(f"        if {small}:")
            if not buffered_call:  # the plan asks which groups ran chunked on this call
                lines.append(f"            _grp{g}.last_chunked = False")
            for m in members:
                emit(m, *make(m, program.instrs[m], kinds[m]), "            ")
            lines.append("        else:")
            emit(k, _group_call(program, members, g, buffered_call),
                 f"loop group of instructions {k}-{members[-1]}", "            ")

    # Allocating body: the first call with these shapes; its arrays seed the memory plan.
    body(alloc_statement, False)
    loops = [ins.out for ins in program.instrs if ins.kernel == "loop"]
    lines.append("        B = _plan(key, {" + ", ".join(f"{_n(s)}: s{_n(s)}" for s in
                                           buffered + loops) + "})")
    lines.append("    else:")
    # Buffered body: every kernel writes into its planned buffer. Values that borrow bytes
    # from an update's spare get views into this call's spare first (runtime/memory/arena.py).
    lines.append("        if B.lent: _lend(B)")
    body(buffer, True)
    if not program.instrs:
        lines.append("        pass")
    if check:
        slots = [d["slot"] for d in program.inputs + program.params + program.consts]
        slots += [ins.out for ins in program.instrs]
        lines.append("    _vchk(B, {" + ", ".join(f"{s}: s{s}" for s in slots) + "})")
    # Outputs: fresh arrays; leaves, views and repeats are copied.
    outs, seen = [], set()
    for s in program.outputs:
        outs.append(f"s{_n(s)}" if s in fresh and s not in seen else f"_copy(s{_n(s)})")
        seen.add(s)
    # Updates: compute every new value first, then commit (Theano's semantics). A buffered
    # value is swapped with the old parameter array, which becomes the next call's buffer.
    for i, u in enumerate(program.updates):
        if i not in upd_swap:
            lines.append(f"    n{_n(u['param'])} = _copy(s{_n(u['slot'])})")
    for i, u in enumerate(program.updates):
        j, s = _n(u["param"]), _n(u["slot"])
        if i in upd_swap:
            lines.append(f"    old = _cells[{j}].value; _cells[{j}].value = s{s}; B[{s}] = old")
        else:
            lines.append(f"    _cells[{j}].value = n{j}")
    if single and len(outs) == 1:
        lines.append(f"    return {outs[0]}")
    else:
        lines.append(f"    return [{', '.join(outs)}]")
    return "\n".join(lines) + "\n", line_instr
