"""Newton's method on a smooth, strongly convex function of a vector, with fc.hessian + fc.solve.

    f(x) = sum(exp(A x)) + |x|^2 / 2        (A: 30 x 8, seeded)

Each step is one compiled call that returns f and |grad f| at the current x and updates
x <- x - H^-1 grad f, with H = fc.hessian(f, x) and the step from fc.solve (no inverse).
The gradient norm printed per iteration roughly squares from one step to the next near the
minimum: quadratic convergence.

    python -m flowc.examples.newton [--dim 8] [--rows 30] [--seed 0]
"""
from __future__ import annotations

import argparse
import math

import numpy as np

import flowc as fc


def make_problem(rows=30, dim=8, seed=0):
    """The matrix A of f, seeded; scaled so plain (undamped) Newton converges from x = 0."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, dim)) / math.sqrt(dim)


def build(A):
    """The Newton step as one compiled function: () -> [f(x), |grad f(x)|], x updated."""
    x = fc.param("x", np.zeros(A.shape[1]))
    a = fc.input("A", (None, A.shape[1]))
    f = fc.sum(fc.exp(a @ x)) + 0.5 * fc.sum(x ** 2)
    g = fc.grad(f, x)
    H = fc.hessian(f, x)
    step = fc.solve(H, g)
    newton = fc.function([a], [f, fc.norm(g)], updates=[(x, x - step)])
    return x, newton


def convergence_orders(norms, floor=1e-11):
    """log|g_{k+1}| / log|g_k| for steps that end above the rounding floor (2 = quadratic)."""
    return [math.log(b) / math.log(a) for a, b in zip(norms, norms[1:])
            if b > floor and 0 < a < 0.1]


def main(rows=30, dim=8, seed=0, max_iter=20, tol=1e-13, verbose=True):
    """Minimize f by Newton's method; returns the costs, gradient norms and the minimizer."""
    A = make_problem(rows, dim, seed)
    costs, norms = [], []
    with fc.Graph():
        x, newton = build(A)
        for _ in range(max_iter):
            f, gnorm = newton(A)           # values at x before this step's update
            costs.append(float(f))
            norms.append(float(gnorm))
            if gnorm < tol:
                break
        xmin = x.get_value()
    orders = convergence_orders(norms)
    if verbose:
        print(f"Newton's method on f(x) = sum(exp(A x)) + |x|^2/2, A {rows} x {dim}")
        print(" iter   f(x)                  |grad f(x)|   |g_k| / |g_k-1|^2")
        for k, (c, n) in enumerate(zip(costs, norms)):
            ratio = f"{n / norms[k - 1] ** 2:.3g}" if k else ""
            print(f" {k:4d}   {c:.15f}   {n:.3e}     {ratio}")
        print("convergence order log|g_k+1| / log|g_k|: " + ", ".join(f"{o:.2f}" for o in orders))
    return dict(costs=costs, grad_norms=norms, orders=orders, x=xmin,
                iterations=len(norms) - 1)


def cli(argv=None):
    ap = argparse.ArgumentParser(prog="python -m flowc.examples.newton", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=30, help="rows of A (default 30)")
    ap.add_argument("--dim", type=int, default=8, help="length of x (default 8)")
    ap.add_argument("--seed", type=int, default=0, help="seed of A")
    a = ap.parse_args(argv)
    main(rows=a.rows, dim=a.dim, seed=a.seed)


if __name__ == "__main__":
    cli()
