"""Issue 10 (passes): constant folding keeps stable forms, fusion and shape classes keep
types where a None dim meets a known size, hessians over size-0 dims, elementwise ==/!=.

Every check compiles at O0, O1 and O2 and compares the first, second and third call (memory
plans and caches start on later calls) with NumPy or finite differences.
"""
import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FlowcError

LEVELS = ("O0", "O1", "O2")


def calls(f, *args):
    """The first three results of f(*args): later calls run on memory plans and caches."""
    return [f(*args) for _ in range(3)]


def assert_all_close(got, want, **tol):
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **tol)


def check_levels(ins, outs, args, want, levels=LEVELS, **tol):
    """Compile at each level (verified after every pass); three calls equal `want`."""
    for level in levels:
        f = fc.function(ins, outs, optimize=level, verify=True)
        for got in calls(f, *args):
            assert_all_close(got, want, **tol)


# -- B3: constant folding must not pre-empt the stabilizing rewrites ------------------------

def _softplus(x):
    return np.logaddexp(0.0, x)


Y = np.array([1.0, 0.0])  # labels: the naive cross-entropy is 0 * -inf = nan at both

# (rule, build the expression from a tensor, its stable value in NumPy, operand values in the
# range where the naive form loses everything). One row per stabilize-table rule.
STABLE_ROWS = [
    ("inv_1p_exp", lambda z: 1 / (1 + fc.exp(z)), lambda z: np.exp(-_softplus(z)),
     np.array([710.0, 0.5])),
    ("log(1-sigmoid)", lambda z: fc.log(1 - fc.sigmoid(z)), lambda z: -_softplus(z),
     np.array([40.0, 800.0])),
    ("log_sigmoid", lambda z: fc.log(fc.sigmoid(z)), lambda z: -_softplus(-z),
     np.array([-800.0, 3.0])),
    ("log(1+x)", lambda x: fc.log(1 + x), np.log1p, np.array([1e-20, 3e-18])),
    ("expm1", lambda x: fc.exp(x) - 1, np.expm1, np.array([1e-20, -3e-18])),
    ("log_softmax", lambda z: fc.log(fc.softmax(z)),
     lambda z: z - np.max(z) - np.log(np.sum(np.exp(z - np.max(z)))),
     np.array([0.0, 1000.0])),
    ("log_sum_exp", lambda z: fc.log(fc.sum(fc.exp(z))),
     lambda z: np.max(z) + np.log(np.sum(np.exp(z - np.max(z)))),
     np.array([1000.0, 999.0])),
    ("binary_cross_entropy",
     lambda z: -Y * fc.log(fc.sigmoid(z)) - (1 - Y) * fc.log(1 - fc.sigmoid(z)),
     lambda z: Y * _softplus(-z) + (1 - Y) * _softplus(z), np.array([40.0, -800.0])),
]


@pytest.mark.parametrize("row", STABLE_ROWS, ids=[r[0] for r in STABLE_ROWS])
def test_stabilize_rules_hold_for_constant_operands(row):
    _, build, stable, z = row
    want = stable(z)
    assert np.all(np.isfinite(want))
    with np.errstate(all="ignore"):
        for level in ("O1", "O2"):
            f = fc.function([], build(fc.constant(z)), optimize=level, verify=True)
            for got in calls(f):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
        # Over an input the same rewrite gives the same value: folding changes nothing.
        x = fc.input("x", z.shape)
        check_levels([x], build(x), [z], want, levels=("O1", "O2"), rtol=1e-12, atol=1e-300)


def test_log_one_minus_sigmoid_of_constant_40():
    # The example: -inf at O1/O2 when folding ran first; the stable value is -40.
    out = fc.log(1 - fc.sigmoid(fc.constant([40.0])))
    with np.errstate(all="ignore"):
        o0 = fc.function([], out, optimize="O0")()
        assert np.isneginf(o0[0])  # O0 does not stabilize: the naive value
        for level in ("O1", "O2"):
            for got in calls(fc.function([], out, optimize=level)):
                np.testing.assert_allclose(got, [-40.0], rtol=1e-12)


@pytest.mark.parametrize("make_one", [lambda c: fc.constant(2.0) - 1,
                                      lambda c: fc.zeros_like(c[:1]) + 1,
                                      lambda c: fc.sum(fc.constant(np.full(4, 0.25)))],
                         ids=["2-1", "zeros_like+1", "sum"])
