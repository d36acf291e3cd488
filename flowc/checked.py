"""Checked mode (`fc.function(..., mode="check")`): Theano's DebugMode and NanGuardMode in one.

Every call of a checked function
  1. checks the inputs and parameters for NaN/inf (the caller's values are then the source);
  2. runs the unoptimized (O0) Program of the same unit instruction by instruction with
     fresh arrays (runtime/link/stepper.py), noting the first non-finite value;
  3. runs the optimized Program the same way, stops at its first NaN/inf, and compares every
     instruction whose graph node the O0 Program also computes (see same_nodes) and the
     outputs and update values, within a tolerance per dtype; a difference is confirmed by
     a run fed the reference's values (see _run_optimized);
  4. runs the real executable (memory plan, loop groups, in-place reuse) and compares its
     outputs and new parameter values with step 3's, then verifies the memory plan.
Only step 4 changes parameters, once per call; when a check fails they are put back.

A value that is non-finite in O0 but finite after optimization is not an error: the
stabilize pass exists to do exactly that (`log(sigmoid(z))` at z = -800).
"""
from __future__ import annotations

import numpy as np

import flowc_runtime as runtime
from flowc_runtime.link.stepper import Stepper

from .ir.errors import FlowcError
from .ir.graph import operands
from .lower.lower import lower
from .passes.pipeline import optimize as run_passes

# Largest allowed max|optimized - reference| / max|reference| per array (the scale is at
# least 1e-3, so values that should be zero may carry rounding). Integers and bools: exact.
TOLERANCE = {"float64": 1e-7, "float32": 1e-3, "float16": 1e-2,
             "complex128": 1e-7, "complex64": 1e-3}
SCALE_FLOOR = 1e-3


class CheckError(FlowcError):
    """A checked function (mode="check") found a NaN/inf or a wrong optimized result."""


def tolerances(check_tol):
    """The {dtype: tolerance} table for `check_tol` (None, a number, or a dict by dtype)."""
    if check_tol is None:
        return dict(TOLERANCE)
    if isinstance(check_tol, dict):
        try:
            return {**TOLERANCE, **{np.dtype(k).name: float(v) for k, v in check_tol.items()}}
        except (TypeError, ValueError) as e:
            raise FlowcError(f"check_tol: expected {{dtype name: number}}, got {check_tol!r} "
                             f"({e})") from None
    if isinstance(check_tol, (int, float)) and check_tol >= 0:
        return {k: float(check_tol) for k in TOLERANCE}
    raise FlowcError(f"check_tol must be None, a number >= 0 or {{dtype: number}}, "
                     f"got {check_tol!r}")


