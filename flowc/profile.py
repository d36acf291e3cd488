"""Profiles of compiled functions: time per instruction and per op, and memory figures."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np


@dataclass
class Profile:
    """Seconds per call of each instruction (mean over `calls` timed calls)."""

    rows: List[tuple]  # (index, kernel, where, seconds, node)
    calls: int
    total: float       # seconds per call, whole function

    def by_op(self):
        """[(kernel, seconds per call, share)] sorted by time."""
        acc = {}
        for _, kernel, _, sec, _ in self.rows:
            acc[kernel] = acc.get(kernel, 0.0) + sec
        return sorted(((k, v, v / max(self.total, 1e-12)) for k, v in acc.items()),
                      key=lambda r: -r[1])

    def table(self, top=None) -> str:
        """A text table: the slowest instructions first, then the time per op kind."""
        rows = sorted(self.rows, key=lambda r: -r[3])[:top]
        out = [f"{'#':>4}  {'kernel':<16}{'us/call':>10}{'share':>8}  node",
               "-" * 78]
        for i, kernel, where, sec, _ in rows:
            out.append(f"{i:>4}  {kernel:<16}{sec * 1e6:>10.1f}{sec / max(self.total, 1e-12):>8.1%}"
                       f"  {where}")
        out += ["", f"{'op':<22}{'us/call':>10}{'share':>8}", "-" * 40]
        out += [f"{k:<22}{v * 1e6:>10.1f}{s:>8.1%}" for k, v, s in self.by_op()]
        out.append(f"\nwhole call: {self.total * 1e6:.1f} us (mean of {self.calls} calls)")
        return "\n".join(out)

    __str__ = table

    def heat(self):
        """{node id: share of the call's time}, for colouring a picture."""
        return {node: sec / max(self.total, 1e-12) for _, _, _, sec, node in self.rows}


def profile(fn, args, calls=20):
    """Time each instruction of compiled function `fn` on `args`; parameters are restored."""
    exe = fn.exe
    saved = [np.array(c.value, copy=True) if not hasattr(c.value, "get") else c.value.copy()
             for c in exe.cells]
    groups = getattr(exe, "loop_groups", [])
    try:
        exe(*args)  # warm: plan the buffers for these shapes
        exe.timings[:] = [0.0] * len(exe.timings)
        before = exe.chunked_calls() if groups else []
        import time
        t0 = time.perf_counter()
        for _ in range(calls):
            exe.call_timed(*args)
        total = (time.perf_counter() - t0) / calls
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
    return Profile(rows, calls, total)
