"""prod's derivatives where its operand has zeros: gradient, jvp, jacobians (the batching
rules) and hessian against a brute-force NumPy reference, at every level, calls 1 to 3."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import flowc as fc

LEVELS = ["O0", "O1", "O2"]
# (shape, axis, keepdims)
CASES = [((), None, False), ((4,), None, False), ((2, 3), 1, False), ((3, 2), 0, True), ((2, 3, 2), (0, 2), False),
         ((2, 3, 2), -1, True), ((2, 3), None, True)]


def _draws(shape, dtype, seed):
    """Three call inputs: one zero per group, two zeros per group or a whole slice of zeros,
    and no zeros (the common case must stay right too)."""
    rng = np.random.default_rng(seed)
    base = [rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape) for _ in range(3)]
    a, b, c = (x.copy() for x in base)
    a.flat[0] = 0.0
    if a.ndim > 1:
        a[..., -1] = 0.0
    b.flat[:2] = 0.0
    if b.ndim:
        b[..., 0] = 0.0
    return [x.astype(dtype) for x in (a, b, c)]


def _groups(shape, axis):
    """Flat indices of x grouped by reduction output (the elements each product multiplies)."""
    nd = len(shape)
    axes = set(range(nd)) if axis is None else {a % nd for a in np.atleast_1d(axis)}
    groups = {}
    for idx in np.ndindex(*shape):
        key = tuple(i for d, i in enumerate(idx) if d not in axes)
        groups.setdefault(key, []).append(np.ravel_multi_index(idx, shape) if shape else 0)
    return list(groups.values())


def _reference(x, r, t, axis):
    """(d sum(prod(x)*r) / dx, jvp of prod with tangent t, hessian of sum(prod(x)*r)), by
    multiplying out the products of all-but-one and all-but-two elements."""
    x64, flat = x.astype(np.float64), x.astype(np.float64).reshape(-1)
    tf = t.astype(np.float64).reshape(-1)
    rf = r.astype(np.float64).reshape(-1)
    n = flat.size
    grad, jvp, hess = np.zeros(n), np.zeros(len(_groups(x.shape, axis))), np.zeros((n, n))
    for g, members in enumerate(_groups(x.shape, axis)):
        for i in members:
            others = np.prod([flat[k] for k in members if k != i])
            grad[i] = rf[g] * others
            jvp[g] += tf[i] * others
            for j in members:
                if j != i:
                    hess[i, j] = rf[g] * np.prod([flat[k] for k in members if k not in (i, j)])
    return grad.reshape(x.shape), jvp, hess.reshape(x.shape + x.shape), x64


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape,axis,keepdims", CASES)
def test_prod_grad_jvp_hessian_at_zeros(shape, axis, keepdims, dtype, level):
    with fc.Graph():
        x = fc.input("x", shape, dtype=dtype)
        y = fc.prod(x, axis=axis, keepdims=keepdims)
        r = fc.input("r", y.shape, dtype=dtype)
        t = fc.input("t", shape, dtype=dtype)
        cost = fc.sum(y * r)
        g = fc.grad(cost, x)
        # grad of grad: H @ w, through prod's vjp rule differentiated again
        w = fc.constant(np.linspace(-1, 1, int(np.prod(shape))).reshape(shape).astype(dtype))
        hw = fc.grad(fc.sum(g * w), x)
        f = fc.function([x, r, t], [g, fc.jvp(y, x, t), fc.hessian(cost, x), hw],
                        optimize=level)
        rng = np.random.default_rng(1)
        for call, xv in enumerate(_draws(shape, dtype, 0)):
            rv = rng.uniform(0.5, 1.5, y.shape).astype(dtype)
            tv = rng.uniform(-1, 1, shape).astype(dtype)
            got_g, got_j, got_h, got_hw = f(xv, rv, tv)
            ref_g, ref_j, ref_h, _ = _reference(xv, rv, tv, axis)
            what = f"{level} call {call + 1}"
            assert got_g.dtype == dtype and got_h.dtype == dtype
            assert (got_g.shape, got_j.shape, got_h.shape, got_hw.shape) == (
                shape, y.shape, shape + shape, shape), what
            np.testing.assert_allclose(got_g, ref_g, **_tol(dtype), err_msg=f"grad, {what}")
            np.testing.assert_allclose(got_j.reshape(-1), ref_j, **_tol(dtype),
                                       err_msg=f"jvp, {what}")
            np.testing.assert_allclose(got_h, ref_h, **_tol(dtype), err_msg=f"hessian, {what}")
            n = xv.size
            ref_hw = (ref_h.reshape(n, n) @ w.node["value"].reshape(-1).astype(np.float64))
            np.testing.assert_allclose(got_hw.reshape(-1), ref_hw, **_tol(dtype),
                                       err_msg=f"grad of grad, {what}")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_prod_jacobian_at_zeros_batches_the_rules(mode, level):
    # jacobian batches prod's jvp (fwd) or vjp (rev) rule: the batching of prod_others.
    shape, axis = (2, 3), 1
    with fc.Graph():
        x = fc.input("x", shape)
        y = fc.prod(x, axis=axis)
        f = fc.function([x], fc.jacobian(y, x, mode=mode), optimize=level)
        for call, xv in enumerate(_draws(shape, "float64", 4)):
            ref = np.zeros((2,) + shape)
            for i, j in itertools.product(range(2), range(3)):
                ref[i, i, j] = np.prod(np.delete(xv[i], j))
            np.testing.assert_allclose(f(xv), ref, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{mode} {level} call {call + 1}")


@pytest.mark.parametrize("level", LEVELS)
def test_the_issue_example(level):
    with fc.Graph():
        x = fc.input("x", (3,))
        y = fc.prod(x)
        f = fc.function([x], [fc.jvp(y, x, fc.ones_like(x)), fc.grad(y, x)], optimize=level)
        for _ in range(3):
            j, g = f(np.array([0.0, 2.0, 3.0]))
            assert float(j) == 6.0 and g.tolist() == [6.0, 0.0, 0.0]


def test_prod_others_kernel_falls_back_where_the_product_overflows():
    # P = inf here, so P / x would say inf where the others multiply to 1.
    from flowc_runtime.cpu.kernels import KERNELS
    got = KERNELS["prod_others"].fn(np.array([1e200, 1e200, 1e-200]), axis=(0,))
    assert got.tolist() == [1.0, 1.0, np.inf]
    got = KERNELS["prod_others"].fn(np.array([[2.0, 0.0, 3.0], [2.0, 4.0, 3.0]]), axis=(1,))
    assert got.tolist() == [[0.0, 6.0, 0.0], [12.0, 6.0, 8.0]]
