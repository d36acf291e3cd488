"""The transformations, checked against finite differences (float64) and plain NumPy.

jvp / Rop and batching are generated from the op table (tests/opinfo.py); vjp / Lop, jacobian,
hessian, hvp, stop_gradient, custom_vjp and check_grad's modes and orders are checked on
chosen functions. Every reference is NumPy or central differences of compiled functions.
"""
import zlib
from collections import Counter

import numpy as np
import pytest

import flowc as fc
from tests.opinfo import BY_NAME, SAMPLES
from tests.test_ops import (assert_grads_match, build, compatible, cotangent, draw,
                            float64_twin)

# Rows whose batching is known to fail, with the reason (kept so a regression can be parked).
BATCH_XFAIL = {}  # row -> reason, for batching rules known to be wrong (none now)
BATCH_ONE_XFAIL = {}  # (row, operand index) -> reason (none now)
JVP_RAISES = {"custom_vjp_value": "no jvp rule"}  # a custom rule given without jvp=


def _xfail(rows, key):
    reason = rows.get(key)
    return [pytest.mark.xfail(reason=reason, strict=True)] if reason else []


def _user_op(s):
    """Rows of ops users write (not those only passes make, which have no rules)."""
    return not getattr(s, "compiled_only", False)


GRAD_ROWS = [pytest.param(s, id=s.name) for s in SAMPLES if s.grad]
FLOAT_ROWS = [pytest.param(s, id=s.name, marks=_xfail(BATCH_XFAIL, s.name))
              for s in SAMPLES if _user_op(s) and any(a.is_float for a in s.args)]
ONE_OF_TWO = [pytest.param(s, j, id=f"{s.name}-a{j}", marks=_xfail(BATCH_ONE_XFAIL, (s.name, j)))
              for s in SAMPLES if _user_op(s) for j, a in enumerate(s.args)
              if a.is_float and sum(b.is_float for b in s.args) >= 2]


def run(inputs, outputs, *args, optimize="O1"):
    return fc.function(inputs, outputs, optimize=optimize)(*args)


def floats_of(s):
    return [i for i, a in enumerate(s.args) if a.is_float]


