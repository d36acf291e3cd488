"""A softmax MLP (64-64-10, tanh) on scikit-learn's bundled digits set (1797 8x8 images).

Cross-entropy of log_softmax against one-hot labels, full-batch gradient descent with
momentum (fc.optim.momentum: parameter updates); scored on a held-out split:

    python -m flowc.examples.digits_mlp [--steps 300] [--hidden 64] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import flowc as fc


def load(seed=0, test_size=0.25):
    """Pixels scaled to [0, 1], one-hot labels, seeded stratified split: (Xtr, Ytr, Xte, Yte)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=test_size, random_state=seed,
                                          stratify=y)
    return Xtr, np.eye(10)[ytr], Xte, np.eye(10)[yte]


def main(steps=300, hidden=64, seed=0, lr=0.5, momentum=0.9, verbose=True):
    """Train, then return the train/test cost and accuracy."""
    Xtr, Ytr, Xte, Yte = load(seed)
    rng = np.random.default_rng(seed)
    n_in, n_out = Xtr.shape[1], Ytr.shape[1]
    with fc.Graph():
        x = fc.input("x", shape=(None, n_in))
        y = fc.input("y", shape=(None, n_out))          # one-hot labels
        W1 = fc.param("W1", rng.standard_normal((n_in, hidden)) / np.sqrt(n_in))
        b1 = fc.param("b1", np.zeros(hidden))
        W2 = fc.param("W2", rng.standard_normal((hidden, n_out)) / np.sqrt(hidden))
        b2 = fc.param("b2", np.zeros(n_out))
        params = [W1, b1, W2, b2]
        h = fc.tanh(x @ W1 + b1)
        logits = h @ W2 + b2
        cost = -fc.mean(fc.sum(y * fc.log_softmax(logits, axis=1), axis=1))
        # Heavy-ball momentum as parameter updates (velocities are params too).
        updates = fc.optim.momentum(cost, params, lr=lr, mu=momentum)
        train = fc.function([x, y], cost, updates=updates)
        evaluate = fc.function([x, y], [cost, fc.argmax(logits, axis=1)])
        start = time.perf_counter()
        for _ in range(steps):
            train(Xtr, Ytr)
        seconds = time.perf_counter() - start
        train_cost, train_pred = evaluate(Xtr, Ytr)
        test_cost, test_pred = evaluate(Xte, Yte)
    figures = dict(train_cost=float(train_cost), test_cost=float(test_cost),
                   train_accuracy=float(np.mean(train_pred == Ytr.argmax(1))),
                   test_accuracy=float(np.mean(test_pred == Yte.argmax(1))),
                   n_train=len(Ytr), n_test=len(Yte), steps=steps, seconds=seconds)
    if verbose:
        print(f"digits MLP {n_in}-{hidden}-{n_out}: {len(Ytr)} train / {len(Yte)} test images, "
              f"{steps} steps ({seconds:.2f} s)")
        print(f"train cost {figures['train_cost']:.4f}, accuracy {figures['train_accuracy']:.4f}")
        print(f"test  cost {figures['test_cost']:.4f}, accuracy {figures['test_accuracy']:.4f}")
    return figures


def cli(argv=None):
    ap = argparse.ArgumentParser(prog="python -m flowc.examples.digits_mlp", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="gradient steps (default 300)")
    ap.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split and the weights")
    a = ap.parse_args(argv)
    main(steps=a.steps, hidden=a.hidden, seed=a.seed)


if __name__ == "__main__":
    cli()
