"""flowc.theano runs old Theano code: the tutorial's logistic regression and the common API."""
import os
import runpy

import numpy as np
import pytest

import flowc as fc
import flowc.theano as theano
from flowc.theano import tensor as T

SCRIPTS = os.path.join(os.path.dirname(__file__), "theano_scripts")


def native_logreg(D, w0, steps):
    x, y = fc.input("x", (None, 784)), fc.input("y", (None,))
    w, b = fc.param("w", w0), fc.param("b", 0.0)
    p = fc.sigmoid(x @ w + b)
    cost = fc.mean(-y * fc.log(p) - (1 - y) * fc.log(1 - p)) + 0.01 * fc.sum(w ** 2)
    gw, gb = fc.grad(cost, [w, b])
    train = fc.function([x, y], p > 0.5, updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)])
    for _ in range(steps):
        train(*D)
    return w.get_value(), b.get_value()


def test_tutorial_script_runs_with_only_its_imports_changed_and_matches_native(capsys):
    np.random.seed(1234)
    env = runpy.run_path(os.path.join(SCRIPTS, "logistic_regression.py"), run_name="__main__")
    D, predict = env["D"], env["predict"]
    assert (predict(D[0]) == D[1]).mean() == 1.0
    assert "Final model:" in capsys.readouterr().out
    # The same data, the same initial weights, the native API: the same parameters.
    np.random.seed(1234)
    D2 = (np.random.randn(400, 784), np.random.randint(size=400, low=0, high=2))
    w0 = np.random.randn(784)
    w, b = native_logreg(D2, w0, 10000)
    np.testing.assert_allclose(env["w"].get_value(), w, rtol=1e-6, atol=1e-9)
    assert float(env["b"].get_value()) == pytest.approx(float(b), rel=1e-6, abs=1e-9)


def test_typed_constructors_and_floatX():
    assert T.dmatrix("a").dtype == "float64" and T.fvector("v").dtype == "float32"
    assert T.iscalar("i").dtype == "int32" and T.lvector().dtype == "int64"
    assert T.matrix().shape == (None, None) and T.tensor3().ndim == 3
    old = theano.config.floatX
    try:
        theano.config.floatX = "float32"
        assert T.vector("x").dtype == "float32"
    finally:
        theano.config.floatX = old


def test_function_givens_switch_and_list_outputs():
    x = T.dvector("x")
    s = theano.shared(np.array([1.0, -2.0, 3.0]), name="s")
    out = T.switch(T.gt(x, 0), x, 0.0 * x)
    f = theano.function([x], [out])
    res = f(np.array([-1.0, 2.0, 3.0]))
    assert isinstance(res, list) and len(res) == 1  # a list of outputs gives a list
    np.testing.assert_array_equal(res[0], [0.0, 2.0, 3.0])
    g = theano.function([], T.maximum(out, 1.0), givens={x: s})
    np.testing.assert_array_equal(g(), [1.0, 1.0, 3.0])


def test_nnet_helpers_match_numpy():
    z = T.dmatrix("z")
    t = T.dmatrix("t")
    idx = T.lvector("idx")
    sm = T.nnet.softmax(z)
    f = theano.function([z, t, idx], [T.nnet.sigmoid(z), T.nnet.relu(z), sm,
                                      T.nnet.binary_crossentropy(T.nnet.sigmoid(z), t),
                                      T.nnet.categorical_crossentropy(sm, t),
                                      T.nnet.categorical_crossentropy(sm, idx)])
    Z = np.array([[0.5, -1.0], [2.0, 0.0]])
    Tt = np.array([[1.0, 0.0], [0.0, 1.0]])
    sig, relu, soft, bce, cce, cce_i = f(Z, Tt, np.array([0, 1]))
    e = np.exp(Z - Z.max(1, keepdims=True))
    S = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-Z)))
    np.testing.assert_allclose(relu, np.maximum(Z, 0))
    np.testing.assert_allclose(soft, S)
    P = 1 / (1 + np.exp(-Z))
    np.testing.assert_allclose(bce, -(Tt * np.log(P) + (1 - Tt) * np.log(1 - P)))
    np.testing.assert_allclose(cce, -np.log(S[[0, 1], [0, 1]]))
    np.testing.assert_allclose(cce_i, cce)


def test_more_nnet_activations_match_their_definitions():
    z = T.dvector("z")
    f = theano.function([z], [T.nnet.relu(z, 0.1), T.nnet.hard_sigmoid(z), T.nnet.elu(z, 0.5),
                              T.nnet.selu(z), T.nnet.softsign(z), T.nnet.logsoftmax(z),
                              T.nnet.ultra_fast_sigmoid(z)])
    Z = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    leaky, hard, elu, selu, soft, logsm, fast = f(Z)
    np.testing.assert_allclose(leaky, np.where(Z > 0, Z, 0.1 * Z))
    np.testing.assert_allclose(hard, np.clip(0.2 * Z + 0.5, 0, 1))
    np.testing.assert_allclose(elu, np.where(Z > 0, Z, 0.5 * np.expm1(Z)))
    a, lam = 1.6732632423543772, 1.0507009873554805
    np.testing.assert_allclose(selu, lam * np.where(Z > 0, Z, a * np.expm1(Z)))
    np.testing.assert_allclose(soft, Z / (1 + np.abs(Z)))
    np.testing.assert_allclose(logsm, [Z - np.log(np.exp(Z).sum())])
    np.testing.assert_allclose(fast, 1 / (1 + np.exp(-Z)))