def central_jacobian(f, x, eps=1e-6):
    """d f / d x by central differences, shaped f(x).shape + x.shape (f: array -> array)."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for j in range(x.size):
        e = np.zeros(x.size)
        h = eps * max(1.0, abs(float(x.reshape(-1)[j])))
        e[j] = h
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    fshape = np.shape(cols[0])
    return np.moveaxis(np.array(cols), 0, -1).reshape(fshape + x.shape)


# -- jvp / Rop: directional central differences, every differentiable row ---------------------
@pytest.mark.parametrize("s", GRAD_ROWS)
def test_jvp_matches_directional_differences(s):
    dts = float64_twin(s)
    xs, out = build(s, dts)
    fl = floats_of(s)
    ts = [fc.input(f"t{i}", xs[i].shape) for i in fl]
    if s.name in JVP_RAISES:
        with pytest.raises(fc.GradError, match=JVP_RAISES[s.name]):
            fc.jvp(out, [xs[i] for i in fl], ts)
        return
    j = fc.jvp(out, [xs[i] for i in fl], ts)
    assert j.dtype == out.dtype and compatible(out.shape, j.shape), f"{j.type} for {out.type}"
    args = draw(s, dtypes=dts)
    rng = np.random.default_rng(zlib.crc32(s.name.encode()))
    tans = [rng.standard_normal(np.shape(args[i])) for i in fl]
    f = fc.function(xs, out)
    h = s.fd_eps * max([1.0] + [float(np.max(np.abs(args[i]), initial=0.0)) for i in fl])
    plus, minus = list(args), list(args)
    for i, t in zip(fl, tans):
        plus[i], minus[i] = args[i] + h * t, args[i] - h * t
    num = (np.asarray(f(*plus), np.float64) - np.asarray(f(*minus), np.float64)) / (2 * h)
    scale = float(np.max(np.abs(f(*args)), initial=0.0))
    for level in ("O0", "O1"):
        got = run(xs + ts, j, *args, *tans, optimize=level)
        assert got.shape == num.shape, f"{level}: jvp shape {got.shape}, output {num.shape}"
        assert_grads_match(s, got, num, scale, f"jvp at {level}")
    if dts != [a.dtype for a in s.args]:  # a float32 row: the tangent keeps the output's dtype
        with fc.Graph():
            xs32, out32 = build(s)
            t32 = fc.jvp(out32, [xs32[i] for i in fl], [fc.zeros_like(xs32[i]) for i in fl])
            assert t32.dtype == out32.dtype


# -- vjp / Lop with an explicit cotangent = grad of sum(out * R) ---------------------------------
# Broadcasting, unknown dims, integer/boolean operands, mixed and float32 dtypes, linalg.
VJP_ROWS = ["add_bcast", "sub_fn", "mul_fn", "matmul_2d", "matmul_batched_1d", "matmul_decl_none",
            "sum_neg_axis_decl_none", "softmax", "logsumexp_axes", "getitem_step", "take_axis0",
            "where", "solve_mat", "slogdet_batched", "norm_axis_keepdims", "topk_values",
            "exp_f32", "add_f32_f64", "concatenate_mixed_dtype", "logreg_cost"]


@pytest.mark.parametrize("s", [pytest.param(BY_NAME[n], id=n) for n in VJP_ROWS])
def test_vjp_equals_grad_of_weighted_sum(s):
    dts = float64_twin(s)
    xs, out = build(s, dts)
    wrt = [xs[i] for i in floats_of(s)]
    r = fc.input("R", out.shape)
    lop = fc.vjp(out, wrt, r)
    gs = fc.grad(fc.sum(out * r), wrt)
    assert isinstance(lop, list) and len(lop) == len(wrt)
    for w, g in zip(wrt, lop):
        assert g.dtype == w.dtype and compatible(w.shape, g.shape)
    args = draw(s, dtypes=dts)
    args.append(cotangent(s, args))
    got = fc.function(xs + [r], lop, single_output=False)(*args)
    want = fc.function(xs + [r], gs, single_output=False)(*args)
    for a, b, i in zip(got, want, floats_of(s)):
        assert a.shape == np.shape(args[i])
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * max(1, np.abs(b).max()))


def test_theano_shape_conventions_for_rop_and_lop():
    # Rop: shaped like the output (one per output); Lop: shaped like wrt (one per wrt).
    x, A = fc.input("x", (3,)), fc.input("A", (2, 3))
    y = fc.tanh(A @ x)                               # (2,)
    t, ct = fc.input("t", (3,)), fc.input("ct", (2,))
    rop = fc.Rop(y, x, t)
    lop = fc.Lop(y, x, ct)
    assert rop.shape == y.shape and lop.shape == x.shape
    rops = fc.Rop([y, fc.sum(y)], [x, A], [t, fc.ones_like(A)])
    assert [r.shape for r in rops] == [(2,), ()]
    lops = fc.Lop(y, [x, A], ct)
    assert [g.shape for g in lops] == [(3,), (2, 3)]
    rng = np.random.default_rng(0)
    xv, Av, tv, cv = rng.standard_normal(3), rng.standard_normal((2, 3)), \
        rng.standard_normal(3), rng.standard_normal(2)
    r, g_x, g_A = fc.function([x, A, t, ct], [rop, lops[0], lops[1]])(xv, Av, tv, cv)
    d = 1 - np.tanh(Av @ xv) ** 2
    np.testing.assert_allclose(r, d * (Av @ tv), rtol=1e-12)
    np.testing.assert_allclose(g_x, Av.T @ (d * cv), rtol=1e-12)
    np.testing.assert_allclose(g_A, np.outer(d * cv, xv), rtol=1e-12)
    with pytest.raises(fc.GradError, match="tangent"):
        fc.jvp(y, x, fc.input("bad", (4,)))
    with pytest.raises(fc.GradError, match="cotangents"):
        fc.vjp([y, y], x, [ct])


# -- batching: every row with a float operand, against stacked unbatched results ---------------
def _batched_run(s, which):
    """(batched result, stacked unbatched results) with operands `which` batched over 3 draws."""
    xs, out = build(s)
    reps = {xs[i]: fc.input(f"b{i}", (3,) + tuple(s.args[i].declared), dtype=s.args[i].dtype)
            for i in which}
    ob = fc.batch(out, reps)
    assert ob.dtype == out.dtype and (compatible((3,) + out.shape, ob.shape)
                                      or compatible((None,) + out.shape, ob.shape)), \
        f"batched {ob.type} for {out.type}"
    draws = [draw(s, k) for k in range(3)]
    f = fc.function(xs, out)
    per = [[d[i] if i in which else draws[0][i] for i in range(len(s.args))] for d in draws]
    want = np.stack([np.asarray(f(*a)) for a in per])
    rest = [i for i in range(len(s.args)) if i not in which]
    got = fc.function([xs[i] for i in rest] + list(reps.values()), ob)(
        *[draws[0][i] for i in rest], *[np.stack([d[i] for d in draws]) for i in which])
    return np.asarray(got), want


def _assert_batched(s, got, want):
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"batched {got.dtype}{got.shape}, stacked {want.dtype}{want.shape}"
    if want.dtype.kind == "f":
        rtol, atol = s.tols(want.dtype.name)
        np.testing.assert_allclose(got, want, rtol=rtol * 10, atol=atol * 10)
    else:
        np.testing.assert_array_equal(got, want)


# Operands an op cannot be batched over, by design: (row, operand index) -> error text.
NOT_BATCHABLE = {("random_uniform", 1): "generator state"}


def _unbatchable(s, idx):
    return next((NOT_BATCHABLE[(s.name, j)] for j in idx if (s.name, j) in NOT_BATCHABLE), None)


@pytest.mark.parametrize("s", FLOAT_ROWS)
def test_batch_all_float_operands(s):
    why = _unbatchable(s, floats_of(s))
    if why:
        with pytest.raises(fc.ShapeError, match=why):
            _batched_run(s, floats_of(s))
        return
    got, want = _batched_run(s, floats_of(s))
    _assert_batched(s, got, want)


@pytest.mark.parametrize("s, j", ONE_OF_TWO)
def test_batch_one_of_two_operands(s, j):
    why = _unbatchable(s, [j])
    if why:
        with pytest.raises(fc.ShapeError, match=why):
            _batched_run(s, [j])
        return
    got, want = _batched_run(s, [j])
    _assert_batched(s, got, want)


def test_batch_errors_and_unbatched_outputs():
    x, y = fc.input("x", (3,)), fc.input("y", (3,))
    with pytest.raises(fc.ShapeError, match=r"\(B,\)"):
        fc.batch(x * 2, {x: fc.input("xb", (3, 4))})
    with pytest.raises(fc.ShapeError, match="batch size"):
        fc.batch(x + y, {x: fc.input("xb", (2, 3)), y: fc.input("yb", (4, 3))})
    # An output that does not depend on the batched tensor is repeated along the batch axis.
    xb = fc.input("xb", (4, 3))
    both = fc.batch([fc.exp(x), fc.sum(y)], {x: xb})
    e, sy = fc.function([xb, y], both)(np.ones((4, 3)), np.arange(3.0))
    np.testing.assert_allclose(e, np.full((4, 3), np.e))
    np.testing.assert_allclose(sy, np.full(4, 3.0))


# -- jacobian: rev = fwd = auto = central differences -----------------------------------------
rng0 = np.random.default_rng(7)
A43 = rng0.standard_normal((4, 3))
JAC_CASES = {
    "vector_to_vector": ((3,), lambda x: fc.tanh(fc.constant(A43) @ x) * fc.sum(x),
                         lambda v: np.tanh(A43 @ v) * v.sum()),
    "matrix_to_scalar": ((3, 4), lambda X: fc.sum(fc.sin(X) ** 2) + fc.logsumexp(X),
                         lambda V: np.sum(np.sin(V) ** 2) + np.log(np.exp(V).sum())),
    "matrix_to_matrix": ((3, 4), lambda X: X @ X.T * fc.exp(X[:, :1]),
                         lambda V: V @ V.T * np.exp(V[:, :1])),
    "softmax": ((5,), fc.softmax, lambda v: np.exp(v) / np.exp(v).sum()),
}


@pytest.mark.parametrize("name", sorted(JAC_CASES))
def test_jacobian_modes_agree_with_differences(name):
    shape, f, ref = JAC_CASES[name]
    x = fc.input("x", shape)
    y = f(x)
    Js = [fc.jacobian(y, x, mode=m) for m in ("rev", "fwd", "auto")]
    for J in Js:
        assert J.shape == y.shape + x.shape and J.dtype == "float64"
    v = np.random.default_rng(1).uniform(-1, 1, shape)
    got = fc.function([x], Js)(v)
    num = central_jacobian(ref, v)
    for J, m in zip(got, ("rev", "fwd", "auto")):
        np.testing.assert_allclose(J, num, rtol=1e-7, atol=1e-8, err_msg=m)
    np.testing.assert_allclose(got[0], got[1], rtol=1e-12, atol=1e-13)
    if name == "softmax":
        s = ref(v)
        np.testing.assert_allclose(got[0], np.diag(s) - np.outer(s, s), rtol=1e-12, atol=1e-15)


def _added_ops(build_y, mode, n):
    with fc.Graph() as g:
        x = fc.input("x", (5,))
        y = build_y(x, n)
        before = set(g.nx.nodes)
        J = fc.jacobian(y, x, mode=mode)
        added = Counter((g.nx.nodes[v]["op"], g.nx.nodes[v]["type"].shape)
                        for v in g.nx.nodes if v not in before)
    return J.shape, added


@pytest.mark.parametrize("mode", ["rev", "fwd", "auto"])
def test_jacobian_graph_does_not_grow_with_the_number_of_outputs(mode):
    def build_y(x, n):
        A = fc.constant(np.random.default_rng(n).standard_normal((n, 5)))
        return fc.tanh(A @ x) * fc.sum(x ** 2)
    s10, ops10 = _added_ops(build_y, mode, 10)
    s1000, ops1000 = _added_ops(build_y, mode, 1000)
    assert s10 == (10, 5) and s1000 == (1000, 5)
    n10, n1000 = sum(ops10.values()), sum(ops1000.values())
    assert n10 == n1000 < 40, f"{n10} nodes for 10 outputs, {n1000} for 1000"
    assert Counter(op for op, _ in ops10) == Counter(op for op, _ in ops1000)


def test_jacobian_auto_picks_by_size():
    def build_y(x, n):
        return fc.sin(fc.constant(np.ones((n, 5))) @ x)
    # 2 outputs < 5 inputs: reverse mode; 8 outputs > 5 inputs: forward mode (the basis is
    # y's in reverse mode, x's in forward mode, so the graphs differ in their shapes).
    assert _added_ops(build_y, "auto", 2)[1] == _added_ops(build_y, "rev", 2)[1]
    assert _added_ops(build_y, "auto", 8)[1] == _added_ops(build_y, "fwd", 8)[1]
    assert _added_ops(build_y, "rev", 8)[1] != _added_ops(build_y, "fwd", 8)[1]
    with pytest.raises(fc.GradError, match="mode"):
        fc.jacobian(fc.input("y", (2,)), fc.input("x", (2,)), mode="both")


@pytest.mark.parametrize("mode", ["rev", "fwd", "auto"])
def test_jacobian_with_unknown_sizes_uses_the_basis_op(mode):
    x = fc.input("x", (None,))
    y = fc.tanh(x) * fc.sum(x)
    J = fc.jacobian(y, x, mode=mode)
    assert J.shape == (None, None)
    G = x.graph.nx
    assert "basis" in {G.nodes[v]["op"] for v in G.nodes}
    f = fc.function([x], J)
    for n in (3, 5):
        v = np.linspace(-1, 1, n)
        np.testing.assert_allclose(
            f(v), central_jacobian(lambda u: np.tanh(u) * u.sum(), v), rtol=1e-7, atol=1e-9)


def test_jacobian_of_a_list_of_tensors():
    a, b = fc.input("a", (2,)), fc.input("b", (3,))
    y = fc.outer(fc.sin(a), b)                       # (2, 3)
    Ja, Jb = fc.jacobian(y, [a, b])
    assert Ja.shape == (2, 3, 2) and Jb.shape == (2, 3, 3)
    av, bv = np.array([0.3, -0.7]), np.array([1.0, 2.0, -1.5])
    ga, gb = fc.function([a, b], [Ja, Jb])(av, bv)
    np.testing.assert_allclose(ga, central_jacobian(lambda u: np.outer(np.sin(u), bv), av),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gb, central_jacobian(lambda u: np.outer(np.sin(av), u), bv),
                               rtol=1e-8, atol=1e-10)


# -- hessian, hvp and higher order -----------------------------------------------------------
B34 = np.random.default_rng(11).standard_normal((3, 4))


def smooth_cost(x):
    return fc.logsumexp(fc.constant(B34) @ x) + fc.sum(x ** 4) / 4 + fc.prod(fc.cos(x))


def test_hessian_matches_differences_of_the_gradient():
    x = fc.input("x", (4,))
    cost = smooth_cost(x)
    g, H = fc.grad(cost, x), fc.hessian(cost, x)
    assert H.shape == (4, 4)
    f_g = fc.function([x], g)
    v = np.array([0.3, -0.5, 0.8, 0.1])
    got = fc.function([x], H)(v)
    np.testing.assert_allclose(got, central_jacobian(f_g, v), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(got, got.T, rtol=1e-12, atol=1e-14)


def test_hessian_of_a_matrix_and_of_a_list():
    X, w = fc.input("X", (2, 3)), fc.input("w", (3,))
    cost = fc.sum(fc.tanh(X @ w) ** 2) + fc.sum(w ** 3)
    HX, Hw = fc.hessian(cost, [X, w])
    assert HX.shape == (2, 3, 2, 3) and Hw.shape == (3, 3)
    Xv, wv = np.array([[0.1, -0.4, 0.6], [0.9, 0.2, -0.3]]), np.array([0.5, -1.0, 0.25])
    hx, hw = fc.function([X, w], [HX, Hw])(Xv, wv)
    gX = fc.function([X, w], fc.grad(cost, X))
    gw = fc.function([X, w], fc.grad(cost, w))
    np.testing.assert_allclose(hx, central_jacobian(lambda u: gX(u, wv), Xv), rtol=1e-7,
                               atol=1e-8)
    np.testing.assert_allclose(hw, central_jacobian(lambda u: gw(Xv, u), wv), rtol=1e-7,
                               atol=1e-8)


def test_hvp_equals_hessian_times_vector():
    x, v = fc.input("x", (4,)), fc.input("v", (4,))
    cost = smooth_cost(x)
    hv = fc.hvp(cost, x, v)
    assert hv.shape == (4,)
    xv, vv = np.array([0.3, -0.5, 0.8, 0.1]), np.array([1.0, 0.5, -2.0, 0.25])
    got, H = fc.function([x, v], [hv, fc.hessian(cost, x)])(xv, vv)
    np.testing.assert_allclose(got, H @ vv, rtol=1e-12, atol=1e-13)


def test_grad_of_jvp_is_hessian_times_tangent():
    x, t = fc.input("x", (4,)), fc.input("t", (4,))
    cost = smooth_cost(x)
    d = fc.jvp(cost, x, t)                          # directional derivative, a scalar
    assert d.shape == ()
    gd = fc.grad(d, x)
    xv, tv = np.array([0.3, -0.5, 0.8, 0.1]), np.array([1.0, 0.5, -2.0, 0.25])
    got, H = fc.function([x, t], [gd, fc.hessian(cost, x)])(xv, tv)
    np.testing.assert_allclose(got, H @ tv, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("outer, inner", [("rev", "fwd"), ("fwd", "rev"), ("rev", "rev")])
def test_jacobian_of_jacobian(outer, inner):
    x = fc.input("x", (3,))
    y = fc.sin(x) * fc.sum(x ** 2)                  # R^3 -> R^3
    J = fc.jacobian(y, x, mode=inner)
    JJ = fc.jacobian(J, x, mode=outer)
    assert JJ.shape == (3, 3, 3)
    v = np.array([0.4, -0.3, 1.1])
    got = fc.function([x], JJ)(v)
    f_J = fc.function([x], J)
    np.testing.assert_allclose(got, central_jacobian(f_J, v), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(got, np.swapaxes(got, 1, 2), rtol=1e-12, atol=1e-13)


def test_hessian_through_stop_gradient():
    # cost = sum(x^3 * sg(exp(x))): grad 3 x^2 e^x, Hessian diag(6 x e^x); sg's factor is
    # a constant for every order of differentiation.
    x = fc.input("x", (3,))
    cost = fc.sum(x ** 3 * fc.stop_gradient(fc.exp(x)))
    v = np.array([0.5, -1.0, 2.0])
    g, H, J = fc.function([x], [fc.grad(cost, x), fc.hessian(cost, x),
                                fc.jacobian(fc.grad(cost, x), x, mode="rev")])(v)
    np.testing.assert_allclose(g, 3 * v ** 2 * np.exp(v), rtol=1e-12)
    np.testing.assert_allclose(H, np.diag(6 * v * np.exp(v)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(J, H, rtol=1e-12, atol=1e-14)


# -- stop_gradient ----------------------------------------------------------------------------
def test_stop_gradient_blocks_grad_and_jvp():
    x, t = fc.input("x", (3,)), fc.input("t", (3,))
    y = x * fc.stop_gradient(x)                     # value x^2; derivative x, not 2x
    v, tv = np.array([1.0, -2.0, 3.0]), np.array([0.5, 1.0, -1.0])
    val, g, j, g0, j0 = fc.function([x, t], [
        y, fc.grad(fc.sum(y), x), fc.jvp(y, x, t),
        fc.grad(fc.sum(fc.stop_gradient(fc.exp(x))), x, disconnected="zero"),
        fc.jvp(fc.stop_gradient(fc.exp(x)), x, t)])(v, tv)
    np.testing.assert_allclose(val, v ** 2)
    np.testing.assert_allclose(g, v)
    np.testing.assert_allclose(j, tv * v)
    np.testing.assert_array_equal(g0, np.zeros(3))
    np.testing.assert_array_equal(j0, np.zeros(3))
    with pytest.raises(fc.GradError, match="x"):
        fc.grad(fc.sum(fc.stop_gradient(x)), x, disconnected="raise")


# -- custom_vjp -------------------------------------------------------------------------------
clip_grad = fc.custom_vjp(lambda z: z, lambda xs, y, g: [fc.clip(g, -1.0, 1.0)])


def test_custom_vjp_gradient_clipping():
    x = fc.input("x", (3,))
    c = np.array([5.0, 0.5, -3.0])
    cost = fc.sum(clip_grad(x ** 2) * c)           # d/d(x^2) = c, clipped to [-1, 1]
    v = np.array([1.5, -2.0, 0.5])
    val, g = fc.function([x], [cost, fc.grad(cost, x)])(v)
    np.testing.assert_allclose(val, np.sum(v ** 2 * c))
    np.testing.assert_allclose(g, np.clip(c, -1, 1) * 2 * v)
    # Reverse-mode Jacobians use the rule too; forward mode needs a jvp rule.
    J = fc.function([x], fc.jacobian(clip_grad(x) * 4.0, x, mode="rev"))(v)
    np.testing.assert_allclose(J, np.eye(3))
    with pytest.raises(fc.GradError, match="custom_vjp has no jvp rule"):
        fc.jvp(clip_grad(x), x, fc.ones_like(x))
    with pytest.raises(fc.GradError, match="no jvp rule"):
        fc.jacobian(clip_grad(x), x, mode="fwd")


def _sigmoid(v):
    return 0.5 * (1 + np.tanh(v / 2))


# log(1 + e^x) as max(x, 0) + log1p(e^-|x|): finite everywhere, but its automatic derivative
# at 0 is 1 (maximum's tie goes to x, abs' subgradient is 0) instead of 1/2.
log1pexp = fc.custom_vjp(lambda z: fc.maximum(z, 0.0) + fc.log1p(fc.exp(-abs(z))),
                         lambda xs, y, g: [g * fc.sigmoid(xs[0])],
                         jvp=lambda xs, y, ts: ts[0] * fc.sigmoid(xs[0]))


def test_custom_vjp_for_a_numerically_delicate_function():
    x, t = fc.input("x", (5,)), fc.input("t", (5,))
    v = np.array([-800.0, -1.0, 0.0, 2.0, 800.0])
    plain = fc.maximum(x, 0.0) + fc.log1p(fc.exp(-abs(x)))
    val, g, g_plain, j, gg = fc.function([x, t], [
        log1pexp(x), fc.grad(fc.sum(log1pexp(x)), x), fc.grad(fc.sum(plain), x),
        fc.jvp(log1pexp(x), x, t),
        fc.grad(fc.sum(fc.grad(fc.sum(log1pexp(x)), x)), x)])(v, np.full(5, 2.0))
    np.testing.assert_allclose(val, np.logaddexp(0, v), rtol=1e-15)
    np.testing.assert_allclose(g, _sigmoid(v), rtol=1e-15)
    assert g_plain[2] == 1.0                        # the automatic derivative is wrong at 0
    np.testing.assert_allclose(j, 2 * _sigmoid(v), rtol=1e-15)
    # grad of grad goes through the rule's own graph: sigmoid' = s (1 - s).
    np.testing.assert_allclose(gg, _sigmoid(v) * (1 - _sigmoid(v)), rtol=1e-12, atol=1e-300)
    H = fc.function([x], fc.hessian(fc.sum(log1pexp(x)), x))(v)
    np.testing.assert_allclose(H, np.diag(_sigmoid(v) * (1 - _sigmoid(v))), atol=1e-300)


def test_custom_vjp_with_two_inputs_and_rule_errors():
    def prod2_jvp(xs, y, ts):  # a tangent is None where the input has none (see below)
        terms = [t * x for t, x in zip(ts, xs[::-1]) if t is not None]
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]
    prod2 = fc.custom_vjp(lambda a, b: a * b, lambda xs, y, g: [g * xs[1], g * xs[0]],
                          jvp=prod2_jvp)
    err = fc.check_grad(lambda a, b: fc.sum(fc.sin(prod2(a, b))), [np.array([0.3, 1.2]),
                                                                  np.array([-0.5, 0.7])], order=2)
    assert err < 1e-6
    short = fc.custom_vjp(lambda a, b: a * b, lambda xs, y, g: [g])
    a, b = fc.input("a", (2,)), fc.input("b", (2,))
    with pytest.raises(fc.GradError, match="1 cotangents for 2 inputs"):
        fc.grad(fc.sum(short(a, b)), a)


def test_custom_jvp_rule_gets_zero_tangents_for_inputs_without_one():
    prod2 = fc.custom_vjp(lambda a, b: a * b, lambda xs, y, g: [g * xs[1], g * xs[0]],
                          jvp=lambda xs, y, ts: ts[0] * xs[1] + xs[0] * ts[1])
    a, b, t = fc.input("a", (2,)), fc.input("b", (2,)), fc.input("t", (2,))
    j = fc.jvp(prod2(a, b), a, t)                   # b has no tangent
    got = fc.function([a, b, t], j)(np.ones(2), np.array([2.0, 3.0]), np.ones(2))
    np.testing.assert_allclose(got, [2.0, 3.0])


# -- check_grad: modes and orders ---------------------------------------------------------------
RNG = np.random.default_rng(1)
A_CG, V_CG = RNG.standard_normal((4, 3)), RNG.standard_normal(3)


def tanh_cost(a, v):
    return fc.sum(fc.tanh(a @ v) ** 2)


@pytest.mark.parametrize("modes", [("rev",), ("fwd",), ("rev", "fwd"), "fwd"])
@pytest.mark.parametrize("order", [1, 2])
def test_check_grad_modes_and_orders_pass_on_correct_rules(modes, order):
    assert fc.check_grad(tanh_cost, [A_CG, V_CG], modes=modes, order=order) < 1e-6


def test_check_grad_forward_differences_are_looser():
    err = fc.check_grad(tanh_cost, [A_CG, V_CG], method="forward", order=2)
    assert 1e-9 < err < 1e-4


def test_check_grad_catches_a_wrong_custom_vjp():
    # sin with the derivative sin instead of cos: reverse mode must see it.
    wrong = fc.custom_vjp(fc.sin, lambda xs, y, g: [g * fc.sin(xs[0])])
    assert fc.check_grad(lambda x: fc.sum(wrong(x)), [V_CG], modes=("rev",)) > 0.1
    with pytest.raises(fc.GradError, match="jvp rule"):     # and fwd asks for a jvp rule
        fc.check_grad(lambda x: fc.sum(wrong(x)), [V_CG])


def test_check_grad_catches_a_wrong_jvp_rule_in_forward_mode():
    bad_jvp = fc.custom_vjp(fc.sin, lambda xs, y, g: [g * fc.cos(xs[0])],
                            jvp=lambda xs, y, ts: ts[0] * fc.sin(xs[0]))
    cost = lambda x: fc.sum(bad_jvp(x))  # noqa: E731
    assert fc.check_grad(cost, [V_CG], modes=("rev",)) < 1e-8
    assert fc.check_grad(cost, [V_CG], modes=("fwd",)) > 0.1
    assert fc.check_grad(cost, [V_CG]) > 0.1


def test_check_grad_order_2_catches_a_wrong_second_derivative():
    # Right first derivative (cos), but stop_gradient hides it from the next order.
    frozen = fc.custom_vjp(fc.sin, lambda xs, y, g: [g * fc.stop_gradient(fc.cos(xs[0]))],
                           jvp=lambda xs, y, ts: ts[0] * fc.stop_gradient(fc.cos(xs[0])))
    cost = lambda x: fc.sum(frozen(x))  # noqa: E731
    assert fc.check_grad(cost, [V_CG], order=1) < 1e-8
    for modes in (("rev",), ("fwd",)):
        assert fc.check_grad(cost, [V_CG], modes=modes, order=2) > 0.5


def test_check_grad_order_2_checks_the_blocks_between_arguments():
    # d2/da db of sum(a * b^2) = diag(2b): only the cross block is nonzero for a.
    err = fc.check_grad(lambda a, b: fc.sum(a * b ** 2), [V_CG, V_CG[::-1].copy()], order=2,
                        modes=("rev",))
    assert err < 1e-6


def test_check_grad_rejects_bad_options():
    with pytest.raises(ValueError, match="modes"):
        fc.check_grad(tanh_cost, [A_CG, V_CG], modes=("reverse",))
    with pytest.raises(ValueError, match="order"):
        fc.check_grad(tanh_cost, [A_CG, V_CG], order=3)


def test_op_table_rows_are_all_present():
    # The ops of second-order methods have rows (and so jvp, vjp and batching tests above).
    for name in ("solve_vec", "inv", "slogdet_logabsdet", "eye_plus", "diag_embed", "diag_part",
                 "outer", "trace", "norm_vec", "norm_fro", "topk_values", "take_along_axis",
                 "stop_gradient_value", "custom_vjp_value"):
        assert name in BY_NAME


def test_jacobian_through_take_with_indices_of_unknown_length():
    """The Jacobian's rows are as many as the indices, known only at run time: take and
    take_grad batch with that size as a value (fuzz seed 1213), axis given or not."""
    x = fc.input("x", (2, 3))
    idx = fc.input("idx", (None,), dtype="int64")
    xv = np.arange(6.0).reshape(2, 3) / 7
    for axis in (None, 1):
        y = fc.take(fc.sin(x), idx, axis=axis)
        f = fc.function([x, idx], fc.jacobian(y, x))
        for iv in (np.array([5, 0, 5]), np.array([1]), np.array([2, 0, 5])):
            iv = iv if axis is None else iv % 3
            got = f(xv, iv)
            want = np.zeros(got.shape)
            for k in np.ndindex(*got.shape[:-2]):
                e = np.zeros_like(xv)
                if axis is None:
                    e.flat[iv[k[0]]] = np.cos(xv.flat[iv[k[0]]])
                else:
                    e[k[0], iv[k[1]]] = np.cos(xv[k[0], iv[k[1]]])
                want[k] = e
            np.testing.assert_allclose(got, want, atol=1e-15)


def test_jacobian_and_hessian_with_several_unknown_dimensions():
    """y and x both of run-time size: the result's shape is read from them as values."""
    x = fc.input("x", (None, 3))
    f = fc.function([x], [fc.jacobian(fc.tanh(x) * 2, x),
                          fc.hessian(fc.sum(fc.tanh(x) ** 3), x)])
    for n in (2, 1, 2):
        xv = np.linspace(-1, 1, 3 * n).reshape(n, 3)
        j, h = f(xv)
        d = 2 * (1 - np.tanh(xv) ** 2)
        want = np.zeros((n, 3, n, 3))
        for k in np.ndindex(n, 3):
            want[k + k] = d[k]
        np.testing.assert_allclose(j, want, atol=1e-14)
        t = np.tanh(xv)
        dd = 3 * (2 * t * (1 - t ** 2) ** 2 - 2 * t ** 3 * (1 - t ** 2))  # d2/dx2 tanh^3
        want_h = np.zeros((n, 3, n, 3))
        for k in np.ndindex(n, 3):
            want_h[k + k] = dd[k]
        np.testing.assert_allclose(h, want_h, atol=1e-12)


