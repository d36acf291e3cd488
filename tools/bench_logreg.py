"""Benchmark: one full-batch logistic-regression training step, flowc vs hand-written NumPy.

Same data (400 x 784 float64), same cost (mean cross-entropy + 0.01 * sum(w**2)), same
updates (lr 0.1), same outputs (cost and the 0/1 predictions), in one process. First checks
that both give the same cost and parameters after a few steps, then times many steps and
prints the median time per step of each and the ratio flowc / NumPy (target: <= 1.5).

    python tools/bench_logreg.py [--steps 2000] [--repeats 7] [--optimize O1]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flowc as fc  # noqa: E402

N, FEATS, LR, L2 = 400, 784, 0.1, 0.01


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, FEATS)), rng.integers(0, 2, N).astype("float64")


def flowc_step(optimize):
    """The flowc training function and its parameters (w, b)."""
    x = fc.input("x", shape=(None, FEATS), dtype="float64")
    y = fc.input("y", shape=(None,))
    w = fc.param("w", np.zeros(FEATS))
    b = fc.param("b", 0.0)
    p = fc.sigmoid(x @ w + b)
    cost = fc.mean(-y * fc.log(p) - (1 - y) * fc.log(1 - p)) + L2 * fc.sum(w ** 2)
    gw, gb = fc.grad(cost, [w, b])
    train = fc.function([x, y], [cost, p > 0.5], optimize=optimize,
                        updates=[(w, w - LR * gw), (b, b - LR * gb)])
    return train, w, b


class NumpyStep:
    """The same step written by hand, as a careful NumPy user would (state kept on the object)."""

    def __init__(self):
        self.w, self.b = np.zeros(FEATS), 0.0

    def __call__(self, X, Y):
        w, b = self.w, self.b
        p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
        cost = np.mean(-Y * np.log(p) - (1 - Y) * np.log(1 - p)) + L2 * np.sum(w * w)
        dz = (p - Y) / len(Y)                        # d cost / d (X @ w + b)
        gw = X.T @ dz + (2 * L2) * w
        gb = dz.sum()
        self.w, self.b = w - LR * gw, b - LR * gb   # updates after outputs: Theano semantics
        return cost, p > 0.5


def check(train, w, b, ref, X, Y, steps=5):
    """Both versions agree on cost, predictions and parameters after a few steps."""
    for i in range(steps):
        (c1, p1), (c2, p2) = train(X, Y), ref(X, Y)
        if not np.allclose(c1, c2, rtol=1e-10, atol=1e-12) or not np.array_equal(p1, p2):
            raise SystemExit(f"mismatch at step {i}: cost {c1!r} vs {c2!r}")
    dw = np.max(np.abs(w.get_value() - ref.w))
    db = abs(float(b.get_value()) - ref.b)
    if dw > 1e-12 or db > 1e-12:
        raise SystemExit(f"parameters differ after {steps} steps: |dw| {dw:.3g}, |db| {db:.3g}")
    return float(c1), float(c2), max(dw, db)


def timed(fn, X, Y, steps):
    """Mean seconds per step over `steps` consecutive steps."""
    t = time.perf_counter()
    for _ in range(steps):
        fn(X, Y)
    return (time.perf_counter() - t) / steps


def compare(fns, X, Y, steps, repeats):
    """Per function: median seconds per step over `repeats`; the repeats are interleaved so
    that load from other processes falls on both sides alike."""
    for fn in fns:
        fn(X, Y)                                     # warm: buffers allocated, code cached
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            ts.append(timed(fn, X, Y, steps))
    return [(statistics.median(ts), min(ts)) for ts in times]


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:                                # older NumPy: no dict mode
        return "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000, help="steps per timed repeat")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats (median reported)")
    ap.add_argument("--optimize", default="O2", help="flowc optimization level (default: the library default)")
    a = ap.parse_args(argv)

    X, Y = data()
    with fc.Graph():
        train, w, b = flowc_step(a.optimize)
        c1, c2, dp = check(train, w, b, NumpyStep(), X, Y)
        (t_fc, best_fc), (t_np, best_np) = compare([train, NumpyStep()], X, Y, a.steps,
                                                   a.repeats)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, NumPy {np.__version__}, BLAS {blas_name()}")
    print(f"logistic-regression step, {N} x {FEATS} float64, full batch, optimize={a.optimize}")
    print(f"check: same cost after 5 steps (flowc {c1:.12f}, numpy {c2:.12f}), "
          f"max |param diff| {dp:.1e}")
    print(f"timing: median of {a.repeats} interleaved repeats x {a.steps} steps "
          "(best in brackets)")
    print(f"  flowc  {t_fc * 1e6:8.1f} us/step  ({best_fc * 1e6:.1f})")
    print(f"  numpy  {t_np * 1e6:8.1f} us/step  ({best_np * 1e6:.1f})")
    ratio = t_fc / t_np
    print(f"  ratio flowc/numpy {ratio:.2f} (medians), {best_fc / best_np:.2f} (bests); "
          f"target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'}")
    return ratio


if __name__ == "__main__":
    main()
