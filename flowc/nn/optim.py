"""Optimizers as graph updates: each returns (param, new value) pairs for fc.function(updates=).

Their state (velocities, moment estimates, step count) lives in params named after the
parameter they serve (`w.velocity`, `w.adam_m`, ...), so it shows in the rendered update
cluster and is saved with the other parameters. Conventions follow PyTorch's optimizers.
"""
from __future__ import annotations

import functools

import numpy as np

from ..autodiff.reverse import grad
from ..ir.errors import FlowcError
from ..ir.scope import scope
from ..ir.tensor import Tensor
from ..leaves import param
from ..ops import api as F


def _scoped(fn):
    """Run an optimizer inside fc.scope(its name), so pictures draw its update as one group."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with scope(fn.__name__):
            return fn(*args, **kwargs)
    return wrapper


def _grads(cost_or_grads, params):
    params = list(params)
    if isinstance(cost_or_grads, Tensor):
        return params, grad(cost_or_grads, params)
    grads = list(cost_or_grads)
    if len(grads) != len(params):
        raise FlowcError(f"got {len(grads)} gradients for {len(params)} params")
    return params, grads


def _state(p, what, fill=0.0):
    return param(f"{p.name or f'%{p.id}'}.{what}", np.full(p.type.shape, fill, dtype=p.dtype),
                 graph=p.graph)


@_scoped
def sgd(cost_or_grads, params, lr=0.01):
    """Plain gradient descent: p <- p - lr * g."""
    params, grads = _grads(cost_or_grads, params)
    return [(p, p - lr * g) for p, g in zip(params, grads)]


@_scoped
def momentum(cost_or_grads, params, lr=0.01, mu=0.9, nesterov=False):
    """Heavy-ball momentum: v <- mu*v + g; p <- p - lr*v (Nesterov: p - lr*(g + mu*v))."""
    params, grads = _grads(cost_or_grads, params)
    out = []
    for p, g in zip(params, grads):
        v = _state(p, "velocity")
        v_new = mu * v + g
        step = g + mu * v_new if nesterov else v_new
        out += [(v, v_new), (p, p - lr * step)]
    return out


@_scoped
def adagrad(cost_or_grads, params, lr=0.01, eps=1e-10):
    """Adagrad: s <- s + g**2; p <- p - lr * g / (sqrt(s) + eps)."""
    params, grads = _grads(cost_or_grads, params)
    out = []
    for p, g in zip(params, grads):
        s = _state(p, "sum_sq")
        s_new = s + F.square(g)
        out += [(s, s_new), (p, p - lr * g / (F.sqrt(s_new) + eps))]
    return out


@_scoped
def rmsprop(cost_or_grads, params, lr=0.001, rho=0.99, eps=1e-8):
    """RMSProp: s <- rho*s + (1-rho)*g**2; p <- p - lr * g / (sqrt(s) + eps)."""
    params, grads = _grads(cost_or_grads, params)
    out = []
    for p, g in zip(params, grads):
        s = _state(p, "mean_sq")
        s_new = rho * s + (1 - rho) * F.square(g)
        out += [(s, s_new), (p, p - lr * g / (F.sqrt(s_new) + eps))]
    return out


@_scoped
def adam(cost_or_grads, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam with bias correction: m, v moment estimates and a shared step count t."""
    params, grads = _grads(cost_or_grads, params)
    if not params:
        return []
    t = param("adam.t", np.array(0.0, dtype=params[0].dtype), graph=params[0].graph)
    t_new = t + 1.0
    out = [(t, t_new)]
    c1 = 1.0 - F.pow(beta1, t_new)
    c2 = 1.0 - F.pow(beta2, t_new)
    for p, g in zip(params, grads):
        m, v = _state(p, "adam_m"), _state(p, "adam_v")
        m_new = beta1 * m + (1 - beta1) * g
        v_new = beta2 * v + (1 - beta2) * F.square(g)
        step = lr * (m_new / c1) / (F.sqrt(v_new / c2) + eps)
        out += [(m, m_new), (v, v_new), (p, p - step)]
    return out
