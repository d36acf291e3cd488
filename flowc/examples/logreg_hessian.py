"""The full Hessian of the logistic-regression cost w.r.t. w (784 x 784), against its closed form.

The model and cost are those of flowc.examples.logreg (400 x 784 random data, mean
cross-entropy + 0.01 * sum(w**2)). After a few training steps (so p(1 - p) differs per
sample), fc.hessian(cost, w) is compiled and evaluated, and compared with
    H = X^T diag(p (1 - p)) X / N + 0.02 I,    p = sigmoid(X w + b).

    python -m flowc.examples.logreg_hessian [--steps 20] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import flowc as fc
from flowc.examples import logreg


def closed_form(X, w, b, l2=0.01):
    """X^T diag(p (1 - p)) X / N + 2 l2 I in NumPy."""
    p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
    return (X.T * (p * (1.0 - p))) @ X / len(X) + 2 * l2 * np.eye(X.shape[1])


def main(steps=20, seed=0, verbose=True):
    """Train `steps` steps, then evaluate the Hessian; returns it with the check's figures."""
    X, Y = logreg.make_data(seed)
    with fc.Graph():
        m = logreg.build()
        for _ in range(steps):
            m["train"](X, Y)
        H = fc.hessian(m["cost"], m["w"])
        start = time.perf_counter()
        f = fc.function([m["x"], m["y"]], H)
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        hess = f(X, Y)
        call_s = time.perf_counter() - start
        w, b = m["w"].get_value(), float(m["b"].get_value())
    ref = closed_form(X, w, b)
    rel = float(np.max(np.abs(hess - ref)) / np.max(np.abs(ref)))
    eig = np.linalg.eigvalsh(hess)
    figures = dict(hessian=hess, closed_form=ref, rel_error=rel, shape=hess.shape,
                   symmetric_error=float(np.max(np.abs(hess - hess.T))),
                   min_eig=float(eig[0]), max_eig=float(eig[-1]), steps=steps,
                   compile_seconds=compile_s, call_seconds=call_s,
                   instructions=len(f.program.instrs))
    if verbose:
        print(f"Hessian of the logistic-regression cost w.r.t. w after {steps} training steps")
        print(f"shape {hess.shape}, {figures['instructions']} instructions, compiled in "
              f"{compile_s:.3f} s, evaluated in {call_s:.3f} s")
        print(f"max |H - closed form| / max |closed form| = {rel:.1e}")
        print(f"max |H - H^T| = {figures['symmetric_error']:.1e}")
        print(f"eigenvalues in [{eig[0]:.6f}, {eig[-1]:.6f}] (at least 2 * 0.01 = 0.02: "
              "the cost is strongly convex in w)")
    return figures


def cli(argv=None):
    ap = argparse.ArgumentParser(prog="python -m flowc.examples.logreg_hessian",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="training steps before (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random data")
    a = ap.parse_args(argv)
    main(steps=a.steps, seed=a.seed)


if __name__ == "__main__":
    cli()