class Checker:
    """What a checked Function runs on every call instead of its executable alone."""

    def __init__(self, fn, unit, check_tol=None, downcast=False):
        self.fn = fn
        self.tol = tolerances(check_tol)
        self.ref_graph = run_passes(unit, "O0")
        cells = fn.user_graph.cells
        self.ref_program = lower(self.ref_graph, {n: c.value for n, c in cells.items()})
        self.ref = Stepper(self.ref_program, downcast, runtime.CallError)
        self.opt = Stepper(fn.program, downcast, runtime.CallError)
        self.shared = same_nodes(fn.program, fn.graph, self.ref_program, self.ref_graph)
        # Every real call checks its arrays against the plan (runtime/memory/verify.py).
        fn.exe.verify_calls()
        self.calls = 0

    def __call__(self, args):
        self.calls += 1
        cells = self.fn.user_graph.cells
        before = {p["key"]: _host(cells[p["key"]].value).copy()
                  for p in self.ref_program.params + self.fn.program.params}
        with np.errstate(all="ignore"):  # non-finite values are reported, not warned about
            self._check_sources(args, before)
            ref_values, ref_bad = self._run_reference(args, before)
            opt_outs, opt_updates = self._run_optimized(args, before, ref_values, ref_bad)
        try:
            return self._run_real(args, opt_outs, opt_updates)
        except CheckError:
            for u in self.fn.program.updates:  # a failing check changes no parameter
                key = self.fn.program.params[u["param"]]["key"]
                cells[key].value = before[key]
            raise

    # -- 1. the caller's values --------------------------------------------------------------
    def _check_sources(self, args, params):
        for i, (spec, x) in enumerate(zip(self.ref_program.inputs, args)):
            bad = _nonfinite(np.asarray(x) if not hasattr(x, "get") else x.get())
            if bad:
                raise CheckError(f"call {self.calls}: input {spec['name']!r} (argument {i + 1}) "
                                 f"holds {bad}: the non-finite value comes from the caller, "
                                 f"not from the function")
        for p in self.ref_program.params:
            bad = _nonfinite(params[p["key"]])
            if bad:
                raise CheckError(f"call {self.calls}: parameter {p['name']!r} holds {bad} "
                                 f"before the call (set by set_value, or by an unchecked "
                                 f"function's update)")

    # -- 2. the O0 reference -----------------------------------------------------------------
    def _run_reference(self, args, params):
        """({node: value} for nodes the optimized Program also computes, first bad or None).

        The first bad instruction is (index, what it holds, its operands), found while its
        operands are still live.
        """
        prog, values, first_bad = self.ref_program, {}, None
        for k, v in self.ref.run(args, [params[p["key"]] for p in prog.params]):
            if isinstance(v, tuple):  # a loop's results: checked as the parts read them
                continue
            node = prog.instrs[k].node
            if first_bad is None and not _finite(v):
                first_bad = (k, _nonfinite(v), self._operands(prog, k, self.ref.slots))
            if node in self.shared:
                values[node] = v
        self.ref_results = self.ref.results()
        return values, first_bad

    def _operands(self, prog, k, slots):
        """'name f64[3] in [lo, hi]' for each operand of instruction k (while they are live)."""
        names = {d["slot"]: repr(d["name"]) for d in prog.inputs + prog.params}
        names.update({ins.out: f"%{ins.node}" for ins in prog.instrs})
        parts = []
        for a in prog.instrs[k].args:
            v = np.asarray(slots[a])
            rng = ""
            if v.size and v.dtype.kind in "fiu":
                rng = f" in [{np.min(v):.4g}, {np.max(v):.4g}]"
            parts.append(f"{names.get(a, 'constant')} {v.dtype.name}{list(v.shape)}{rng}")
        return ", ".join(parts)

    # -- 3. the optimized Program, step by step ------------------------------------------------
    def _run_optimized(self, args, params, ref_values, ref_bad):
        """The optimized Program's (outputs, update values), checked against the reference.

        Rounding differs between levels, and a comparison (relu's derivative, `x > 0`) can
        turn it into a whole element of difference downstream. So a difference found in a
        plain run is confirmed by a second run in which every compared value is replaced by
        the reference's once it has passed: only a difference an instruction makes from
        agreeing operands counts (DebugMode's per-op check).
        """
        plain = self._step_optimized(args, params, ref_values, ref_bad, resync=False)
        if plain[2]:
            again = self._step_optimized(args, params, ref_values, ref_bad, resync=True)
            if again[2]:
                raise CheckError(again[2])
        return plain[0], plain[1]

    def _step_optimized(self, args, params, ref_values, ref_bad, resync):
        """(outputs, update values, first difference or '') of one step-by-step run."""
        prog, first = self.fn.program, ""
        for k, v in self.opt.run(args, [params[p["key"]] for p in prog.params]):
            ins = prog.instrs[k]
            if isinstance(v, tuple):  # a loop's results: checked as the parts read them
                continue
            if not _finite(v):
                if resync:  # the plain run was finite: not this instruction's doing
                    continue
                raise CheckError(self._nan_message(k, v, ref_bad))
            want = ref_values.get(ins.node)
            if first or want is None or not _finite(want):
                continue  # (a plain run goes on: step 4 needs its outputs)
            err = self._compare(want, v)
            if err:
                first = self._mismatch_message(k, err)
                if resync:
                    break
            elif resync:
                self.opt.slots[ins.out] = want
        outs, updates = self.opt.results() if not (first and resync) else (None, None)
        ref_outs, ref_updates = self.ref_results
        for what, got, want in _pairs(outs or [], ref_outs, updates or [], ref_updates, prog):
            err = "" if first or not _finite(want) else self._compare(want, got)
            if err:
                first = (f"call {self.calls}: {what} of the optimized program differs from "
                         f"the O0 reference: {err}")
        return outs, updates, first

    # -- 4. the real executable ----------------------------------------------------------------
    def _run_real(self, args, want_outs, want_updates):
        prog, exe = self.fn.program, self.fn.exe
        try:
            result = exe(*args)
        except runtime.PlanError as e:
            raise CheckError(f"call {self.calls}: the memory plan failed verification: {e}") from e
        outs = result if isinstance(result, list) else [result]
        new = [exe.cells[u["param"]].value for u in prog.updates]
        for what, got, want in _pairs([_host(o) for o in outs], want_outs,
                                      [_host(v) for v in new], want_updates, prog):
            err = self._compare(want, got)
            if err:
                raise CheckError(
                    f"call {self.calls}: {what} of the compiled function differs from the "
                    f"same optimized program run instruction by instruction: {err}. The "
                    f"instructions agree, so the fault is in how the executable runs them: "
                    f"memory plan, out= buffers, loop groups or in-place reuse")
        try:
            runtime.verify_plan(exe)
        except runtime.PlanError as e:
            raise CheckError(f"call {self.calls}: the memory plan failed verification: {e}") from e
        return result

    # -- comparisons and messages --------------------------------------------------------------
    def _compare(self, want, got):
        """'' when got matches want within the dtype's tolerance, else what differs."""
        want, got = np.asarray(want), np.asarray(got)
        if want.shape != got.shape:
            return f"shape {got.shape}, expected {want.shape}"
        if want.dtype.kind not in "fc":
            if np.array_equal(want, got):
                return ""
            diff = np.argwhere(want != got)[0]
            return (f"exact values expected ({want.dtype.name}); first difference at index "
                    f"{tuple(int(i) for i in diff)}: {got[tuple(diff)].item()!r} vs "
                    f"{want[tuple(diff)].item()!r}")
        if want.size == 0:
            return ""
        tol = self.tol.get(want.dtype.name, TOLERANCE["float64"])
        with np.errstate(all="ignore"):
            err = np.asarray(np.subtract(got.astype(want.dtype, copy=False), want))
            if err.ndim and err.dtype.kind == "f":
                np.abs(err, out=err)  # in place: one temporary array per comparison
            else:
                err = np.asarray(np.abs(err))
            top = np.abs(want).max() if want.dtype.kind == "c" else max(want.max(), -want.min())
            scale = max(float(top), SCALE_FLOOR)
            worst = float(err.max())
            if worst <= tol * scale:  # False for NaN
                return ""
            rel = err / np.maximum(np.abs(want), np.finfo(want.real.dtype).tiny)
            at = np.unravel_index(int(np.nanargmax(err)) if np.isfinite(worst) else
                                  int(np.argmax(~np.isfinite(err))), err.shape)
            over = int(np.count_nonzero(~(err <= tol * scale)))
        return (f"max abs error {worst:.3g}, max rel error {float(np.nanmax(rel)):.3g} "
                f"(tolerance {tol:g} x max|reference| {scale:.3g}; {over} of {err.size} "
                f"elements over it); worst at index "
                f"{tuple(int(i) for i in at)}: {got[at].item()!r} vs {want[at].item()!r}")

    def _describe(self, program, graph, k, sep="; "):
        """'instruction k (kernel) for <where>' plus, for backward nodes, the forward op."""
        ins = program.instrs[k]
        text = f"instruction {k} ({ins.kernel}) for {ins.where}"
        d = graph.nodes[ins.node] if ins.node in graph else {}
        if d.get("phase") == "backward" and "origin" in d:
            text += f"{sep}backward pass: {self._origin(d['origin'])}"
        return text

    def _origin(self, nid):
        user = self.fn.user_graph.nx
        if nid not in user:
            return f"part of the gradient through node %{nid}"
        o = user.nodes[nid]
        who = o.get("name") or f"%{nid}"
        return (f"part of the gradient through {who} ({o['op']}, {o['type'].short()}) made "
                f"at {o.get('trace') or '?'}")

    def _nan_message(self, k, v, ref_bad):
        prog = self.fn.program
        here = self._describe(prog, self.fn.graph, k)
        level = self.fn.level
        if ref_bad is None:
            return (f"call {self.calls}: the {level} program makes {_nonfinite(v)} at {here}, "
                    f"where the unoptimized (O0) reference stays finite: an optimization or a "
                    f"fast kernel is wrong here")
        j, what, operands = ref_bad
        text = (f"call {self.calls}: {what} first appears at "
                f"{self._describe(self.ref_program, self.ref_graph, j, sep=chr(10) + '  ')}\n"
                f"  its operands: {operands}")
        if level == "O0":
            return text
        return (f"{text}\n  (found running the unoptimized O0 program instruction by "
                f"instruction; in the {level} program the first non-finite value is at {here})")

    def _mismatch_message(self, k, err):
        prog = self.fn.program
        ins = prog.instrs[k]
        ref_k = next(j for j, r in enumerate(self.ref_program.instrs) if r.node == ins.node)
        made_by = {i.out: j for j, i in enumerate(prog.instrs)}
        new = [j for j in (made_by.get(a) for a in ins.args)
               if j is not None and prog.instrs[j].node not in self.shared]
        suspects = "".join(f"\n  its operand comes from {self._describe(prog, self.fn.graph, j)}"
                           f", which only the optimized program has (not compared: a likely "
                           f"culprit)" for j in new)
        return (f"call {self.calls}: the {self.fn.level} program differs from the O0 "
                f"reference first at {self._describe(prog, self.fn.graph, k)}: {err}\n"
                f"  O0: {self._describe(self.ref_program, self.ref_graph, ref_k)}" + suspects)


