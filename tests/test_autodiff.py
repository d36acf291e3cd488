"""Reverse-mode autodiff: shared subexpressions, broadcasting, disconnected inputs, higher order."""
import numpy as np
import pytest

import flowc as fc


def run(inputs, outputs, *args):
    return fc.function(inputs, outputs)(*args)


def test_shared_subexpression_counts_both_ports():
    x = fc.input("x", (3,))
    g = fc.grad(fc.sum(x * x), x)
    v = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(run([x], g, v), 2 * v)


def test_broadcast_operands_get_summed_cotangents():
    x = fc.input("x", (None, 4))
    b = fc.param("b", np.zeros(4))
    c = fc.param("c", 0.0)
    cost = fc.sum((x + b + c) ** 2)
    gb, gc = fc.grad(cost, [b, c])
    X = np.arange(8.0).reshape(2, 4)
    out_b, out_c = run([x], [gb, gc], X)
    np.testing.assert_allclose(out_b, (2 * X).sum(0))
    np.testing.assert_allclose(out_c, (2 * X).sum())
    assert gb.shape == (4,) and gc.shape == ()


def test_list_in_list_out_and_single_in_single_out():
    w = fc.param("w", np.ones(2))
    cost = fc.sum(w * 3.0)
    assert isinstance(fc.grad(cost, w), fc.Tensor)
    gs = fc.grad(cost, [w])
    assert isinstance(gs, list) and len(gs) == 1


def test_disconnected_input_gives_zeros_or_a_named_error():
    x = fc.input("x", (2,))
    unused = fc.param("unused", np.ones(3))
    cost = fc.sum(x)
    g = fc.grad(cost, unused)
    np.testing.assert_array_equal(run([x], g, np.ones(2)), np.zeros(3))
    with pytest.raises(fc.GradError, match="unused"):
        fc.grad(cost, unused, disconnected="raise")


def test_non_scalar_cost_is_a_clear_error():
    x = fc.input("x", (3,))
    with pytest.raises(fc.GradError, match="scalar cost"):
        fc.grad(x * 2, x)


def test_integer_wrt_is_a_clear_error():
    i = fc.input("i", (3,), dtype="int64")
    x = fc.input("x", (3,))
    with pytest.raises(fc.GradError, match="floating"):
        fc.grad(fc.sum(x * i), i)


def test_gradient_through_non_differentiable_op_is_zero():
    x = fc.input("x", (4,))
    cost = fc.sum(fc.cast(x > 0, "float64") * 5.0)
    np.testing.assert_array_equal(run([x], fc.grad(cost, x), np.arange(4.0)), np.zeros(4))


@pytest.mark.parametrize("name, build, d2", [
    ("cube", lambda x: x ** 3, lambda v: 6 * v),
    ("tanh", fc.tanh, lambda v: -2 * np.tanh(v) * (1 - np.tanh(v) ** 2)),
    ("sigmoid", fc.sigmoid,
     lambda v: (s := 1 / (1 + np.exp(-v))) * (1 - s) * (1 - 2 * s)),
])
def test_second_derivatives(name, build, d2):
    x = fc.input("x", (5,))
    g = fc.grad(fc.sum(build(x)), x)          # elementwise first derivative
    gg = fc.grad(fc.sum(g), x)                # elementwise second derivative
    v = np.linspace(-1.5, 1.5, 5)
    np.testing.assert_allclose(run([x], gg, v), d2(v), rtol=1e-10, atol=1e-12)


def test_backward_nodes_are_marked_with_phase_and_origin():
    x = fc.input("x", (3,))
    y = fc.tanh(x)
    cost = fc.sum(y)
    g = fc.grad(cost, x)
    G = x.graph.nx
    back = [n for n, d in G.nodes(data=True) if d["phase"] == "backward"]
    assert back and g.id in back
    assert all("origin" in G.nodes[n] for n in back)
    assert G.nodes[g.id]["grad_of"] == (cost.id, x.id)
    # Every backward node is used: grad leaves no dead nodes behind.
    assert all(G.out_degree(n) > 0 or n == g.id for n in back)


def test_logistic_regression_gradient_matches_numpy():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((20, 5)), rng.integers(0, 2, 20).astype(float)
    W0 = rng.standard_normal(5)
    x, y = fc.input("x", (None, 5)), fc.input("y", (None,))
    w, b = fc.param("w", W0), fc.param("b", 0.3)
    p = fc.sigmoid(x @ w + b)
    cost = fc.mean(-y * fc.log(p) - (1 - y) * fc.log(1 - p)) + 0.01 * fc.sum(w ** 2)
    gw, gb = run([x, y], fc.grad(cost, [w, b]), X, Y)
    P = 1 / (1 + np.exp(-(X @ W0 + 0.3)))
    np.testing.assert_allclose(gw, X.T @ (P - Y) / 20 + 0.02 * W0, rtol=1e-12)
    np.testing.assert_allclose(gb, np.mean(P - Y), rtol=1e-12)


@pytest.mark.parametrize("method", ["central", "forward"])
def test_check_grad_agrees_for_a_smooth_function(method):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 3))
    err = fc.check_grad(lambda a, v: fc.sum(fc.tanh(a @ v) ** 2), [A, rng.standard_normal(3)],
                        method=method)
    assert err < (1e-7 if method == "central" else 1e-4)


def test_numerical_grad_central_is_more_accurate_than_forward():
    f = lambda v: float(np.sum(v ** 2))  # noqa: E731
    (num,) = fc.numerical_grad(f, [np.array([1.0, 2.0])])
    np.testing.assert_allclose(num, [2.0, 4.0], rtol=1e-7)
    (fwd,) = fc.numerical_grad(f, [np.array([1.0, 2.0])], method="forward")
    assert np.max(np.abs(fwd - [2.0, 4.0])) > np.max(np.abs(num - [2.0, 4.0]))


UNARY_REF = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
             "sqrt": np.sqrt, "square": np.square, "abs": np.abs, "tanh": np.tanh,
             "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, 0),
             "softplus": lambda v: np.log1p(np.exp(v)), "sin": np.sin, "cos": np.cos}


@pytest.mark.parametrize("level", ["O0", "O1", "O2"])
@pytest.mark.parametrize("name", sorted(UNARY_REF))
def test_scalar_inputs_value_and_second_derivative(name, level):
    # 0-d arrays make NumPy ufuncs return scalars; every kernel must still run on them.
    y = fc.scalar("y")
    g = fc.grad(getattr(fc, name)(y), y)
    val, d1, d2 = fc.function([y], [getattr(fc, name)(y), g, fc.grad(g, y)], optimize=level)(0.7)
    ref = UNARY_REF[name]
    np.testing.assert_allclose(val, ref(0.7), rtol=1e-12)
    np.testing.assert_allclose(d1, fc.numerical_grad(ref, 0.7), rtol=1e-6)
    np.testing.assert_allclose(d2, fc.numerical_grad(lambda v: fc.numerical_grad(ref, v), 0.7),
                               rtol=1e-3)


def test_numerical_grad_and_check_grad_take_one_array():
    v = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = fc.numerical_grad(lambda a: np.sum(a ** 3), v)
    assert isinstance(g, np.ndarray) and g.shape == v.shape
    np.testing.assert_allclose(g, 3 * v ** 2, rtol=1e-7)
    assert fc.check_grad(lambda t: fc.sum(fc.tanh(t)), v) < 1e-6
