"""fc.var / fc.std (and Tensor.var/std, Theano's T.var/T.std) against NumPy's np.var and
np.std: axes, ddof, keepdims, sizes known only at run time, an offset mean far above the
spread (two passes, no cancellation), gradients against central differences."""
import numpy as np
import pytest

import flowc as fc
import flowc.theano.tensor as T

r = np.random.default_rng(11)


@pytest.mark.parametrize("axis", [None, 0, (1, 2), -1])
@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("known", [True, False])
def test_var_and_std_equal_numpy(axis, ddof, keepdims, known):
    x = fc.input("x", (3, 4, 5) if known else (None, 4, None))
    f = fc.function([x], [fc.var(x, axis, ddof, keepdims), fc.std(x, axis, ddof, keepdims),
                          x.var(axis, keepdims, ddof)])
    for shape in ((3, 4, 5), (2, 4, 6)) if not known else ((3, 4, 5),) * 2:
        xv = r.standard_normal(shape)
        v, s, tv = f(xv)
        np.testing.assert_allclose(v, np.var(xv, axis, ddof=ddof, keepdims=keepdims),
                                   rtol=1e-12)
        np.testing.assert_allclose(s, np.std(xv, axis, ddof=ddof, keepdims=keepdims),
                                   rtol=1e-12)
        np.testing.assert_allclose(tv, v, rtol=0)


def test_a_large_mean_does_not_cancel_the_variance():
    x = fc.input("x", (1000,), "float32")
    xv = (1e4 + r.standard_normal(1000)).astype("float32")
    got = fc.function([x], fc.var(x))(xv)
    np.testing.assert_allclose(got, np.var(xv.astype(np.float64)), rtol=1e-3)


def test_gradients_against_central_differences():
    x = fc.input("x", (4, 3))
    loss = fc.sum(fc.std(x, axis=0, ddof=1) * fc.constant(np.array([1.0, -2.0, 0.5])))
    f = fc.function([x], [loss, fc.grad(loss, x)])
    xv = r.standard_normal((4, 3))
    _, g = f(xv)
    eps, num = 1e-6, np.zeros_like(xv)
    for i in np.ndindex(*xv.shape):
        d = np.zeros_like(xv)
        d[i] = eps
        num[i] = (f(xv + d)[0] - f(xv - d)[0]) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


def test_theano_signature_and_bad_ddof():
    x = T.matrix("x")
    f = fc.function([x], [T.var(x, 1, 1), T.std(x, axis=0, keepdims=True, corrected=True)])
    xv = r.standard_normal((3, 5))
    v, s = f(xv)
    np.testing.assert_allclose(v, np.var(xv, 1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(s, np.std(xv, 0, keepdims=True), rtol=1e-12)
    with pytest.raises(fc.ArgumentError, match="var at .*test_var_std.py.*ddof must be a number"):
        fc.var(x, ddof="1")
