"""Passes preserve results, never touch the user's graph, and fire where they should."""
import copy

import numpy as np
import pytest

import flowc as fc
from flowc.ir.verify import verify_unit
from flowc.passes import PIPELINES, simplify
from flowc.passes.algebra import RULES


def logreg():
    x, y = fc.input("x", (None, 6)), fc.input("y", (None,))
    w, b = fc.param("w", np.linspace(-1, 1, 6)), fc.param("b", 0.1)
    p = fc.sigmoid(x @ w + b)
    cost = fc.mean(-y * fc.log(p) - (1 - y) * fc.log(1 - p)) + 0.01 * fc.sum(w ** 2)
    return [x, y], [cost, *fc.grad(cost, [w, b]), p > 0.5]


def messy():
    x = fc.input("x", (4,))
    one, zero = fc.constant(1.0), fc.constant(0.0)
    y = (x * one + zero) - 0.0
    z = -(-fc.exp(fc.log(y * y + 2.0)))
    k = fc.constant(np.arange(4.0)) * 2.0 + 1.0  # folds to a constant
    return [x], [z / 1.0 + k, (x * x) ** 1.0 + fc.sum(fc.tanh(x) * fc.tanh(x))]


@pytest.mark.parametrize("build", [logreg, messy])
@pytest.mark.parametrize("level", ["O1", "O2"])
def test_optimized_results_equal_unoptimized(build, level):
    ins, outs = build()
    rng = np.random.default_rng(0)
    args = [rng.standard_normal((5,) + tuple(d or 5 for d in t.type.shape[1:])) if t.ndim == 2
            else rng.standard_normal(tuple(d or 5 for d in t.type.shape)) for t in ins]
    if build is logreg:
        args[1] = (args[1] > 0).astype(float)
    ref = fc.function(ins, outs, optimize="O0")(*args)
    got = fc.function(ins, outs, optimize=level, verify=True)(*args)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-15)


def test_compiling_never_mutates_the_users_graph():
    ins, outs = messy()
    G = ins[0].graph.nx
    before = (sorted(G.nodes), sorted(G.edges(keys=True)),
              {n: dict(d) for n, d in G.nodes(data=True)})
    fc.function(ins, outs, optimize="O1")
    after = (sorted(G.nodes), sorted(G.edges(keys=True)),
             {n: dict(d) for n, d in G.nodes(data=True)})
    assert before[:2] == after[:2]
    for n in before[2]:
        assert before[2][n].keys() == after[2][n].keys()
        for k in before[2][n]:
            assert before[2][n][k] is after[2][n][k] or np.array_equal(before[2][n][k], after[2][n][k])


def test_rules_fire_and_explain_lists_them_with_the_users_line():
    ins, outs = messy()
    f = fc.function(ins, outs, optimize="O1")
    text = f.explain()
    for rule in ("mul_one", "add_zero", "sub_zero", "neg_neg", "exp_log", "div_one", "pow_one",
                 "cse", "fold"):
        assert rule in text, rule
    assert "test_passes.py:" in text
    ops = [d["op"] for _, d in f.graph.nodes(data=True)]
    assert "neg" not in ops and "log" not in ops
    # x*x and tanh(x)*tanh(x): CSE leaves one tanh
    assert ops.count("tanh") == 1


def test_constant_folding_uses_runtime_kernels():
    x = fc.input("x", (3,))
    c = fc.exp(fc.constant([0.0, 1.0, 2.0])) * 2.0
    f = fc.function([x], x + c)
    assert [d["op"] for _, d in f.graph.nodes(data=True)].count("exp") == 0
    np.testing.assert_allclose(f(np.zeros(3)), 2 * np.exp([0.0, 1.0, 2.0]))


def test_rule_that_changes_the_type_is_refused():
    x = fc.input("x", (3,))
    f = fc.function([x], x * fc.constant(np.ones((2, 3))), optimize="O1")
    assert f(np.ones(3)).shape == (2, 3)


