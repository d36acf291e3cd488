"""Numerical gradients by finite differences, and the check of symbolic against numerical."""
from __future__ import annotations

import zlib

import numpy as np

from .autodiff.forward import jvp
from .autodiff.jacobian import hessian, jacobian
from .autodiff.reverse import grad
from .function import function
from .ir.errors import ArgumentError, GradError
from .ir.graph import Graph
from .leaves import input


def numerical_grad(f, args, method="central", eps=None):
    """Finite-difference gradient of a scalar function f(*arrays) at `args`, one array per arg.

    `args` is a list of arrays (a list of gradients comes back) or one array (one comes back).

    method="central" uses (f(x+h) - f(x-h)) / 2h (error O(h^2)); "forward" uses
    (f(x+h) - f(x)) / h (error O(h)). `f` may be any Python function of arrays, including a
    compiled flowc function.
    """
    if method not in ("central", "forward"):
        raise ArgumentError(f"method must be 'central' or 'forward', got {method!r}")
    single = _is_single(args)
    xs = [np.array(a, dtype=np.float64 if np.asarray(a).dtype.kind != "f" else None, copy=True)
          for a in ([args] if single else args)]
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
    return grads[0] if single else grads


def _is_single(args):
    """True when `args` is one array or number rather than a list of them."""
    return isinstance(args, (np.ndarray, np.generic, int, float))


def check_grad(fn, args, method="central", eps=None, optimize="O1", modes=("rev", "fwd"),
               order=1):
    """Max relative error between flowc's symbolic derivatives of fn and finite differences.

    fn maps Tensors (one per arg, float64) to a scalar Tensor. `modes` says what is checked:
    "rev", the reverse-mode gradient (fc.grad) of every arg; "fwd", forward-mode directional
    derivatives (fc.jvp) along three seeded random directions. `order=2` also checks second
    derivatives (as JAX's check_grads, order n checks every order up to n): "rev" the full
    Hessian (fc.hessian, and fc.jacobian of the gradient for the blocks between two args),
    "fwd" Hessian-vector products (fc.jvp of the gradient); the numbers they are compared
    with are finite differences of the compiled gradient. The error of one check is
    max|symbolic - numerical| / max(max|symbolic|, max|numerical|, 1e-8); the largest over
    all checks is returned.
    """
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if not modes or set(modes) - {"rev", "fwd"}:
        raise ArgumentError(f"modes must be a non-empty tuple of 'rev' and 'fwd', got {modes!r}")
    if order not in (1, 2):
        raise ArgumentError(f"order must be 1 or 2, got {order!r}")
    arrays = [np.asarray(a, dtype=np.float64) for a in ([args] if _is_single(args) else args)]
    with Graph():
        xs = [input(f"arg{i}", a.shape) for i, a in enumerate(arrays)]
        cost = fn(*xs)
        if cost.ndim != 0:
            raise GradError(f"check_grad needs fn to return a scalar, got shape {cost.type.shape}")
        gs = grad(cost, xs)
        f_cost = function(xs, cost, optimize=optimize)
        f_grad = function(xs, gs, optimize=optimize, single_output=False)
        ts = [input(f"tangent{i}", a.shape) for i, a in enumerate(arrays)]
        f_jvp = function(xs + ts, jvp(cost, xs, ts), optimize=optimize) \
            if "fwd" in modes else None
        if order == 2:
            f_hess = function(xs, _hessian_blocks(cost, gs, xs), optimize=optimize,
                              single_output=False) if "rev" in modes else None
            f_hvp = function(xs + ts, jvp(gs, xs, ts), optimize=optimize, single_output=False) \
                if "fwd" in modes else None
    err = 0.0
    if "rev" in modes:
        sym = f_grad(*arrays)
        num = numerical_grad(f_cost, arrays, method=method, eps=eps)
        err = max([err] + [_rel_error(s, n) for s, n in zip(sym, num)])
    directions = _directions(arrays) if "fwd" in modes else []
    for tan in directions:
        num = _directional(lambda *a: np.float64(f_cost(*a)), arrays, tan, method, eps)
        err = max(err, _rel_error(f_jvp(*arrays, *tan), num))
    if order == 1:
        return err
    k = len(arrays)
    if "rev" in modes:
        blocks = f_hess(*arrays)
        for i in range(k):
            for j in range(k):
                num = _jacobian_fd(lambda *a: f_grad(*a)[i], arrays, j, method, eps)
                err = max(err, _rel_error(blocks[i * k + j], num))
    for tan in directions:
        sym = f_hvp(*arrays, *tan)
        num = _directional(lambda *a: np.concatenate([g.reshape(-1) for g in f_grad(*a)]),
                           arrays, tan, method, eps)
        err = max(err, _rel_error(np.concatenate([s.reshape(-1) for s in sym]), num))
    return err


def _hessian_blocks(cost, gs, xs):
    """Every block d2 cost / dx_i dx_j, row-major: fc.hessian on the diagonal."""
    diag = hessian(cost, xs)
    return [diag[i] if i == j else jacobian(g, x, mode="fwd")
            for i, g in enumerate(gs) for j, x in enumerate(xs)]


def _rel_error(sym, num):
    sym, num = np.asarray(sym, dtype=np.float64), np.asarray(num, dtype=np.float64)
    scale = max(np.max(np.abs(sym), initial=0.0), np.max(np.abs(num), initial=0.0), 1e-8)
    return float(np.max(np.abs(sym - num), initial=0.0)) / scale


def _directions(arrays, count=3):
    """Seeded random tangents (one array per arg, largest entry 1), fixed by the shapes."""
    seed = zlib.crc32(repr([a.shape for a in arrays]).encode())
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        tan = [rng.standard_normal(a.shape) for a in arrays]
        top = max(np.max(np.abs(t), initial=0.0) for t in tan)
        out.append([t / top if top > 0 else t for t in tan])
    return out


def _step(arrays, eps, method):
    if eps is None:
        eps = 1e-6 if method == "central" else 1e-7
    return eps * max([1.0] + [float(np.max(np.abs(a), initial=0.0)) for a in arrays])


def _directional(f, arrays, tan, method, eps):
    """(f(x + h t) - f(x - h t)) / 2h, or the forward difference, for array-valued f."""
    h = _step(arrays, eps, method)
    plus = np.asarray(f(*[a + h * t for a, t in zip(arrays, tan)]), dtype=np.float64)
    if method == "central":
        minus = np.asarray(f(*[a - h * t for a, t in zip(arrays, tan)]), dtype=np.float64)
        return (plus - minus) / (2 * h)
    return (plus - np.asarray(f(*arrays), dtype=np.float64)) / h


def _jacobian_fd(f, arrays, j, method, eps):
    """d f / d arrays[j] by differences, shaped f's shape + arrays[j].shape."""
    x = arrays[j]
    cols = []
    for e in np.eye(x.size).reshape((x.size,) + x.shape):
        tan = [e if i == j else np.zeros_like(a) for i, a in enumerate(arrays)]
        cols.append(_directional(f, arrays, tan, method, eps))
    fshape = np.shape(cols[0]) if cols else ()
    return np.moveaxis(np.array(cols), 0, -1).reshape(fshape + x.shape)
