"""What checked mode costs: time per call with mode="check" against mode=None.

Workloads: the W2 MLP step of tools/bench_suite.py (784-512-256-10, batch 256, float32, SGD)
and the logistic-regression example's training step (400 x 784, float64). Each is built
twice over the same initial parameters; the two are called in turn for the same number of
steps, which also checks that checked mode ends with the same parameters, bit for bit.

    python tools/bench_checked.py [--steps 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flowc as fc  # noqa: E402
from flowc.examples import logreg  # noqa: E402

W2_SIZES = (784, 512, 256, 10)


def w2(mode):
    """The W2 step (as in tools/bench_suite.py) compiled in `mode`; (step, params, args)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((256, W2_SIZES[0])).astype(np.float32)
    labels = rng.integers(0, W2_SIZES[-1], 256)
    with fc.Graph():
        x = fc.input("x", shape=(None, W2_SIZES[0]), dtype="float32")
        y = fc.input("y", shape=(None, 1), dtype="int64")
        ps, h = [], x
        for n_in, n_out in zip(W2_SIZES[:-1], W2_SIZES[1:]):
            W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
            ps += [fc.param(f"W{len(ps)}", W), fc.param(f"b{len(ps)}", np.zeros(n_out, "f4"))]
            h = h @ ps[-2] + ps[-1]
            h = fc.relu(h) if len(ps) < 6 else h
        cost = -fc.mean(fc.take_along_axis(fc.log_softmax(h, axis=1), y, axis=1))
        step = fc.function([x, y], cost, updates=fc.optim.sgd(cost, ps, lr=0.1), mode=mode)
    return step, ps, (X, labels[:, None])


def logistic(mode):
    """The logreg example's training step compiled in `mode`; (step, params, args)."""
    X, Y = logreg.make_data(0)
    with fc.Graph():
        m = logreg.build()
        step = fc.function([m["x"], m["y"]], [m["cost"], m["prediction"]],
                           updates=[(m["w"], m["w"] - 0.1 * m["gw"]),
                                    (m["b"], m["b"] - 0.1 * m["gb"])], mode=mode)
    return step, [m["w"], m["b"]], (X, Y)


def times(fast, checked, args, steps):
    """Per mode, (fastest, median) seconds per call over `steps` interleaved call pairs (so
    load from other processes falls on both alike), after one warm call each."""
    fast(*args)
    checked(*args)
    ts = {fast: [], checked: []}
    for _ in range(steps):
        for step in (fast, checked):
            t = time.perf_counter()
            step(*args)
            ts[step].append(time.perf_counter() - t)
    return [(min(ts[f]), statistics.median(ts[f])) for f in (fast, checked)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    for name, make in (("W2 MLP step", w2), ("logreg step", logistic)):
        (fast, pf, args), (checked, pc, _) = make(None), make("check")
        t_fast, t_check = times(fast, checked, args, a.steps)
        same = all(np.array_equal(p.get_value(), q.get_value()) for p, q in zip(pf, pc))
        print(f"{name:12s} fastest/median ms per call: mode=None {t_fast[0] * 1e3:.2f} / "
              f"{t_fast[1] * 1e3:.2f}, mode='check' {t_check[0] * 1e3:.2f} / "
              f"{t_check[1] * 1e3:.2f} (x{t_check[0] / t_fast[0]:.1f} fastest, "
              f"x{t_check[1] / t_fast[1]:.1f} median); same parameters: {same}")


if __name__ == "__main__":
    main()