@pytest.mark.parametrize("size", [1, 100])
def test_stable_form_when_its_constant_is_computed(make_one, size):
    # The rules see through small constant expressions, so the 1 need not be a literal.
    c = fc.constant(np.full(size, 40.0))
    out = fc.log(make_one(c) - fc.sigmoid(c))
    with np.errstate(all="ignore"):
        for level in ("O1", "O2"):
            for got in calls(fc.function([], out, optimize=level, verify=True)):
                np.testing.assert_allclose(got, np.full(size, -40.0), rtol=1e-12)


def test_a_one_made_by_rounding_is_not_a_literal_one():
    # sigmoid(40) is 1.0 in float64: seeing it as a 1 would rewrite exp(x) - sigmoid(40)
    # into expm1(x) and pre-empt the stable log(1 - sigmoid(40)) = -40.
    c = fc.constant([40.0])
    out = fc.log(1 - fc.sigmoid(c)) + (fc.exp(fc.constant([0.5])) - fc.sigmoid(c))
    with np.errstate(all="ignore"):
        for level in ("O1", "O2"):
            for got in calls(fc.function([], out, optimize=level, verify=True)):
                np.testing.assert_allclose(got, [-40.0 + np.exp(0.5) - 1.0], rtol=1e-12)


def test_folding_still_folds_after_stabilizing():
    # A stable form over constants ends up one constant, not a chain of ops.
    out = fc.log(1 - fc.sigmoid(fc.constant([40.0]))) * 2.0
    f = fc.function([], out, optimize="O1")
    assert [i.kernel for i in f.program.instrs] == []
    for got in calls(f):
        np.testing.assert_allclose(got, [-80.0], rtol=1e-12)


# -- C1: fusion / shape classes where a None dim meets a known size -------------------------

def test_where_grad_broadcast_into_elementwise_keeps_types():
    c = fc.param("c", np.array([1.0, -1, 1, 1]))
    a = fc.input("a", (5, 1))
    b = fc.input("b", (1, 1))
    v = fc.where(c > 0.1, a, b)
    cost = fc.sum(fc.exp(fc.mean(v, 1, keepdims=True))) + fc.sum(fc.mean(v, 1))
    A = np.linspace(-1, 1, 5).reshape(5, 1)
    B = np.array([[0.3]])
    num = fc.numerical_grad(fc.function([a, b], cost, optimize="O0"), [A, B])
    check_levels([a, b], fc.grad(cost, [a, b]), [A, B], num, rtol=1e-6, atol=1e-8)


def test_jvp_with_known_tangent_over_unknown_input():
    x = fc.input("x", (None, None))
    v = fc.log(fc.softplus(x))
    cost = fc.sum(fc.tanh(v) * fc.constant(np.ones((3, 1)))) + fc.sum(fc.reshape(v, (3,)))
    X = np.array([[0.2], [-1.0], [2.0]])
    f_cost = fc.function([x], cost, optimize="O0")
    h = 1e-6
    num = (f_cost(X + h) - f_cost(X - h)) / (2 * h)  # derivative along the all-ones tangent
    check_levels([x], fc.jvp(cost, x, fc.constant(np.ones((3, 1)))), [X], num, rtol=1e-6)


def test_shape_class_of_broadcast_that_adds_a_leading_dim():
    # C3: (1,1,1) + (3,None) is (1,3,None), not the class of the (3,None) operand.
    a = fc.input("a", (1, 1, 1))
    b = fc.input("b", (3, None))
    g = fc.grad(fc.sum(fc.sum(a + b, axis=1)), b)
    A, B = np.full((1, 1, 1), 0.5), np.arange(6.0).reshape(3, 2)
    check_levels([a, b], g, [A, B], np.ones((3, 2)))
    assert fc.check_grad(lambda a, b: fc.sum(fc.sum(a + b, axis=1)), [A, B]) < 1e-6


def test_broadcast_to_an_unknown_dim_against_a_target_one():
    # The fuzzer's finding: (None, None) -> (2, 7, 1) was refused at build time, though NumPy
    # broadcasts a (7, 1) there; the unknown dim must be 1 and the call checks it.
    x = fc.input("x", (None, None))
    y = fc.broadcast_to(x, (2, 7, 1))
    assert y.shape == (2, 7, 1)
    X = np.arange(7.0).reshape(7, 1)
    check_levels([x], [y, fc.grad(fc.sum(y * y), x)], [X], [np.broadcast_to(X, (2, 7, 1)), 4 * X])
    f = fc.function([x], y)
    with pytest.raises(Exception, match="broadcast|shape"):
        f(np.zeros((7, 2)))