KEYS = ("op", "attrs", "type", "name", "trace", "phase", "origin")


def same_nodes(program, graph, ref_program, ref_graph):
    """Nodes both Programs compute that are the same node, so they hold the same value.

    Passes never give a new node the id of a removed one (flowc/ir/graph.py fresh_ids);
    as a guard, a node counts as the same only when its attributes match and every operand
    with the same id on both sides is the same too.
    """
    in_ref = {ins.node for ins in ref_program.instrs}
    same = set()
    for ins in program.instrs:  # program order: operands are decided first
        n = ins.node
        if n not in in_ref:
            continue
        d, r = graph.nodes[n], ref_graph.nodes[n]
        if not all(_equal(d.get(k), r.get(k)) for k in KEYS):
            continue
        ok = True
        for a, b in zip(operands(graph, n), operands(ref_graph, n)):
            if a == b and a not in same and not _same_leaf(graph, ref_graph, a):
                ok = False  # the same id, but not known to be the same value
        if ok:
            same.add(n)
    return same


def _same_leaf(graph, ref_graph, n):
    d, r = graph.nodes[n], ref_graph.nodes[n]
    if d["op"] != r["op"] or d["op"] not in ("input", "param", "const"):
        return False
    return d["op"] != "const" or (d["type"] == r["type"] and
                                  np.array_equal(d["value"], r["value"]))


