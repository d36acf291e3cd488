"""The classic Theano logistic-regression example, in flowc.

400 random samples x 784 features, random 0/1 labels, full-batch gradient descent
(learning rate 0.1, L2 penalty 0.01). Prints the cost before and after training and the
training accuracy, and draws the forward and backward graphs:

    python -m flowc.examples.logreg [--steps 10000] [--out out]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import flowc as fc

N, FEATS = 400, 784


def make_data(seed=0):
    """Random inputs (N x FEATS, standard normal) and random 0/1 labels, seeded."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, FEATS)), rng.integers(0, 2, N).astype("float64")


def build(lr=0.1, l2=0.01):
    """The model in the current default graph: returns its tensors and the training function."""
    x = fc.input("x", shape=(None, FEATS), dtype="float64")
    y = fc.input("y", shape=(None,))
    w = fc.param("w", np.zeros(FEATS))
    b = fc.param("b", 0.0)
    p = fc.sigmoid(x @ w + b)                       # probability that the label is 1
    cost = fc.mean(-y * fc.log(p) - (1 - y) * fc.log(1 - p)) + l2 * fc.sum(w ** 2)
    gw, gb = fc.grad(cost, [w, b])
    prediction = p > 0.5
    train = fc.function([x, y], [cost, prediction],
                        updates=[(w, w - lr * gw), (b, b - lr * gb)])
    evaluate = fc.function([x, y], [cost, prediction])   # no updates: parameters unchanged
    return dict(x=x, y=y, w=w, b=b, p=p, cost=cost, gw=gw, gb=gb, prediction=prediction,
                train=train, evaluate=evaluate)


def main(steps=10000, out="out", seed=0, draw=True, verbose=True):
    """Train for `steps` full-batch steps; returns costs, accuracy, timing and the files drawn."""
    X, Y = make_data(seed)
    with fc.Graph():
        m = build()
        files = []
        if draw:
            files.append(fc.render([m["cost"], m["prediction"]], f"{out}/forward.svg",
                                   stage="forward"))
            files.append(fc.render([m["cost"], m["gw"], m["gb"]], f"{out}/backward.svg",
                                   stage="backward"))
        train, evaluate = m["train"], m["evaluate"]
        cost_before = float(evaluate(X, Y)[0])
        start = time.perf_counter()
        for _ in range(steps):
            train(X, Y)     # returns the cost and predictions from *before* this step's update
        seconds = time.perf_counter() - start
        cost_after, prediction = evaluate(X, Y)
        cost_after, accuracy = float(cost_after), float(np.mean(prediction == Y))
    figures = dict(cost_before=cost_before, cost_after=cost_after, accuracy=accuracy,
                   steps=steps, seconds=seconds, files=[os.path.abspath(f) for f in files])
    if verbose:
        print(f"logistic regression: {N} samples x {FEATS} features, {steps} steps "
              f"({seconds:.2f} s)")
        print(f"cost before training: {cost_before:.6f}")
        print(f"cost after training:  {cost_after:.6f}")
        print(f"training accuracy:    {accuracy:.4f}")
        for f in figures["files"]:
            print(f"wrote {f}")
    return figures


def cli(argv=None):
    ap = argparse.ArgumentParser(prog="python -m flowc.examples.logreg", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10000, help="gradient steps (default 10000)")
    ap.add_argument("--out", default="out", help="folder for forward.svg and backward.svg")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random data")
    ap.add_argument("--no-draw", action="store_true", help="skip the pictures")
    a = ap.parse_args(argv)
    main(steps=a.steps, out=a.out, seed=a.seed, draw=not a.no_draw)


if __name__ == "__main__":
    cli()
