"""Numerical gradients by finite differences, and the check of symbolic against numerical."""
from __future__ import annotations

import numpy as np

from .autodiff.reverse import grad
from .function import function
from .ir.errors import GradError
from .ir.graph import Graph
from .leaves import input


def numerical_grad(f, args, method="central", eps=None):
    """Finite-difference gradient of a scalar function f(*arrays) at `args`, one array per arg.

    method="central" uses (f(x+h) - f(x-h)) / 2h (error O(h^2)); "forward" uses
    (f(x+h) - f(x)) / h (error O(h)). `f` may be any Python function of arrays, including a
    compiled flowc function.
    """
    if method not in ("central", "forward"):
        raise ValueError(f"method must be 'central' or 'forward', got {method!r}")
    xs = [np.array(a, dtype=np.float64 if np.asarray(a).dtype.kind != "f" else None, copy=True)
          for a in args]
    if eps is None:
        eps = 1e-6 if method == "central" else 1e-7
    f0 = float(f(*xs)) if method == "forward" else None
    grads = []
    for x in xs:
        g = np.zeros_like(x, dtype=np.float64)
        flat, gflat = x.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            h = eps * max(1.0, abs(float(old)))
            flat[i] = old + h
            fp = float(f(*xs))
            if method == "central":
                flat[i] = old - h
                fm = float(f(*xs))
                gflat[i] = (fp - fm) / (2 * h)
            else:
                gflat[i] = (fp - f0) / h
            flat[i] = old
        grads.append(g)
    return grads


def check_grad(fn, args, method="central", eps=None, optimize="O1"):
    """Max relative error between flowc's symbolic gradient of fn and finite differences.

    fn maps Tensors (one per arg, float64) to a scalar Tensor. The error per argument is
    max|symbolic - numerical| / max(max|symbolic|, max|numerical|, 1e-8); the largest is returned.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in args]
    with Graph():
        xs = [input(f"arg{i}", a.shape) for i, a in enumerate(arrays)]
        cost = fn(*xs)
        if cost.ndim != 0:
            raise GradError(f"check_grad needs fn to return a scalar, got shape {cost.shape}")
        gs = grad(cost, xs)
        f_cost = function(xs, cost, optimize=optimize)
        f_grad = function(xs, gs, optimize=optimize)
    sym = f_grad(*arrays)
    sym = [sym] if len(xs) == 1 else sym
    num = numerical_grad(f_cost, arrays, method=method, eps=eps)
    err = 0.0
    for s, n in zip(sym, num):
        scale = max(np.max(np.abs(s), initial=0.0), np.max(np.abs(n), initial=0.0), 1e-8)
        err = max(err, float(np.max(np.abs(s - n), initial=0.0)) / scale)
    return err
