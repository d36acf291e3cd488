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
