"""Loops, measured against baselines in the same run (ratios, best of the repeats):

1. per-step overhead: a scalar recurrence of 10^5 steps (fc.fori_loop) against the same
   loop by hand with NumPy ufuncs on 0-d arrays and with Python floats;
2. an RNN training step (T=28, B=64, I=28, H=128, float32: h = tanh(x_t W + h U + b), loss
   on the last h, SGD on W, U, V) with fc.scan against hand-written NumPy BPTT with the
   same hoisting, and against the same model unrolled in Python into one flowc graph;
3. compile time against the number of steps: the scan compiles one body whatever T is.

    python tools/bench_loops.py [--repeats 5] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import flowc as fc  # noqa: E402

T, B, I, H = 28, 64, 28, 128


def best_interleaved(fns, repeats):
    """The best wall time of each of fns, timed round-robin (after one warm call each):
    timed one after the other, whichever ran second looked up to 15 % faster."""
    for fn in fns:
        fn()
    out = [float("inf")] * len(fns)
    for r in range(repeats):
        order = range(len(fns)) if r % 2 else reversed(range(len(fns)))
        for k in order:
            t = time.perf_counter()
            fns[k]()
            out[k] = min(out[k], time.perf_counter() - t)
    return out


def best(fn, repeats):
    """The best wall time of `repeats` calls of fn (after one warm call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def scalar_recurrence(steps, repeats):
    with fc.Graph():
        x, n = fc.input("x", ()), fc.scalar("n", "int64")
        f = fc.function([x, n], fc.fori_loop(0, n, lambda i, c: c * 0.999 + 0.5, x))
        a, k = np.float64(1.0), np.int64(steps)
        t_flowc = best(lambda: f(a, k), repeats)

    def ufuncs():
        c = np.array(1.0)
        for _ in range(steps):
            c = np.add(np.multiply(c, 0.999), 0.5)
        return c

    def floats():
        c = 1.0
        for _ in range(steps):
            c = c * 0.999 + 0.5
        return c
    return t_flowc, best(ufuncs, repeats), best(floats, repeats)


def rnn_params(rng):
    return [(rng.standard_normal(s) * 0.1).astype(np.float32)
            for s in ((I, H), (H, H), (H,), (H, 1))]


def rnn_step_flowc(values, unrolled, save="carries"):
    """A compiled SGD step of the RNN (scan, or unrolled in Python)."""
    x, y = fc.input("x", (T, B, I), "float32"), fc.input("y", (B, 1), "float32")
    W, U, b, V = [fc.param(n, v.copy()) for n, v in zip("WUbV", values)]
    h0 = fc.zeros((B, H), "float32")
    if unrolled:
        h = h0
        for t in range(T):
            h = fc.tanh(x[t] @ W + h @ U + b)
    else:
        h, _ = fc.scan(lambda h, xt: (fc.tanh(xt @ W + h @ U + b), None), h0, x, save=save)
    loss = fc.mean((h @ V - y) ** 2)
    grads = fc.grad(loss, [W, U, b, V])
    return fc.function([x, y], loss, updates=[(p, p - 0.01 * g)
                                              for p, g in zip((W, U, b, V), grads)])


def rnn_step_numpy(values):
    """The same SGD step by hand: forward keeping every h, backward through time, with
    the input projection x_t W done as one GEMM for all steps and dW as one after."""
    W, U, b, V = [v.copy() for v in values]

    def step(x, y):
        nonlocal W, U, b, V
        xw = (x.reshape(T * B, I) @ W).reshape(T, B, H) + b
        hs = np.empty((T + 1, B, H), np.float32)
        hs[0] = 0
        for t in range(T):
            hs[t + 1] = np.tanh(xw[t] + hs[t] @ U)
        out = hs[T] @ V - y
        loss = np.mean(out ** 2)
        g_out = (2.0 / out.size) * out
        dV = hs[T].T @ g_out
        dh = g_out @ V.T
        dU = np.zeros_like(U)
        da = np.empty((T, B, H), np.float32)
        for t in range(T - 1, -1, -1):
            da[t] = dh * (1 - hs[t + 1] ** 2)
            dU += hs[t].T @ da[t]
            dh = da[t] @ U.T
        dW = x.reshape(T * B, I).T @ da.reshape(T * B, H)
        db = da.sum(axis=(0, 1))
        W, U, b, V = W - 0.01 * dW, U - 0.01 * dU, b - 0.01 * db, V - 0.01 * dV
        return loss
    return step


def compile_time(steps):
    """Seconds to build, differentiate and compile a scan of `steps` steps (no call)."""
    with fc.Graph():
        x = fc.input("x", (steps, 4, 8))
        W = fc.param("W", np.zeros((8, 8)))
        t = time.perf_counter()
        h, _ = fc.scan(lambda h, xt: (fc.tanh(xt @ W + h), None), fc.zeros((4, 8)), x)
        fc.function([x], [h, fc.grad(fc.sum(h), W)])
        return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="10^4 steps, 2 repeats")
    a = ap.parse_args(argv)
    reps = 2 if a.quick else a.repeats
    steps = 10 ** 4 if a.quick else 10 ** 5
    fl, uf, py = scalar_recurrence(steps, reps)
    print(f"scalar recurrence, {steps} steps: flowc {fl:.3f} s ({fl / steps * 1e6:.2f} us/step); "
          f"NumPy ufuncs on 0-d arrays {uf:.3f} s (flowc/NumPy {fl / uf:.2f}); Python floats "
          f"{py:.3f} s (flowc/Python {fl / py:.1f})")
    rng = np.random.default_rng(0)
    values = rnn_params(rng)
    xv = rng.standard_normal((T, B, I)).astype(np.float32)
    yv = rng.standard_normal((B, 1)).astype(np.float32)
    with fc.Graph():
        t0 = time.perf_counter()
        loop = rnn_step_flowc(values, unrolled=False)
        c_loop = time.perf_counter() - t0
    with fc.Graph():
        other = rnn_step_flowc(values, unrolled=False, save="residuals")
    with fc.Graph():
        t0 = time.perf_counter()
        flat = rnn_step_flowc(values, unrolled=True)
        c_flat = time.perf_counter() - t0
    hand = rnn_step_numpy(values)
    t_loop, t_other, t_flat, t_hand = best_interleaved(
        [lambda: loop(xv, yv), lambda: other(xv, yv), lambda: flat(xv, yv),
         lambda: hand(xv, yv)], 3 * reps)
    print(f"RNN training step (T={T}, B={B}, I={I}, H={H}, float32): scan {t_loop * 1e3:.2f} ms, "
          f"unrolled {t_flat * 1e3:.2f} ms, hand NumPy BPTT {t_hand * 1e3:.2f} ms; "
          f"scan/hand {t_loop / t_hand:.2f}, scan/unrolled {t_loop / t_flat:.2f}; "
          f"save='residuals' {t_other * 1e3:.2f} ms ({t_other / t_loop:.2f} x carries); "
          f"compile: scan {c_loop:.2f} s, unrolled {c_flat:.2f} s")
    short = min(compile_time(28) for _ in range(reps))
    long_ = min(compile_time(1000) for _ in range(reps))
    print(f"build + grad + compile of a scan: T=28 {short:.3f} s, T=1000 {long_:.3f} s "
          f"(ratio {long_ / short:.2f})")


if __name__ == "__main__":
    main()
