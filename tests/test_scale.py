"""Deep and wide graphs compile, draw and run at every level, with no recursion over depth.

Every test runs under a recursion limit of 300 (issue 10, C2: a 300-op chain raised
RecursionError at O2), so any walk that recurses over a graph's or an expression's depth
fails here even on the smaller graphs.
"""
import sys

import numpy as np
import pytest

import flowc as fc
from flowc.passes.fuse import MAX_DEPTH
from flowc_runtime.cpu.fused import postorder

LEVELS = ("O0", "O1", "O2")
X = np.linspace(-1.5, 1.5, 12).reshape(3, 4)


@pytest.fixture(autouse=True)
def low_recursion_limit():
    """A recursion limit far below the graphs' depth (restored afterwards)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _chain(n):
    x = fc.input("x", shape=(None, 4), dtype="float64")
    h = x
    for _ in range(n):
        h = h * 0.5 + 0.25
    return x, h


def _chain_ref(n, a=X):
    r = a.copy()
    for _ in range(n):
        r = r * 0.5 + 0.25
    return r


def _grad_chain(n):
    x = fc.input("x", shape=(None, 4), dtype="float64")
    h = x
    for _ in range(n):
        h = fc.sin(h) * 0.5 + h
    cost = fc.sum(h)
    return x, cost, fc.grad(cost, x)


def _grad_chain_ref(n, a=X):
    r, d = a.copy(), np.ones_like(a)
    for _ in range(n):
        d = d * (np.cos(r) * 0.5 + 1)
        r = np.sin(r) * 0.5 + r
    return r.sum(), d


def _fan_out(n):
    x = fc.input("x", shape=(None, 4), dtype="float64")
    ys = [fc.sin(x * float(i)) for i in range(n)]
    s = ys[0]
    for y in ys[1:]:
        s = s + y
    return x, [s, ys[1], ys[-1]]


def _fan_out_ref(n, a=X):
    return [sum(np.sin(a * float(i)) for i in range(n)), np.sin(a), np.sin(a * float(n - 1))]


def _check_calls(f, refs, rtol=1e-9):
    """Calls 1, 2 and 3 (memory plans start on the second) all give the reference."""
    for call in range(3):
        got = f(X)
        for g, r in zip(got, refs):
            np.testing.assert_allclose(g, r, rtol=rtol, atol=1e-9, err_msg=f"call {call + 1}")


@pytest.mark.parametrize("level", LEVELS)
def test_issue_chain_of_300_ops(level):
    """C2's case: h = h*0.5 + 0.25, 150 times, compiles and runs at every level."""
    x, h = _chain(150)
    f = fc.function([x], h, optimize=level, single_output=False)
    _check_calls(f, [_chain_ref(150)])


@pytest.mark.parametrize("level", LEVELS)
def test_medium_grad_chain_runs(level):
    x, cost, g = _grad_chain(150)
    f = fc.function([x], [cost, g], optimize=level)
    _check_calls(f, _grad_chain_ref(150))


@pytest.mark.parametrize("level", LEVELS)
def test_medium_fan_out_runs(level):
    x, outs = _fan_out(200)
    f = fc.function([x], outs, optimize=level)
    _check_calls(f, _fan_out_ref(200))


@pytest.mark.parametrize("level", LEVELS)
def test_10000_node_chain(level):
    x, h = _chain(2500)
    assert len(x.graph.nx) >= 10000
    f = fc.function([x], h, optimize=level, single_output=False)
    assert fc.to_dot(h).count("->") >= 10000 - 1
    _check_calls(f, [_chain_ref(2500)])
    if level == "O2":  # fused: 2500 steps in groups of at most MAX_DEPTH ops
        assert len(f.program.instrs) < 2 * 2500 / (MAX_DEPTH - 1) + 2
    else:
        assert len(f.program.instrs) == 5000


@pytest.mark.parametrize("level", LEVELS)
def test_15000_node_gradient_chain(level):
    x, cost, g = _grad_chain(1250)
    assert len(x.graph.nx) >= 15000
    f = fc.function([x], [cost, g], optimize=level)
    assert "digraph" in fc.to_dot([cost, g])
    _check_calls(f, _grad_chain_ref(1250), rtol=1e-7)


@pytest.mark.parametrize("level", LEVELS)
def test_2000_way_fan_out(level):
    x, outs = _fan_out(2000)
    f = fc.function([x], outs, optimize=level)
    assert "digraph" in fc.to_dot(outs)
    _check_calls(f, _fan_out_ref(2000), rtol=1e-7)


def test_optimized_picture_of_a_deep_chain():
    x, h = _chain(2500)
    f = fc.function([x], h)
    assert "fused" in fc.to_dot(f, stage="optimized")


def _depth(expr):
    depth = {}
    for e in postorder(expr):
        depth[e] = 0 if e[0] in ("arg", "const") else 1 + max(depth[c] for c in e[2])
    return depth[expr]


def test_fused_expressions_stay_shallow():
    """A long elementwise chain is cut into groups whose expression is at most MAX_DEPTH
    ops deep: attrs are nested tuples, which Python hashes, compares and prints recursively."""
    x, h = _chain(500)
    G = fc.function([x], h).graph
    depths = [_depth(d["attrs"]["expr"]) for _, d in G.nodes(data=True)
              if d["op"] in ("fused", "fused_reduce")]
    assert depths and max(depths) <= MAX_DEPTH


@pytest.mark.parametrize("level", LEVELS)
def test_repeated_operand_does_not_blow_up(level):
    """h = h*h*0.25 + 0.5: h is read twice by one node. Inlining it per read doubled the expression
    per level (2^60 ops here)."""
    x = fc.input("x", shape=(None, 4), dtype="float64")
    h = x
    for _ in range(60):
        h = h * h * 0.25 + 0.5
    f = fc.function([x], h, optimize=level, single_output=False)
    r = X.copy()
    for _ in range(60):
        r = r * r * 0.25 + 0.5
    _check_calls(f, [r])


def test_deep_one_minus_sigmoid_chain_differentiates():
    """1 - (1 - (... sigmoid(z))): the stable-chain matcher peels the layers in a loop."""
    z = fc.input("z", shape=(3, 4), dtype="float64")
    p = fc.sigmoid(z)
    for _ in range(400):
        p = 1 - p
    cost = fc.sum(fc.log(p))
    g = fc.grad(cost, z)
    for level in LEVELS:
        v = fc.function([z], g, optimize=level)(X)
        np.testing.assert_allclose(v, 1 - 1 / (1 + np.exp(-X)), rtol=1e-9)
