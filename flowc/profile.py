"""Profiles of compiled functions: time per instruction and per op, and memory figures."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List

import numpy as np


@dataclass
class Profile:
    """Seconds per call of each instruction (mean over `calls` timed calls), and where the
    rest of the call went. Printing it (or showing it at the prompt) gives the table."""

    rows: List[tuple]  # (index, kernel, where, seconds, node)
    calls: int
    total: float       # seconds per call of the function as the user calls it
    runtime: float = 0.0  # seconds per call of the runtime's run alone (no flowc checks)
    timed: float = 0.0    # seconds per call of the instrumented runs the rows come from

    @property
    def instructions(self) -> float:
        """Seconds per call inside the instructions (their sum, in the instrumented runs)."""
        return sum(r[3] for r in self.rows)

    def _run(self):
        """The runtime's plain run, within the whole call (noise can put it above)."""
        return min(self.runtime or self.total, self.total)

    def share(self, sec) -> float:
        """An instruction's estimated share of the whole call: its share of the instrumented
        run (whose timers cost time of their own), scaled to the plain run's share of the
        whole call."""
        timed = self.timed or self.instructions or 1e-12
        return sec / max(timed, 1e-12) * self._run() / max(self.total, 1e-12)

    def parts(self):
        """[(what, seconds per call)] adding up to the whole call: the instructions, the
        runtime's work between them, and flowc's own call around the runtime."""
        run = self._run()
        instr = run * min(self.instructions / max(self.timed or self.instructions, 1e-12), 1.0)
        return [("instructions (the table above)", instr),
                ("runtime between instructions (dispatch, buffers, output copies)", run - instr),
                ("flowc's call (input checks and conversion, results)", self.total - run)]

    def by_op(self):
        """[(kernel, seconds per call, share of the whole call)] sorted by time."""
        acc = {}
        for _, kernel, _, sec, _ in self.rows:
            acc[kernel] = acc.get(kernel, 0.0) + sec
        return sorted(((k, v, self.share(v)) for k, v in acc.items()), key=lambda r: -r[1])

    def table(self, top=None) -> str:
        """A text table: the slowest instructions first, the time per op kind, then the
        whole call split into the instructions and what surrounds them."""
        whole = max(self.total, 1e-12)
        rows = sorted(self.rows, key=lambda r: -r[3])[:top]
        out = [f"{'#':>4}  {'kernel':<16}{'us/call':>10}{'share':>8}  node",
               "-" * 78]
        for i, kernel, where, sec, _ in rows:
            out.append(f"{i:>4}  {kernel:<16}{sec * 1e6:>10.1f}{self.share(sec):>8.1%}"
                       f"  {where}")
        out += ["", f"{'op':<22}{'us/call':>10}{'share':>8}", "-" * 40]
        out += [f"{k:<22}{v * 1e6:>10.1f}{s:>8.1%}" for k, v, s in self.by_op()]
        out.append(f"\nwhole call: {self.total * 1e6:.1f} us (mean of {self.calls} calls)")
        out += [f"  {sec * 1e6:>10.1f} us {sec / whole:>7.1%}  {what}"
                for what, sec in self.parts()]
        if self.timed:
            out.append(f"  (us/call: instrumented runs of {self.timed * 1e6:.1f} us a call, "
                       f"timers included; shares: of the whole call, scaled from them)")
        return "\n".join(out)

    __str__ = table

    def __repr__(self):
        return self.table()

    def heat(self):
        """{node id: share of the call's time}, for colouring a picture."""
        return {node: self.share(sec) for _, _, _, sec, node in self.rows}


def profile(fn, args, calls=20):
    """Time each instruction of compiled function `fn` on `args`, the runtime's run and the
    whole call; parameters are restored."""
    exe = fn.exe
    saved = [np.array(c.value, copy=True) if not hasattr(c.value, "get") else c.value.copy()
             for c in exe.cells]
    groups = getattr(exe, "loop_groups", [])
    try:
        fn(*args)  # warm: plan the buffers for these shapes
        exe.call_timed(*args)
        exe.timings[:] = [0.0] * len(exe.timings)
        before = exe.chunked_calls() if groups else []
        # Interleaved, so that a busy machine slows the three alike.
        spent = [0.0, 0.0, 0.0]
        for _ in range(calls):
            for k, run in enumerate((fn, exe, exe.call_timed)):
                t0 = time.perf_counter()
                run(*args)
                spent[k] += time.perf_counter() - t0
        total, runtime, timed = (t / calls for t in spent)
        after = exe.chunked_calls() if groups else []
    finally:
        for c, v in zip(exe.cells, saved):
            c.value = v
    kernels = [ins.kernel for ins in exe.program.instrs]
    for k, algo in (exe.algorithms() if hasattr(exe, "algorithms") else {}).items():
        kernels[k] = f"{kernels[k]}[{algo}]"  # conv[im2col]: which algorithm ran
    for members, b, a in zip(groups, before, after):
        if a > b:  # ran as one chunked loop: its whole time sits on the first member
            kernels[members[0]] = f"loop {members[0]}-{members[-1]}"
    rows = [(i, kernels[i], ins.where, exe.timings[i] / calls, ins.node)
            for i, ins in enumerate(exe.program.instrs)]
    return Profile(rows, calls, total, runtime, timed)
