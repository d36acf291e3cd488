"""Optimizers as graph updates, checked step by step against plain-NumPy implementations."""
import numpy as np
import pytest

import flowc as fc

A = np.array([[3.0, 1.0], [1.0, 2.0]])
B = np.array([1.0, -1.0])
W0 = np.array([0.5, -0.3])


def np_grad(w):
    return A @ w - B + 0.1 * np.sign(w) * w ** 2  # gradient of the cost below


def run_flowc(make, steps=6):
    w = fc.param("w", W0)
    cost = 0.5 * fc.sum(w * (fc.constant(A) @ w)) - fc.sum(fc.constant(B) * w) \
        + fc.sum(0.1 * fc.abs(w) * w ** 2 / 3.0)
    f = fc.function([], cost, updates=make(cost, [w]))
    out = []
    for _ in range(steps):
        f()
        out.append(w.get_value())
    return out


def run_numpy(step, steps=6):
    w, state, out = W0.copy(), {}, []
    for t in range(1, steps + 1):
        w = step(w, np_grad(w), state, t)
        out.append(w.copy())
    return out


def np_momentum(nesterov):
    def step(w, g, s, t):
        v = s["v"] = 0.9 * s.get("v", 0.0) + g
        return w - 0.1 * (g + 0.9 * v if nesterov else v)
    return step


def np_adagrad(w, g, s, t):
    s["s"] = s.get("s", 0.0) + g * g
    return w - 0.1 * g / (np.sqrt(s["s"]) + 1e-10)


def np_rmsprop(w, g, s, t):
    s["s"] = 0.99 * s.get("s", 0.0) + 0.01 * g * g
    return w - 0.01 * g / (np.sqrt(s["s"]) + 1e-8)


def np_adam(w, g, s, t):
    m = s["m"] = 0.9 * s.get("m", 0.0) + 0.1 * g
    v = s["v"] = 0.999 * s.get("v", 0.0) + 0.001 * g * g
    return w - 0.05 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)


@pytest.mark.parametrize("make, ref", [
    (lambda c, p: fc.optim.sgd(c, p, lr=0.1), lambda w, g, s, t: w - 0.1 * g),
    (lambda c, p: fc.optim.momentum(c, p, lr=0.1, mu=0.9), np_momentum(False)),
    (lambda c, p: fc.optim.momentum(c, p, lr=0.1, mu=0.9, nesterov=True), np_momentum(True)),
    (lambda c, p: fc.optim.adagrad(c, p, lr=0.1), np_adagrad),
    (lambda c, p: fc.optim.rmsprop(c, p, lr=0.01), np_rmsprop),
    (lambda c, p: fc.optim.adam(c, p, lr=0.05), np_adam),
], ids=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_optimizer_matches_numpy_over_several_steps(make, ref):
    for got, want in zip(run_flowc(make), run_numpy(ref)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_optimizer_state_is_named_and_in_the_update_phase():
    w = fc.param("w", W0)
    cost = fc.sum(w ** 2)
    ups = fc.optim.adam(cost, [w])
    names = {p.name for p, _ in ups}
    assert names == {"adam.t", "w.adam_m", "w.adam_v", "w"}
    f = fc.function([], cost, updates=ups)
    phases = {d["phase"] for _, d in f.graph.nodes(data=True)}
    assert "update" in phases


def test_explicit_gradients_are_accepted_and_counted():
    w = fc.param("w", W0)
    g = fc.grad(fc.sum(w ** 2), w)
    assert len(fc.optim.sgd([g], [w])) == 1
    with pytest.raises(fc.FlowcError, match="2 gradients for 1 params"):
        fc.optim.sgd([g, g], [w])