# A small random generator of grad and jvp graphs over inputs whose declared dims are partly
# None: the class of bugs C1 belongs to (a None dim meets a known size), not just its repros.
UNARY = [fc.tanh, fc.sigmoid, lambda t: fc.log(fc.softplus(t)), lambda t: t * t, lambda t: -t,
         lambda t: fc.exp(fc.tanh(t))]
BINARY = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b,
          lambda a, b: fc.where(a > 0.1, a, b)]


def _broadcast(s, t):
    try:
        return np.broadcast_shapes(s, t)
    except ValueError:
        return None


def random_graph(rng):
    """(inputs, their values, a scalar cost) built from random elementwise, broadcasting,
    select, reduction and reshape steps; input dims are declared None at random."""
    ins, vals, pool = [], [], []
    for i in range(int(rng.integers(1, 3))):
        shape = tuple(int(d) for d in rng.choice([1, 3], size=int(rng.integers(1, 4))))
        decl = tuple(None if rng.random() < 0.6 else d for d in shape)
        x = fc.input(f"x{i}", decl)
        ins.append(x)
        vals.append(rng.uniform(-1.5, 1.5, shape))
        pool.append((x, shape))
    for _ in range(int(rng.integers(2, 7))):
        kind = rng.integers(0, 6)
        t, s = pool[int(rng.integers(len(pool)))]
        if kind == 0:
            pool.append((UNARY[int(rng.integers(len(UNARY)))](t), s))
        elif kind == 1:
            u, r = pool[int(rng.integers(len(pool)))]
            out = _broadcast(s, r)
            if out is not None:
                pool.append((BINARY[int(rng.integers(len(BINARY)))](t, u), out))
        elif kind == 2:
            cs = tuple(int(d) for d in rng.choice([1, 3], size=int(rng.integers(1, 3))))
            out = _broadcast(s, cs)
            if out is not None:
                pool.append((t * fc.constant(rng.uniform(0.5, 1.5, cs)), out))
        elif kind == 3 and len(s):
            axis = int(rng.integers(len(s)))
            keep = bool(rng.integers(2))
            red = fc.mean if rng.integers(2) else fc.sum
            out = tuple(1 if i == axis else d for i, d in enumerate(s)) if keep else \
                tuple(d for i, d in enumerate(s) if i != axis)
            pool.append((red(t, axis, keepdims=keep), out))
        elif kind == 4:
            pool.append((fc.reshape(t, (int(np.prod(s)),)), (int(np.prod(s)),)))
        elif kind == 5:  # a select whose mask is a constant of yet another shape
            u, r = pool[int(rng.integers(len(pool)))]
            cs = tuple(int(d) for d in rng.choice([1, 3], size=int(rng.integers(1, 3))))
            out = _broadcast(s, r)
            out = None if out is None else _broadcast(out, cs)
            if out is not None:
                mask = fc.constant(rng.uniform(-1, 1, cs)) > 0.1
                pool.append((fc.where(mask, t, u), out))
    picks = rng.choice(len(pool), size=min(3, len(pool)), replace=False)
    cost = None
    for k in picks:
        t, _ = pool[int(k)]
        term = fc.sum(fc.exp(fc.mean(t, keepdims=True))) if rng.integers(2) else fc.sum(t)
        cost = term if cost is None else cost + term
    return ins, vals, cost


def run_random(seed, count, ncalls):
    """Check `count` random graphs: grad and jvp at O1/O2 equal O0's first call, `ncalls`
    calls each."""
    rng = np.random.default_rng(seed)
    checked = 0
    for _ in range(count):
        with fc.Graph():
            try:
                ins, vals, cost = random_graph(rng)
            except FlowcError:
                continue  # a static shape clash: no graph to check
            tans = [fc.constant(np.ones(v.shape)) if rng.integers(2) else fc.input("t", x.shape)
                    for x, v in zip(ins, vals)]
            tan_ins = [t for t in tans if t.op == "input"]
            tan_vals = [np.full(v.shape, 0.5) for t, v in zip(tans, vals) if t.op == "input"]
            outs = fc.grad(cost, ins) + [fc.jvp(cost, ins, tans)]
            args = vals + tan_vals
            with np.errstate(all="ignore"):
                want = fc.function(ins + tan_ins, outs, optimize="O0")(*args)
                for level in LEVELS:
                    f = fc.function(ins + tan_ins, outs, optimize=level, verify=True)
                    for _ in range(ncalls):
                        assert_all_close(f(*args), want, rtol=1e-9, atol=1e-12)
            checked += 1
    return checked


