"""Compile time by stage, at several graph sizes: where does a deep graph's compile go?

Workloads:
  w4     build + grad + compile of an N-layer MLP (width 64, tanh, MSE, SGD): W4 of
         tools/bench_suite.py, N = layers
  chain  h = h * 0.5 + 0.25, N times (issue 10's C2 chain)
  grad   h = sin(h) * 0.5 + h, N times; the cost sum(h) and its gradient
  cnn    an N-conv-layer residual CNN training step (3x3 pad 1, 4 channels, relu, SGD)

Stages: build (graph construction), grad, unit (build_unit), each pass of the pipeline,
lower, link, call 1 (the first call plans memory), call 2. The last column of each size is
the ratio of its total to the previous size's.

    python tools/bench_compile.py [--workload w4] [--sizes 100,400,1600] [--optimize O2]
                                  [--profile STAGE]   # cProfile one stage at the last size
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flowc as fc  # noqa: E402
import flowc_runtime as runtime  # noqa: E402
from flowc.ir.graph import paused_gc  # noqa: E402
from flowc.lower.lower import lower  # noqa: E402
from flowc.lower.unit import build_unit, cast_updates  # noqa: E402
from flowc.passes.pipeline import PIPELINES  # noqa: E402

WIDTH, BATCH = 64, 32


class Stages:
    """Times named stages in order; with `profile` set, cProfiles that stage."""

    def __init__(self, profile=None):
        self.times, self.profile, self.stats = {}, profile, None

    def run(self, name, fn, *args):
        prof = cProfile.Profile() if name == self.profile else None
        t = time.perf_counter()
        if prof:
            prof.enable()
        out = fn(*args)
        if prof:
            prof.disable()
            self.stats = pstats.Stats(prof)
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t
        return out


def build_w4(n, st):
    """An n-layer MLP training step: (inputs, outputs, updates, call arguments)."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((BATCH, WIDTH)).astype(np.float32)
    Y = rng.standard_normal((BATCH, WIDTH)).astype(np.float32)

    def graph():
        x = fc.input("x", shape=(None, WIDTH), dtype="float32")
        y = fc.input("y", shape=(None, WIDTH), dtype="float32")
        ps = []
        for i in range(n):
            ps += [fc.param(f"W{i}", (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH))
                            .astype(np.float32)), fc.param(f"b{i}", np.zeros(WIDTH, np.float32))]
        h = x
        for i in range(0, len(ps), 2):
            h = fc.tanh(h @ ps[i] + ps[i + 1])
        return x, y, ps, fc.mean((h - y) ** 2)
    x, y, ps, cost = st.run("build", graph)
    updates = st.run("grad", lambda: fc.optim.sgd(cost, ps, lr=0.01))
    return [x, y], [cost], updates, (X, Y)


def build_chain(n, st):
    """h = h * 0.5 + 0.25, n times."""
    def graph():
        x = fc.input("x", shape=(None, 4), dtype="float64")
        h = x
        for _ in range(n):
            h = h * 0.5 + 0.25
        return x, h
    x, h = st.run("build", graph)
    return [x], [h], [], (np.linspace(-1, 1, 8).reshape(2, 4),)


def build_grad(n, st):
    """h = sin(h) * 0.5 + h, n times; sum(h) and its gradient."""
    def graph():
        x = fc.input("x", shape=(None, 4), dtype="float64")
        h = x
        for _ in range(n):
            h = fc.sin(h) * 0.5 + h
        return x, fc.sum(h)
    x, cost = st.run("build", graph)
    g = st.run("grad", fc.grad, cost, x)
    return [x], [cost, g], [], (np.linspace(-1, 1, 8).reshape(2, 4),)


def build_cnn(n, st):
    """An n-conv-layer CNN training step (3x3 pad 1, 4 channels, relu, 8x8 maps, SGD)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 4, 8, 8)).astype(np.float32)

    def graph():
        x = fc.input("x", shape=(None, 4, 8, 8), dtype="float32")
        ps = [fc.param(f"K{i}", (rng.standard_normal((4, 4, 3, 3)) / 6).astype(np.float32))
              for i in range(n)]
        h = x
        for k in ps:
            h = 0.5 * (fc.relu(fc.conv2d(h, k, padding=1)) + h)  # bounded at any depth
        return x, ps, fc.mean(h * h)
    x, ps, cost = st.run("build", graph)
    updates = st.run("grad", lambda: fc.optim.sgd(cost, ps, lr=0.01))
    return [x], [cost], updates, (X,)


WORKLOADS = {"w4": build_w4, "chain": build_chain, "grad": build_grad, "cnn": build_cnn}


def measure(workload, n, level, profile=None):
    """{stage: seconds} for one size, run the way fc.function runs it, stage by stage."""
    st = Stages(profile)

    @paused_gc  # as fc.function compiles
    def compile_(ins, outs, ups):
        pairs = cast_updates(list(ups))
        unit, user = st.run("unit", build_unit, ins, outs, pairs, None)
        for p in PIPELINES[level]:
            unit = st.run(p.__name__, p, unit)
        cells = dict(user.cells)
        prog = st.run("lower", lower, unit, {k: c.value for k, c in cells.items()})
        return st.run("link", lambda: runtime.link(prog, device="cpu",
                                                   cells=[cells[p["key"]] for p in prog.params],
                                                   single=len(outs) == 1))
    with fc.Graph():
        ins, outs, ups, args = WORKLOADS[workload](n, st)
        exe = compile_(ins, outs, ups)
        st.run("call 1", exe, *args)
        st.run("call 2", exe, *args)
    return st


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="w4", choices=sorted(WORKLOADS))
    ap.add_argument("--sizes", default="100,400,1600")
    ap.add_argument("--optimize", default="O2", choices=sorted(PIPELINES))
    ap.add_argument("--profile", default=None, help="a stage to cProfile at the last size")
    a = ap.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]
    runs = [measure(a.workload, n, a.optimize, a.profile if n == sizes[-1] else None)
            for n in sizes]
    stages = list(dict.fromkeys(k for r in runs for k in r.times))
    print(f"{a.workload} at {a.optimize}: seconds per stage (x = growth from the previous size)")
    print(f"{'stage':<24}" + "".join(f"{n:>10}{'':>8}" for n in sizes))
    rows = stages + ["compile (to link)", "total"]
    for k in rows:
        vals = []
        for r in runs:
            t = r.times
            vals.append(sum(t.values()) if k == "total" else
                        sum(v for s, v in t.items() if not s.startswith("call"))
                        if k.startswith("compile") else t.get(k, 0.0))
        cells = [f"{v:10.3f}" + (f"  x{v / p:4.1f}" if i and p > 1e-3 else "        ")
                 for i, (v, p) in enumerate(zip(vals, [0.0] + vals[:-1]))]
        print(f"{k:<24}" + "".join(cells))
    if runs[-1].stats:
        print(f"\ncProfile of {a.profile} at {sizes[-1]}:")
        runs[-1].stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