def _equal(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays in attrs: compare as arrays
        return a is b or (np.shape(a) == np.shape(b) and bool(np.all(np.equal(a, b))))


def _pairs(outs, ref_outs, updates, ref_updates, prog):
    """(what, got, want) for every output and update value, named for messages."""
    where = {ins.out: ins.where for ins in prog.instrs}
    for i, (g, w) in enumerate(zip(outs, ref_outs)):
        s = prog.outputs[i]
        yield f"output {i}" + (f" ({where[s]})" if s in where else ""), g, w
    for u, g, w in zip(prog.updates, updates, ref_updates):
        yield f"the update of parameter {prog.params[u['param']]['name']!r}", g, w


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _finite(v):
    """True when v holds no NaN or inf (integers and bools always)."""
    if v.dtype.kind not in "fc" or v.size == 0:
        return True
    # Any NaN/inf makes the sum non-finite: one cheap pass (callers ignore its overflow).
    if np.isfinite(np.add.reduce(v, axis=None)):
        return True
    return bool(np.isfinite(v).all())


def _nonfinite(v):
    """'' for finite v, else e.g. 'NaN (3 of 12 elements; first at index (0, 2))'."""
    v = np.asarray(v)
    if _finite(v):
        return ""
    bad = ~np.isfinite(v)
    first = tuple(int(i) for i in np.argwhere(bad)[0]) if v.ndim else ()
    x = v[first]
    kind = "NaN" if np.isnan(x) else ("-inf" if np.real(x) < 0 else "inf")
    return f"{kind} ({int(bad.sum())} of {v.size} elements; first at index {first})"
