"""Stabilization rewrites give finite, correct values where the naive forms overflow."""
import numpy as np
import pytest

import flowc as fc


def both(ins, out, *args):
    """(unoptimized, optimized) results of the same graph."""
    return (fc.function(ins, out, optimize="O0")(*args),
            fc.function(ins, out, optimize="O1", verify=True)(*args))


def test_log_of_handwritten_sigmoid_and_its_gradient_at_minus_800():
    x = fc.input("x", (3,))
    p = 1 / (1 + fc.exp(-x))
    cost = fc.sum(fc.log(p))
    g = fc.grad(cost, x)
    X = np.array([-800.0, 0.0, 800.0])
    with np.errstate(all="ignore"):
        naive, stable = both([x], [cost, g], X)
    assert not np.isfinite(naive[0])
    np.testing.assert_allclose(stable[0], -800.0 - np.log(2.0))  # log sigmoid(-800) = -800
    np.testing.assert_allclose(stable[1], [1.0, 0.5, 0.0], atol=1e-12)  # 1 - sigmoid(x)


def test_log_one_minus_sigmoid():
    x = fc.input("x", (2,))
    out = fc.log(1 - fc.sigmoid(x))
    with np.errstate(all="ignore"):
        naive, stable = both([x], out, np.array([800.0, -3.0]))
    assert np.isneginf(naive[0])
    np.testing.assert_allclose(stable, [-800.0, -np.log1p(np.exp(-3.0))])


def test_log_softmax_with_logits_of_plus_minus_1000():
    z = fc.input("z", (None, 3))
    y = fc.input("y", (None, 3))
    loss = -fc.sum(y * fc.log(fc.softmax(z)))
    g = fc.grad(loss, z)
    Z = np.array([[1000.0, -1000.0, 0.0]])
    Y = np.array([[0.0, 1.0, 0.0]])
    with np.errstate(all="ignore"):
        naive, stable = both([z, y], [loss, g], Z, Y)
    assert not np.isfinite(naive[0])
    assert stable[0] == pytest.approx(2000.0)
    np.testing.assert_allclose(stable[1], [[1.0, -1.0, 0.0]], atol=1e-12)


def test_log_sum_exp_log1p_expm1():
    x = fc.input("x", (2,))
    with np.errstate(all="ignore"):
        naive, stable = both([x], [fc.log(fc.sum(fc.exp(x))), fc.log(1 + x * 1e-20),
                                   fc.exp(x * 1e-20) - 1], np.array([1000.0, 999.0]))
    assert not np.isfinite(naive[0])
    assert stable[0] == pytest.approx(1000.0 + np.log1p(np.exp(-1.0)))
    np.testing.assert_allclose(stable[1], [1e-17, 9.99e-18], rtol=1e-12)  # naive gives 0
    np.testing.assert_allclose(stable[2], [1e-17, 9.99e-18], rtol=1e-12)
    assert naive[1][0] == 0.0 and naive[2][0] == 0.0


def test_rules_are_listed_by_explain():
    x = fc.input("x", (2,))
    f = fc.function([x], fc.log(fc.softmax(x)))
    assert "log_softmax" in f.explain()


def test_binary_cross_entropy_needs_one_softplus_and_is_exact_at_plus_minus_1000():
    z, y = fc.input("z", (None,)), fc.input("y", (None,))
    p = fc.sigmoid(z)
    cost = fc.mean(-y * fc.log(p) - (1 - y) * fc.log(1 - p))
    g = fc.grad(cost, z)
    f = fc.function([z, y], [cost, g], optimize="O1", verify=True)
    assert "binary_cross_entropy" in f.explain()
    assert [ins.kernel for ins in f.program.instrs].count("softplus") == 1
    Z, Y = np.array([1000.0, -1000.0, 0.3, -2.0]), np.array([0.0, 1.0, 1.0, 0.0])
    c, gz = f(Z, Y)
    want = np.logaddexp(0, Z) - Y * Z  # softplus(z) - y z, exactly the cross-entropy
    assert c == pytest.approx(want.mean(), rel=1e-14)
    sig = np.array([1.0, 0.0, 1 / (1 + np.exp(-0.3)), 1 / (1 + np.exp(2.0))])
    np.testing.assert_allclose(gz, (sig - Y) / 4, atol=1e-15)


def test_shape_references_do_not_keep_forward_values_alive():
    # The logistic-regression step: after the rewrite above, the gradient's shape-fixing
    # nodes must not keep y * softplus(-z) or (1 - y) * softplus(z) computed for their
    # shapes alone (shape classes: both have the broadcast shape of y and z).
    x, y = fc.input("x", (None, 5)), fc.input("y", (None,))
    w, b = fc.param("w", np.zeros(5)), fc.param("b", 0.0)
    p = fc.sigmoid(x @ w + b)
    cost = fc.mean(-y * fc.log(p) - (1 - y) * fc.log(1 - p))
    gw, gb = fc.grad(cost, [w, b])
    f = fc.function([x, y], [cost, gw, gb], optimize="O1", verify=True)
    assert [ins.kernel for ins in f.program.instrs].count("softplus") == 1
    X = np.random.default_rng(0).standard_normal((7, 5))
    Y = (X[:, 0] > 0).astype(float)
    ref = fc.function([x, y], [cost, gw, gb], optimize="O0")
    for got, want in zip(f(X, Y), ref(X, Y)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("level", ["O0", "O1", "O2"])
def test_reductions_over_nothing_give_numpys_values(level):
    """log(sum(exp x)) over an empty axis is -inf at every level (O1 rewrites it to
    logsumexp, whose max has no identity there); softmax of nothing is nothing."""
    x = fc.input("x", (None, 0, 3))
    f = fc.function([x], [fc.log(fc.sum(fc.exp(x), axis=1)), fc.logsumexp(x, axis=None),
                          fc.softmax(x, axis=1), fc.log_softmax(x, axis=1)], optimize=level)
    X = np.zeros((2, 0, 3))
    for _ in range(3):
        with np.errstate(divide="ignore"):
            lse1, lse, sm, lsm = f(X)
        np.testing.assert_array_equal(lse1, np.full((2, 3), -np.inf))
        assert lse == -np.inf and sm.shape == lsm.shape == (2, 0, 3)
