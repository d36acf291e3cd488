"""Levenberg-Marquardt: fit y = a exp(-b t) + c to seeded noisy data, with fc.jacobian.

The residuals r(theta) = a exp(-b t) + c - y of theta = (a, b, c) are a flowc graph; their
Jacobian J (N x 3, from fc.jacobian; N is known only at call time) and the damped step
    (J^T J + lambda diag(J^T J)) delta = J^T r        (fc.solve, Marquardt's scaling)
are compiled into one function. A step that lowers the cost is taken and lambda shrinks;
otherwise lambda grows and the step is retried.

    python -m flowc.examples.levenberg_marquardt [--points 60] [--noise 0.02] [--seed 0]
"""
from __future__ import annotations

import argparse

import numpy as np

import flowc as fc

TRUE = (2.5, 1.3, 0.5)       # a, b, c
START = (1.0, 0.3, 0.0)


def make_data(points=60, noise=0.02, seed=0, true=TRUE):
    """Times in [0, 4] and noisy observations of a exp(-b t) + c, seeded."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 4.0, points)
    a, b, c = true
    return t, a * np.exp(-b * t) + c + noise * rng.standard_normal(points)


def build():
    """Compiled (theta, lambda, t, y) -> [cost, step] and (theta, t, y) -> cost."""
    theta = fc.input("theta", (3,))
    lam = fc.input("lambda", ())
    t, y = fc.input("t", (None,)), fc.input("y", (None,))
    a, b, c = theta[0], theta[1], theta[2]
    r = a * fc.exp(-b * t) + c - y                   # residuals, shape (N,)
    cost = 0.5 * fc.sum(r ** 2)
    J = fc.jacobian(r, theta)                        # (N, 3)
    JtJ = J.T @ J
    damped = JtJ + lam * fc.diag(fc.diag(JtJ))
    step = fc.solve(damped, J.T @ r)
    return (fc.function([theta, lam, t, y], [cost, step]),
            fc.function([theta, t, y], cost))


def fit(t, y, start=START, lam=1e-2, max_iter=100, tol=1e-12):
    """Levenberg-Marquardt from `start`; returns theta, the cost per iteration and lambdas."""
    with fc.Graph():
        lm_step, cost_at = build()
        theta = np.array(start, dtype=float)
        costs, lambdas = [], []
        for _ in range(max_iter):
            cost, step = lm_step(theta, lam, t, y)
            costs.append(float(cost))
            lambdas.append(lam)
            trial = theta - step
            with np.errstate(over="ignore", invalid="ignore"):  # a wild trial may overflow
                new = float(cost_at(trial, t, y))
            if new < cost:
                theta, lam = trial, max(lam / 10, 1e-12)
                if cost - new <= tol * max(cost, 1e-300):
                    costs.append(new)
                    break
            else:
                lam *= 10
    return theta, costs, lambdas


def main(points=60, noise=0.02, seed=0, verbose=True):
    """Fit the model to seeded data; returns the parameters found and the fit's figures."""
    t, y = make_data(points, noise, seed)
    theta, costs, lambdas = fit(t, y)
    err = np.abs(theta - np.array(TRUE))
    if verbose:
        print(f"Levenberg-Marquardt: y = a exp(-b t) + c, {points} points, noise {noise}")
        print(" iter   cost                  lambda")
        for k, (c, lam) in enumerate(zip(costs, lambdas)):
            print(f" {k:4d}   {c:.15f}   {lam:.0e}")
        print(f"final cost {costs[-1]:.15f}")
        for name, got, want in zip("abc", theta, TRUE):
            print(f"  {name} = {got:.6f}   (true {want})")
    return dict(theta=theta, true=np.array(TRUE), abs_error=err, costs=costs,
                lambdas=lambdas, iterations=len(lambdas))


def cli(argv=None):
    ap = argparse.ArgumentParser(prog="python -m flowc.examples.levenberg_marquardt",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=60, help="number of data points")
    ap.add_argument("--noise", type=float, default=0.02, help="standard deviation of the noise")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise")
    a = ap.parse_args(argv)
    main(points=a.points, noise=a.noise, seed=a.seed)


if __name__ == "__main__":
    cli()