def test_each_pass_leaves_its_input_alone_and_keeps_the_schema():
    ins, outs = logreg()
    f = fc.function(ins, outs, optimize="O0")
    G0 = f.graph
    for p in PIPELINES["O1"]:
        snapshot = copy.deepcopy(G0)
        G1 = p(G0)  # may be G0 itself when the pass has nothing to do (no copy made)
        verify_unit(G1, after=p.__name__)
        assert sorted(G0.nodes) == sorted(snapshot.nodes)  # input untouched
        assert sorted(G0.edges(keys=True)) == sorted(snapshot.edges(keys=True))
        assert all(G0.nodes[n]["op"] == snapshot.nodes[n]["op"] for n in G0)
        G0 = G1


def test_fixed_point_cap_names_the_rule():
    x = fc.input("x", (3,))
    f = fc.function([x], fc.neg(x), optimize="O0")

    def flip(G, n, a):  # -x -> -(-(-x)): never settles
        from flowc.passes.algebra import _build
        return _build(G, n, lambda t: fc.neg(fc.neg(fc.neg(t[0]))), a)
    with pytest.raises(fc.FlowcError, match="flip"):
        simplify(f.graph, rules=RULES + [("flip", "neg", flip)])


def _train(level, steps=5):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((64, 8)), rng.integers(0, 3, 64)
    with fc.Graph():
        x, y = fc.input("x", (None, 8)), fc.input("y", (None,), "int64")
        W = fc.param("W", np.linspace(-1, 1, 24).reshape(8, 3) * 0.1)
        V = fc.param("V", np.linspace(1, -1, 9).reshape(3, 3) * 0.1)
        h = fc.tanh(x @ W)
        h2 = fc.tanh(h @ V)  # the same fused expression twice in one program
        lp = fc.log_softmax(h2)
        loss = -fc.mean(fc.take_along_axis(lp, fc.expand_dims(y, 1), 1))
        f = fc.function([x, y], [loss, h2], updates=fc.optim.adam(loss, [W, V], lr=0.05),
                        optimize=level)
        losses = []
        for _ in range(steps):  # later calls run the buffered body with shared buffers
            out = f(X, Y)
            losses.append(float(out[0]))
        return losses, out[1], W.get_value(), V.get_value()


def test_training_steps_agree_at_every_level():
    ref = _train("O0")
    for level in ("O1", "O2"):
        got = _train(level)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
        for a, b in zip(got[1:], ref[1:]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_identity_matmul_is_dropped():
    x = fc.input("x", (3, 4))
    f = fc.function([x], [fc.constant(np.eye(3)) @ x, x @ fc.constant(np.eye(4))])
    assert "matmul_identity" in f.explain()
    assert not any(i.kernel == "matmul" for i in f.program.instrs)
    X = np.arange(12.0).reshape(3, 4)
    for got in f(X):
        np.testing.assert_array_equal(got, X)


def test_gradients_of_adjacent_slices_become_one_concatenation():
    """An LSTM's four gate slices: their gradients fill one array as a concatenation
    (adjacent_slice_grads, whole_slice_grad), against O0 on calls 1-3; slices with a gap,
    overlapping ones and strided ones keep their getitem_grad and stay right."""
    rng = np.random.default_rng(3)
    with fc.Graph():
        z = fc.input("z", (4, 12))
        gates = [fc.sigmoid(z[:, :3]), fc.tanh(z[:, 3:6]), fc.exp(z[:, 6:9]) * 0.1,
                 fc.sin(z[:, 9:])]
        cost = fc.sum(gates[0] * gates[1] + gates[2] * gates[3])
        odd = fc.sum(fc.sin(z[:, 1:4]) * fc.cos(z[:, 2:5])) + fc.sum(z[:, ::2] ** 2) \
            + fc.sum(fc.exp(z[:, 8:10]))  # overlap, stride, a gap before 8
        outs = fc.grad(cost, [z]) + fc.grad(odd, [z])
        f1 = fc.function([z], outs, optimize="O1")
        f0 = fc.function([z], outs, optimize="O0")
        ops = [d["op"] for _, d in f1.graph.nodes(data=True)]
        fired = {r[0] for r in f1.graph.graph["log"]}
        assert {"adjacent_slice_grads", "whole_slice_grad"} <= fired, fired
        assert "concatenate" in ops
        for _ in range(3):
            zv = rng.standard_normal((4, 12))
            for a, b in zip(f1(zv), f0(zv)):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
