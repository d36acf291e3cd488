"""Logistic regression on scikit-learn's bundled breast-cancer set (569 x 30, no network).

Features are standardized with the training split's mean and deviation; the model is trained
by full-batch gradient descent and scored on the held-out split:

    python -m flowc.examples.breast_cancer [--steps 300] [--seed 0]
"""
from __future__ import annotations

import argparse

import numpy as np

import flowc as fc


def load(seed=0, test_size=0.25):
    """Standardized, seeded, stratified train/test split: (Xtr, Ytr, Xte, Yte)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, Y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, Ytr, Yte = train_test_split(X, Y.astype("float64"), test_size=test_size,
                                          random_state=seed, stratify=Y)
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    return (Xtr - mu) / sd, Ytr, (Xte - mu) / sd, Yte


def main(steps=300, seed=0, lr=0.5, l2=1e-3, verbose=True):
    """Train, then return the train/test cost and accuracy."""
    Xtr, Ytr, Xte, Yte = load(seed)
    with fc.Graph():
        x = fc.input("x", shape=(None, Xtr.shape[1]))
        y = fc.input("y", shape=(None,))
        w = fc.param("w", np.zeros(Xtr.shape[1]))
        b = fc.param("b", 0.0)
        z = x @ w + b
        # -y log sigmoid(z) - (1-y) log(1 - sigmoid(z)), written stably as softplus(z) - y z.
        cost = fc.mean(fc.softplus(z) - y * z) + l2 * fc.sum(w ** 2)
        gw, gb = fc.grad(cost, [w, b])
        train = fc.function([x, y], cost, updates=[(w, w - lr * gw), (b, b - lr * gb)])
        evaluate = fc.function([x, y], [cost, z > 0])
        for _ in range(steps):
            train(Xtr, Ytr)
        train_cost, train_pred = evaluate(Xtr, Ytr)
        test_cost, test_pred = evaluate(Xte, Yte)
    figures = dict(train_cost=float(train_cost), test_cost=float(test_cost),
                   train_accuracy=float(np.mean(train_pred == Ytr)),
                   test_accuracy=float(np.mean(test_pred == Yte)),
                   n_train=len(Ytr), n_test=len(Yte), steps=steps)
    if verbose:
        print(f"breast cancer: {len(Ytr)} train / {len(Yte)} test samples, {steps} steps")
        print(f"train cost {figures['train_cost']:.4f}, accuracy {figures['train_accuracy']:.4f}")
        print(f"test  cost {figures['test_cost']:.4f}, accuracy {figures['test_accuracy']:.4f}")
    return figures


def cli(argv=None):
    ap = argparse.ArgumentParser(prog="python -m flowc.examples.breast_cancer",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="gradient steps (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    a = ap.parse_args(argv)
    main(steps=a.steps, seed=a.seed)


if __name__ == "__main__":
    cli()
