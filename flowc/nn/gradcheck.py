"""Symbolic gradients of a loss against central finite differences, parameter by parameter."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np

from ..autodiff.reverse import grad
from ..function import function


@dataclass
class ParamCheck:
    """How one parameter's gradient compares: on `checked` of its `size` entries."""

    name: str
    shape: tuple
    size: int
    checked: int
    max_grad: float
    abs_err: float
    rel_err: float
    ok: bool


def check_params(loss, inputs, params, arrays, entries=50, tol=None, seed=0,
                 optimize="O1") -> List[ParamCheck]:
    """Compare d loss / d p with (loss(p + h) - loss(p - h)) / 2h on up to `entries` entries
    of each param (chosen with `seed`). The relative error is max|sym - num| over
    max(max|sym|, max|num|, 1e-8); `tol` defaults to 1e-5 (float64) or 1e-2 (float32).
    Parameter values are restored afterwards."""
    f_loss = function(inputs, loss, optimize=optimize)
    f_grad = function(inputs, grad(loss, list(params)), optimize=optimize, single_output=False)
    sym = f_grad(*arrays)
    rng = np.random.default_rng(seed)
    out = []
    for p, s in zip(params, sym):
        v0 = p.get_value()
        low = v0.dtype != np.float64
        eps, t = (1e-3, 1e-2) if low else (1e-6, 1e-5)
        t = tol if tol is not None else t
        k = min(v0.size, entries)
        idx = np.sort(rng.choice(v0.size, size=k, replace=False)) if k < v0.size \
            else np.arange(v0.size)
        num = np.empty(k)
        try:
            for j, i in enumerate(idx):
                x = v0.reshape(-1)[i]
                h = eps * max(1.0, abs(float(x)))
                v = v0.copy()
                v.reshape(-1)[i] = x + h
                p.set_value(v)
                fp = float(f_loss(*arrays))
                v.reshape(-1)[i] = x - h
                p.set_value(v)
                fm = float(f_loss(*arrays))
                num[j] = (fp - fm) / (2 * h)
        finally:
            p.set_value(v0)
        sel = np.asarray(s, dtype=np.float64).reshape(-1)[idx]
        err = float(np.max(np.abs(sel - num), initial=0.0))
        scale = max(float(np.max(np.abs(sel), initial=0.0)),
                    float(np.max(np.abs(num), initial=0.0)), 1e-8)
        rel = err / scale
        out.append(ParamCheck(p.name or f"%{p.id}", tuple(p.type.shape), int(v0.size), int(k),
                              float(np.max(np.abs(sel), initial=0.0)), err, rel,
                              bool(np.isfinite(rel) and rel <= t)))
    return out


def table(rows) -> str:
    """The checks as an aligned text table."""
    out = [f"{'parameter':<22} {'shape':<12} {'checked':>9} {'max|grad|':>11} "
           f"{'abs err':>10} {'rel err':>10}  result"]
    for r in rows:
        out.append(f"{r.name:<22} {str(list(r.shape)):<12} {f'{r.checked}/{r.size}':>9} "
                   f"{r.max_grad:>11.3e} {r.abs_err:>10.2e} {r.rel_err:>10.2e}  "
                   f"{'ok' if r.ok else 'FAIL'}")
    return "\n".join(out)