def test_grad_of_a_disconnected_tensor_warns_by_default():
    """Zeros with a warning that names the tensor and points at the user's line; 'zero'
    silences it, 'raise' (Theano's default, and T.grad's) makes it an error."""
    import warnings
    x = fc.input("x", (3,))
    w, v = fc.param("w", np.ones(3)), fc.param("v", np.ones(3))
    cost = fc.sum(x * w)
    with pytest.warns(fc.DisconnectedGradientWarning, match="does not depend on v") as rec:
        gw, gv = fc.grad(cost, [w, v])
    assert rec[0].filename == __file__
    np.testing.assert_array_equal(fc.function([x], gv)(np.ones(3)), np.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fc.grad(cost, [w, v], disconnected="zero")
    with pytest.raises(fc.GradError, match="does not depend on v"):
        fc.grad(cost, [w, v], disconnected="raise")


def test_hessian_through_a_run_time_reshape_of_a_size_0_tensor():
    """Batching reshape(n, -1) over an empty batch spells the -1 out (NumPy cannot infer it
    beside a 0): the Hessian of a size-0 input is empty, not an error (fuzz seed 1301)."""
    x, n = fc.input("x", (3, 0)), fc.input("n", (), dtype="int64")
    cost = fc.sum(fc.expm1(x.reshape((n, -1)) ** 2 + 0.5))
    for level in ("O0", "O2"):
        f = fc.function([x, n], [fc.hessian(cost, x), fc.hvp(cost, x, fc.ones_like(x))],
                        optimize=level)
        h, hv = f(np.zeros((3, 0)), np.int64(3))
        assert h.shape == (3, 0, 3, 0) and hv.shape == (3, 0)


def test_jvp_of_an_op_broadcast_past_its_tangent_by_a_run_time_size():
    """where(c, relu(x), y) with x (1, None) = (1, 1) and y (3,): the output is (1, 3) at run
    time though its static shape is x's; the tangent from x alone must be broadcast to it, and
    equal jacobian @ v (fuzz seed 1401, graph 2002969076: the jvp came back (1, 1))."""
    x = fc.input("x", (1, None))
    y = fc.input("y", (None,))
    c = fc.input("c", (1, 1), dtype="bool")
    out = fc.where(c, fc.relu(x), y) * 2.0
    v = fc.ones_like(x)
    for level in ("O0", "O1", "O2"):
        f = fc.function([x, y, c], [out, fc.jacobian(out, x), fc.jvp(out, x, v)], optimize=level)
        rng = np.random.default_rng(0)
        for call, (n, m) in enumerate([(1, 3), (4, 4), (1, 3)]):
            xv, yv = rng.uniform(-2, 2, (1, n)), rng.uniform(-2, 2, (m,))
            cv = np.array([[call != 1]])
            o, J, jv = f(xv, yv, cv)
            assert jv.shape == o.shape == np.broadcast_shapes((1, n), (m,)), (level, call)
            np.testing.assert_allclose(jv, J.reshape(o.shape + (-1,)) @ np.ones(n), atol=0)
            np.testing.assert_allclose(jv, np.where(cv, 2.0 * (xv > 0), 0.0) + 0 * o)


def test_jacobian_of_a_size_0_tensor_through_a_run_time_reshape():
    """The batched gradient of a reshape back to a size-0 shape cannot pass NumPy a -1 batch
    size (it cannot infer one beside an empty axis): it reads the batch size instead (fuzz seed
    1304, graph 1511014990)."""
    x, n = fc.input("x", (3, 0, 0), dtype="float32"), fc.input("n", (), dtype="int64")
    y = fc.input("y", (1, 0), dtype="float32")
    out = x.reshape((n, -1)) * y
    for level in ("O0", "O2"):
        f = fc.function([x, n, y], [fc.jacobian(out, x), fc.jvp(out, x, fc.ones_like(x))],
                        optimize=level)
        for _ in range(3):
            J, jv = f(np.zeros((3, 0, 0), "f4"), np.int64(3), np.zeros((1, 0), "f4"))
            assert J.shape == (3, 0, 3, 0, 0) and jv.shape == (3, 0)