def test_random_grad_and_jvp_graphs_compile_and_agree_across_levels():
    assert run_random(seed=10, count=60, ncalls=1) > 40


def test_random_grad_and_jvp_graphs_agree_on_later_calls():
    assert run_random(seed=10, count=60, ncalls=3) > 40


# -- C4: hessian over a size-0 dim --------------------------------------------------------

def test_hessian_with_size_zero_dim():
    p = fc.param("p", np.ones((2, 1, 1)))
    cost = fc.sum(fc.where(p > 0.1, p[:3:-1, 0], p) ** 2)
    check_levels([], fc.grad(cost, p), [], np.zeros((2, 1, 1)))
    check_levels([], fc.hessian(cost, p), [], np.zeros((2, 1, 1, 2, 1, 1)))
    fn = lambda p: fc.sum(fc.where(p > 0.1, p[:3:-1, 0], p) ** 2)  # noqa: E731
    assert fc.check_grad(fn, [np.ones((2, 1, 1))], order=2) < 1e-6


def test_hessian_of_a_size_zero_input():
    x = fc.input("x", (0, 3))
    check_levels([x], fc.hessian(fc.sum(fc.sin(x) * x), x), [np.ones((0, 3))],
                 np.zeros((0, 3, 0, 3)))


EMPTY_COSTS = {
    "reshape(-1)": lambda p: fc.sum(fc.reshape(p, (-1,)) ** 2),
    "getitem": lambda p: fc.sum(p[:, :0] ** 2) + fc.sum(p ** 3),
    "concatenate": lambda p: fc.sum(fc.concatenate([p, p[:0]], 0) ** 2),
    "sum(axis=1)": lambda p: fc.sum(fc.sum(p, 1) ** 2),
    "take": lambda p: fc.sum(fc.take(p, fc.constant(np.zeros(0, np.int64)), None) ** 2)
    + fc.sum(p ** 3),
}


@pytest.mark.parametrize("shape", [(2, 0, 1), (0, 3), (2, 3)])
@pytest.mark.parametrize("name", sorted(EMPTY_COSTS))
def test_hessian_where_a_dim_may_be_empty(name, shape):
    # Batching over the Jacobian's basis: a -1 in a reshape next to an empty batch axis is
    # ambiguous, and an index into an empty axis is out of bounds.
    P = np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape)
    with fc.Graph():
        p = fc.input("p", shape)
        h = fc.hessian(EMPTY_COSTS[name](p), p)
        want = fc.function([p], h, optimize="O0")(P)
        assert want.shape == shape + shape
        check_levels([p], h, [P], want, rtol=1e-12)
    assert fc.check_grad(EMPTY_COSTS[name], [P], order=2) < 1e-5


def test_jacobian_over_an_unknown_dim_that_is_empty_at_run_time():
    # Batching materializes unbatched operands against batched ones of shape (B, None).
    x = fc.input("x", (2,))
    z = fc.input("z", (None,))
    y = fc.tanh(z * x[0]) + x[1] * fc.sum(z * z) * z
    jac = fc.jacobian(y, x)
    X = np.array([0.3, -0.7])
    for Z in (np.zeros(0), np.array([0.5, -1.0, 2.0])):
        f = fc.function([x, z], y, optimize="O0")
        num = np.stack([fc.numerical_grad(lambda x, i=i: f(x, Z)[i], X) for i in range(len(Z))]) \
            if len(Z) else np.zeros((0, 2))
        check_levels([x, z], jac, [X, Z], num, rtol=1e-6, atol=1e-9)


# -- == and != are elementwise --------------------------------------------------------------

