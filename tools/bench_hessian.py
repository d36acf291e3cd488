"""Benchmark: the full Hessian of the logistic-regression cost w.r.t. w, flowc vs closed form.

Same data (400 x 784 float64) and cost as the logistic-regression example (mean
cross-entropy + 0.01 * sum(w**2)). flowc builds d2 cost / dw2 with fc.hessian (one batched
graph), compiles it, and checks it against the closed form in NumPy,
    H = X^T diag(p (1 - p)) X / N + 0.02 I,   p = sigmoid(X w + b),
then times both in the same run (interleaved repeats, median) and prints the ratio
flowc / closed form (target: <= 3). --profile lists the instructions that take the time.

    python tools/bench_hessian.py [--calls 5] [--repeats 7] [--optimize O1] [--profile]
"""
from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flowc as fc  # noqa: E402

N, FEATS, L2 = 400, 784, 0.01


def data(seed=0):
    """Inputs, 0/1 labels and a point (w, b) away from 0, so p(1 - p) varies per sample."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((N, FEATS)), rng.integers(0, 2, N).astype("float64")
    return X, Y, 0.05 * rng.standard_normal(FEATS), 0.1


def flowc_hessian(W, B, optimize):
    """The compiled Hessian function of (x, y) at the parameters (w, b) = (W, B)."""
    x = fc.input("x", shape=(None, FEATS), dtype="float64")
    y = fc.input("y", shape=(None,))
    w = fc.param("w", W)
    b = fc.param("b", B)
    p = fc.sigmoid(x @ w + b)
    cost = fc.mean(-y * fc.log(p) - (1 - y) * fc.log(1 - p)) + L2 * fc.sum(w ** 2)
    return fc.function([x, y], fc.hessian(cost, w), optimize=optimize)


class ClosedForm:
    """The Hessian by its formula, as a careful NumPy user would write it."""

    def __init__(self, W, B):
        self.W, self.B = W, B

    def __call__(self, X, Y):
        p = 1.0 / (1.0 + np.exp(-(X @ self.W + self.B)))
        H = (X.T * (p * (1.0 - p))) @ X
        H /= len(X)
        H[np.diag_indices_from(H)] += 2 * L2
        return H


def compare(fns, X, Y, calls, repeats):
    """Per function: (median, best) over `repeats` of the mean seconds per call of `calls`
    consecutive calls; the repeats are interleaved so that load from other processes falls on
    both sides alike."""
    for fn in fns:
        fn(X, Y)                                     # warm: buffers allocated, code cached
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            for _ in range(calls):
                fn(X, Y)
            ts.append((time.perf_counter() - t) / calls)
    return [(statistics.median(ts), min(ts)) for ts in times]


def profile(f, X, Y, calls=5, top=12):
    """Seconds per call of each instruction of f's Program, largest first (kernels wrapped
    with timers in the linked code's namespace; the generated code itself is unchanged)."""
    env = f.exe._run.__globals__
    acc = collections.defaultdict(float)
    saved = {}

    def timed(k, fn):
        def run(*a, **kw):
            t = time.perf_counter()
            r = fn(*a, **kw)
            acc[k] += time.perf_counter() - t
            return r
        return run
    for k, ins in enumerate(f.program.instrs):
        name = f"{ins.kernel}_{k}"
        saved[name] = env[name]
        env[name] = timed(k, env[name])
    try:
        f(X, Y)
        acc.clear()
        for _ in range(calls):
            f(X, Y)
    finally:
        env.update(saved)
    rows = sorted(((t / calls, k) for k, t in acc.items()), reverse=True)
    return sum(t for t, _ in rows), rows[:top]


def blas_name():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:                                # older NumPy: no dict mode
        return "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=5, help="consecutive calls per timed repeat")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats (median reported)")
    ap.add_argument("--optimize", default="O2", help="flowc optimization level (default: the library default)")
    ap.add_argument("--profile", action="store_true", help="time each instruction of flowc's call")
    a = ap.parse_args(argv)

    X, Y, W, B = data()
    ref = ClosedForm(W, B)
    with fc.Graph():
        t = time.perf_counter()
        f = flowc_hessian(W, B, a.optimize)
        build_s = time.perf_counter() - t
    H, Hc = f(X, Y), ref(X, Y)
    err = float(np.max(np.abs(H - Hc)) / np.max(np.abs(Hc)))
    if H.shape != (FEATS, FEATS) or err > 1e-10:
        raise SystemExit(f"flowc's Hessian differs from the closed form: shape {H.shape}, "
                         f"max relative difference {err:.3g}")
    (t_fc, best_fc), (t_np, best_np) = compare([f, ref], X, Y, a.calls, a.repeats)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, NumPy {np.__version__}, BLAS {blas_name()}")
    print(f"Hessian of the logistic-regression cost w.r.t. w: {N} x {FEATS} float64, "
          f"result {FEATS} x {FEATS}, optimize={a.optimize}")
    print(f"build + compile: {build_s:.3f} s, {len(f.program.instrs)} instructions")
    print(f"check: max |flowc - closed form| / max |closed form| = {err:.1e}")
    print(f"timing: median of {a.repeats} interleaved repeats x {a.calls} calls "
          "(best in brackets)")
    print(f"  flowc        {t_fc * 1e3:8.2f} ms/call  ({best_fc * 1e3:.2f})")
    print(f"  closed form  {t_np * 1e3:8.2f} ms/call  ({best_np * 1e3:.2f})")
    ratio = t_fc / t_np
    print(f"  ratio flowc/closed form {ratio:.2f} (medians), {best_fc / best_np:.2f} (bests); "
          f"target <= 3: {'met' if ratio <= 3 else 'NOT met'}")
    if a.profile:
        total, rows = profile(f, X, Y)
        print(f"profile: {total * 1e3:.2f} ms/call in kernels; the largest instructions:")
        for sec, k in rows:
            ins = f.program.instrs[k]
            shapes = " ".join(str(tuple(s)) for s in [ins.shape])
            print(f"  {sec * 1e3:8.2f} ms  #{k:<3} {ins.kernel:<14} -> {shapes:<16} {ins.where}")
    return ratio


if __name__ == "__main__":
    main()