def test_grad_raises_on_disconnected_by_default_like_theano():
    x = T.dvector("x")
    u = theano.shared(np.ones(2), name="u")
    with pytest.raises(fc.GradError, match="u"):
        T.grad(T.sum(x), u)
    np.testing.assert_array_equal(
        theano.function([x], T.grad(T.sum(x), u, disconnected_inputs="ignore"))(np.ones(2)),
        np.zeros(2))


def test_jacobian_hessian_rop_lop():
    x = T.dvector("x")
    v = T.dvector("v")
    y = x ** 2
    f = theano.function([x, v], [T.jacobian(y, x), T.hessian(T.sum(x ** 3), x),
                                 T.Rop(y, x, v), T.Lop(y, x, v)])
    X, V = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    J, H, R, L = f(X, V)
    np.testing.assert_allclose(J, np.diag(2 * X))
    np.testing.assert_allclose(H, np.diag(6 * X))
    np.testing.assert_allclose(R, 2 * X * V)
    np.testing.assert_allclose(L, 2 * X * V)


def test_pp_and_pydotprint(tmp_path):
    x = T.dscalar("x")
    y = x ** 2 + 1.0
    assert theano.pp(y) == "((x ** 2.0) + 1.0)"
    f = theano.function([x], y)
    path = theano.printing.pydotprint(f, outfile=str(tmp_path / "f.svg"))
    assert os.path.exists(str(tmp_path / "f.dot"))
    assert path


@pytest.mark.parametrize("feature", [
    lambda: T.nnet.neighbours, lambda: T.nnet.conv3d, lambda: theano.function([], [], mode="ProfileMode"),
    lambda: T.nnet.bn, lambda: theano.sparse,
])
def test_unsupported_features_are_named(feature):
    with pytest.raises(NotImplementedError, match="Theano feature"):
        feature()


def test_tutorial_shared_variables_with_python_ints():
    # Theano's tutorial: shared(0), an iscalar increment, Python ints in, givens.
    state = theano.shared(0)
    inc = T.iscalar("inc")
    acc = theano.function([inc], state, updates=[(state, state + inc)])
    assert [int(acc(1)), int(acc(300))] == [0, 1] and state.get_value() == 301
    state.set_value(-1)
    assert int(acc(3)) == -1 and state.get_value() == 2
    foo = T.scalar(dtype=state.dtype)
    skip = theano.function([inc, foo], state * 2 + inc, givens=[(state, foo)])
    assert skip(1, 3) == 7 and state.get_value() == 2
    with pytest.raises(fc.InputError, match="int32"):
        acc(1.5)                         # a value that does not fit is still refused
    with pytest.raises(fc.InputError, match="int32"):
        acc(np.int64(1))                 # NumPy values keep the safe-casting rule


def test_plural_constructors_and_in_defaults():
    a, b = T.dmatrices("a", "b")
    f = theano.function([a, b], [a - b, abs(a - b), (a - b) ** 2])
    A, B = np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[0.0, 1.0], [2.0, 3.0]])
    for got, ref in zip(f([[1, 1], [1, 1]], [[0, 1], [2, 3]]), [A - B, abs(A - B), (A - B) ** 2]):
        np.testing.assert_array_equal(got, ref)
    assert [t.dtype for t in T.fvectors("u", "v")] == ["float32", "float32"]
    assert [t.dtype for t in T.iscalars(2)] == ["int32", "int32"] and T.scalars("s").ndim == 0
    x, y, w = T.dscalars("x", "y", "w")
    g = theano.function([x, theano.In(y, value=1), theano.In(w, value=2, name="w_by_name")],
                        (x + y) * w)
    assert [float(g(33)), float(g(33, 2)), float(g(33, 0, 1)), float(g(33, w_by_name=1, y=0))] \
        == [68.0, 70.0, 33.0, 33.0]


def test_submodule_imports_and_hasattr_are_plain_python():
    assert not hasattr(T, "__wrapped__")     # dunder lookups are not Theano features
    # shared_randomstreams is covered now (tests/test_random.py); a missing submodule still
    # raises the plain ModuleNotFoundError naming it.
    with pytest.raises(ModuleNotFoundError, match="downsample"):
        __import__("flowc.theano.tensor.signal.downsample")
    assert __import__("flowc.theano.tensor.shared_randomstreams").theano.tensor \
        .shared_randomstreams.RandomStreams