def test_eq_and_ne_are_elementwise():
    pred = fc.input("pred", (None,))
    y = fc.input("y", (None,))
    outs = [fc.mean(fc.cast(pred == y, "float64")), pred != y, pred == 2.0, 2.0 != pred,
            np.array([1.0, 2.0, 3.0]) == pred]
    P, Y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])
    want = [np.mean(P == Y), P != Y, P == 2.0, 2.0 != P, np.array([1.0, 2, 3]) == P]
    check_levels([pred, y], outs, [P, Y], want)


def test_eq_none_and_identity_semantics():
    a = fc.input("a", (3,))
    b = fc.input("b", (3,))
    assert (a == None) is False and (a != None) is True  # noqa: E711
    assert (a == "a") is False and (a != "a") is True
    assert {a: 1, b: 2}[b] == 2 and len({a, b, a}) == 2  # hashable by node
    with pytest.raises(TypeError, match="no truth value"):
        bool(a == b)


def test_theano_eq_stays_elementwise():
    from flowc.theano import tensor as T
    a = fc.input("a", (3,))
    P = np.array([1.0, 2.0, 3.0])
    check_levels([a], [T.eq(a, 2.0), T.neq(a, 2.0)], [P], [P == 2.0, P != 2.0])


def test_passes_never_reuse_the_id_of_a_removed_node():
    """Checked mode matches the optimized program's nodes with the O0 program's by id, so a
    pass that makes nodes (fusion, specialize) must not take the id of one a pass removed."""
    from flowc.ir.graph import copy_graph, fresh_ids
    with fc.Graph() as g:
        x = fc.input("x", (None, 3))
        fc.log(fc.exp(x) + 1.0)
    G = copy_graph(g.nx)
    top = max(G.nodes)
    G.remove_node(top)  # as a rewrite pass prunes a node it replaced
    assert next(fresh_ids(G)) > top
    H = copy_graph(G)  # the floor travels with the copies every pass makes
    assert next(fresh_ids(H)) > top + 1


def test_optimized_nodes_with_an_o0_id_are_the_same_node():
    x = fc.input("x", (None, 3))
    h = x
    for _ in range(4):
        h = fc.tanh(h * 0.5 + 0.25)
    out = [fc.exp(fc.log(fc.sigmoid(h) + 1.0)), fc.grad(fc.sum(h * h), x)]
    ref = fc.function([x], out, optimize="O0")
    opt = fc.function([x], out, optimize="O2")
    ref_ops = {n: d["op"] for n, d in ref.graph.nodes(data=True)}
    for n, d in opt.graph.nodes(data=True):
        assert n not in ref_ops or ref_ops[n] == d["op"], (n, d["op"], ref_ops[n])
    X = np.linspace(-2, 2, 6).reshape(2, 3)
    for _ in range(3):
        for a, b in zip(opt(X), ref(X)):
            np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("level", LEVELS)
def test_broadcast_to_accepts_an_unknown_dim_that_may_be_one(level):
    """(None,) may be (1,) at run time, which broadcasts to (2, 1) (a fuzzer finding: it was
    refused when the graph was built); a run-time size that does not fit is still an error."""
    x = fc.input("x", (None,))
    f = fc.function([x], fc.broadcast_to(fc.abs(x), (2, 1)), optimize=level)
    for v in (-3.0, 2.0, -3.0):
        np.testing.assert_array_equal(f(np.array([v])), np.full((2, 1), abs(v)))
    with pytest.raises(fc.FlowcError):
        f(np.ones(3))
    with pytest.raises(fc.ShapeError, match=r"cannot broadcast \(3,\) to \(2, 1\)"):
        fc.broadcast_to(fc.input("y", (3,)), (2, 1))


@pytest.mark.parametrize("level", ["O0", "O1", "O2"])
def test_gemm_fold_where_the_product_broadcasts_into_c(level):
    # Fuzzer finding: C + A @ B with C (0, 5) and A @ B (1, 5) at run time (both f32[?,5]
    # when built) is (0, 5); the fold into one gemm assumed the product's shape.
    a, b = fc.input("a", (None, 0), "float32"), fc.input("b", (None, 5), "float32")
    f = fc.function([a, b], 2.0 ** b + a @ b, optimize=level)
    for rows in (1, 0, 1):
        av, bv = np.zeros((rows, 0), "float32"), np.zeros((0, 5), "float32")
        want = 2.0 ** bv + av @ bv
        got = f(av, bv)
        assert got.shape == want.shape and np.array_equal(got, want)
