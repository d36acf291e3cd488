"""Shapes are values: x.shape[i] is an int64 scalar read at run time where the dim is not
known, usable in arithmetic, reshape, arange, zeros/alloc, slicing bounds and indexing; every
check runs at O0, O1 and O2 on calls 1-3 against NumPy (and finite differences for grads)."""
import numpy as np
import pytest

import flowc as fc

LEVELS = ("O0", "O1", "O2")
rng = np.random.default_rng(7)


def run3(inputs, outputs, args_per_call, reference, **kw):
    """Compile at every level and compare calls 1-3 with the NumPy reference."""
    for level in LEVELS:
        f = fc.function(inputs, outputs, optimize=level, single_output=False, **kw)
        for args in args_per_call:
            got = f(*args)
            want = reference(*args)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert np.shape(g) == np.shape(w), (level, args)
                np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_shape_reads_ints_where_known_and_tensors_elsewhere():
    x = fc.input("x", (None, 3))
    n, k = x.shape
    assert k == 3 and isinstance(k, int)
    assert isinstance(n, fc.Tensor) and n.dtype == "int64" and n.ndim == 0
    assert x.shape[0] is not None and x.shape == (None, 3)  # compares as the static shape
    assert x.shape[0].id == n.id  # one node per tensor and axis
    assert x.type.shape == (None, 3)


def test_shape_values_in_arithmetic_reshape_arange_and_zeros():
    x = fc.input("x", (None, 3, 4))
    v = fc.input("v", (None,))
    n = x.shape[0]
    outs = [fc.shape(x), n * 2 + 1, n > 3, fc.sum(v) / v.shape[0],
            x.reshape((n, -1)), fc.zeros((n, 3)), fc.ones((2, v.shape[0]), "int32"),
            fc.full((n,), 7.0), fc.alloc(v, n, v.shape[0]), fc.arange(v.shape[0]),
            fc.arange(1, n, 2), fc.eye(n), fc.broadcast_to(v, (n, v.shape[0]))]
    assert outs[4].type.shape == (None, 12)  # the -1 stays known
    assert outs[5].type.shape == (None, 3)

    def ref(xv, vv):
        m = xv.shape[0]
        return [np.array(xv.shape), m * 2 + 1, m > 3, vv.sum() / vv.shape[0],
                xv.reshape(m, -1), np.zeros((m, 3)), np.ones((2, len(vv)), "int32"),
                np.full((m,), 7.0), np.broadcast_to(vv, (m, len(vv))), np.arange(len(vv)),
                np.arange(1, m, 2), np.eye(m), np.broadcast_to(vv, (m, len(vv)))]
    calls = [(rng.standard_normal((m, 3, 4)), rng.standard_normal(k))
             for m, k in ((5, 4), (2, 7), (6, 1))]
    run3([x, v], outs, calls, ref)


def test_dtypes_follow_numpy():
    v = fc.input("v", (None,), "float32")
    assert v.shape[0].dtype == "int64"
    assert (fc.sum(v) / v.shape[0]).dtype == "float64"  # as NumPy and Theano promote
    assert fc.zeros((v.shape[0],), "float32").dtype == "float32"


def test_the_classic_theano_nll_line_and_its_gradient():
    p = fc.input("p", (None, 4))
    y = fc.input("y", (None,), "int64")
    nll = -fc.mean(fc.log(p)[fc.arange(y.shape[0]), y])
    g = fc.grad(nll, p)

    def ref(pv, yv):
        n = len(yv)
        gp = np.zeros_like(pv)
        gp[np.arange(n), yv] = -1.0 / (n * pv[np.arange(n), yv])
        return [-np.mean(np.log(pv[np.arange(n), yv])), gp]
    calls = []
    for n in (3, 5, 1):
        pv = rng.uniform(0.1, 1.0, (n, 4))
        calls.append((pv, rng.integers(0, 4, n)))
    run3([p, y], [nll, g], calls, ref)


def test_slices_with_symbolic_bounds_and_their_gradient():
    d = fc.input("d", (None, 3))
    i = fc.scalar("i", "int64")
    part = d[i * 2:(i + 1) * 2]
    assert part.type.shape == (None, 3)
    cost = fc.sum(part ** 2)
    g = fc.grad(cost, d)
    step = d[::i + 1, i]

    def ref(dv, iv):
        gd = np.zeros_like(dv)
        gd[iv * 2:(iv + 1) * 2] = 2 * dv[iv * 2:(iv + 1) * 2]
        return [dv[iv * 2:(iv + 1) * 2], gd, dv[::iv + 1, iv]]
    dv = rng.standard_normal((7, 3))
    run3([d, i], [part, g, step], [(dv, np.int64(0)), (dv, np.int64(2)), (dv, np.int64(1))],
         ref)
    fc.check_grad(lambda dd: fc.sum(fc.sin(dd[fc.constant(np.int64(1)):][:2])), [dv])


def test_minibatches_through_givens_train_like_slicing_by_hand():
    X = rng.standard_normal((40, 3))
    Y = X @ np.array([1.0, -2.0, 0.5]) + 0.1
    data = fc.param("data", X)
    target = fc.param("target", Y)
    w = fc.param("w", np.zeros(3))
    b = fc.param("b", 0.0)
    x, y = fc.input("x", (None, 3)), fc.input("y", (None,))
    i = fc.scalar("i", "int64")
    cost = fc.mean((x @ w + b - y) ** 2)
    gw, gb = fc.grad(cost, [w, b])
    bs = 10
    f = fc.function([i], cost, updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)],
                    givens={x: data[i * bs:(i + 1) * bs], y: target[i * bs:(i + 1) * bs]})
    wv, bv = np.zeros(3), 0.0
    for epoch in range(3):
        for k in range(4):
            xb, yb = X[k * bs:(k + 1) * bs], Y[k * bs:(k + 1) * bs]
            r = xb @ wv + bv - yb
            want = np.mean(r ** 2)
            wv, bv = wv - 0.1 * 2 * xb.T @ r / bs, bv - 0.1 * 2 * r.mean()
            np.testing.assert_allclose(f(k), want, rtol=1e-12)
    np.testing.assert_allclose(w.get_value(), wv, rtol=1e-12)


def test_integer_scalar_tensor_indexes_like_an_int():
    x = fc.input("x", (None, 3))
    i = fc.scalar("i", "int64")
    run3([x, i], [x[i], x[:, i], x[i, i - 1]], [(np.arange(12.).reshape(4, 3), np.int64(k))
                                                for k in (1, 2, -1)],
         lambda xv, iv: [xv[iv], xv[:, iv], xv[iv, iv - 1]])
    f = fc.function([x, i], x[i])
    with pytest.raises(IndexError, match="out of bounds"):
        f(np.zeros((2, 3)), np.int64(5))


def test_shape_only_reads_fold_when_known_and_keep_no_buffer():
    x = fc.input("x", (4, 3))
    assert x.shape == (4, 3) and all(isinstance(d, int) for d in x.shape)
    s = fc.shape(x)
    assert s.op == "const"
    y = fc.input("y", (None, 3))
    h = fc.exp(y) * 2
    f = fc.function([y], [h.shape[0] * 1, fc.shape(h)])
    # The shape of exp(y) * 2 is y's shape: no exp is computed for the shape alone.
    assert [i.kernel for i in f.program.instrs if i.kernel in ("exp", "mul", "fused")] == []
    n, s = f(np.ones((5, 3)))
    assert n == 5 and s.tolist() == [5, 3]


def test_none_or_non_tensor_outputs_are_errors_naming_the_position():
    x = fc.input("x", (None,))
    with pytest.raises(fc.InputError, match="output 1 is None"):
        fc.function([x], [x, None])
    with pytest.raises(fc.InputError, match="output 0 is 3"):
        fc.function([x], [3])
    f = fc.function([x], x.shape)  # a Shape is one int64 vector output
    assert f(np.ones(4)).tolist() == [4]


def test_bad_sizes_are_clear_errors_at_build_or_call_time():
    x = fc.input("x", (None,))
    with pytest.raises(fc.ShapeError, match="negative"):
        fc.zeros((-1, 3))
    with pytest.raises(fc.ShapeError, match="integer scalar"):
        fc.zeros((x.shape[0] * 1.5,))
    n = fc.scalar("n", "int64")
    f = fc.function([n], fc.zeros((n, 2)))
    assert f(np.int64(3)).shape == (3, 2)
    with pytest.raises(ValueError, match="negative"):
        f(np.int64(-2))
    g = fc.function([x, n], x.reshape((n, -1)))
    assert g(np.ones(6), np.int64(2)).shape == (2, 3)
    with pytest.raises(ValueError, match="cannot reshape"):
        g(np.ones(7), np.int64(2))


def test_batching_and_jacobians_through_symbolic_sizes():
    x = fc.input("x", (None,))
    y = fc.reshape(x, (x.shape[0], 1)) * fc.ones((x.shape[0], 2))
    J = fc.jacobian(fc.sum(y, axis=1), x)
    f = fc.function([x], J)
    for n in (2, 3, 4):
        np.testing.assert_allclose(f(np.arange(float(n))), 2 * np.eye(n))


def test_random_draws_with_sizes_read_at_run_time():
    x = fc.input("x", (None, 2))
    n = fc.scalar("n", "int64")
    s = fc.random.Stream(5)
    u = s.uniform((x.shape[0], 3))
    p = s.permutation(n)
    c = s.choice(np.array([1.0, 2.0, 4.0]), size=(n,))
    f = fc.function([x, n], [u, p, c])
    seen = set()
    for k in (3, 5, 4):
        uu, pp, cc = f(np.zeros((k, 2)), np.int64(k + 1))
        assert uu.shape == (k, 3) and sorted(pp.tolist()) == list(range(k + 1))
        assert cc.shape == (k + 1,) and set(cc.tolist()) <= {1.0, 2.0, 4.0}
        seen.add(float(uu[0, 0]))
    assert len(seen) == 3  # the stream advances on every call
    state = s.state.get_value()
    with pytest.raises(ValueError, match="negative"):
        f(np.zeros((2, 2)), np.int64(-1))
    np.testing.assert_array_equal(s.state.get_value(), state)  # a failed call advances nothing


def test_lop_of_a_product_needs_no_weight_input():
    # Theano's gradients page: Lop(dot(x, W), W, v) reads x and v only. Matrix axes never
    # broadcast, so matmul's gradient is W's shape without reading W.
    W = fc.input("W", (None, None))
    x, v = fc.input("x", (None,)), fc.input("v", (None,))
    X, V = fc.input("X", (None, None)), fc.input("V", (None, None))
    f = fc.function([v, x], fc.Lop(x @ W, W, v))
    np.testing.assert_array_equal(f(np.array([2.0, 2.0]), np.array([0.0, 1.0])),
                                  [[0, 0], [2, 2]])
    g = fc.function([V, X], fc.Lop(X @ W, W, V))
    xv, vv = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    for _ in range(3):
        np.testing.assert_allclose(g(vv, xv), xv.T @ vv, rtol=1e-12)


@pytest.mark.parametrize("level", LEVELS)
def test_saved_program_with_symbolic_sizes_loads_and_runs(tmp_path, level):
    import flowc_runtime as runtime
    x = fc.input("x", (None, 3, 2))
    i = fc.scalar("i", "int64")
    n = x.shape[0]
    outs = [fc.shape(x), x.reshape((n, -1)), x.reshape((i + 1, -1)), fc.zeros((n, i)),
            fc.arange(i, n), x[i:n - i], x.at[i:].add(1.0), n * 1.5]
    f = fc.function([x, i], outs, optimize=level)
    base = str(tmp_path / "m")
    f.save(base)
    g = runtime.load(base)
    xv = np.arange(24.0).reshape(4, 3, 2)
    for _ in range(3):
        for a, b in zip(g(xv, np.int64(1)), f(xv, np.int64(1))):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(IndexError):  # an index read at run time is bounds-checked
        fc.function([x, i], x[i])(xv, np.int64(9))


def test_shape_reads_of_known_sizes_fold_in_hand_built_graphs():
    from flowc.ops.build import apply
    x = fc.input("x", (4, 3))
    d = apply("dim", [x], axis=0)
    s = apply("shape", [x])
    for level, kernels in (("O0", {"dim", "shape"}), ("O1", set())):
        f = fc.function([x], [d * 2, s], optimize=level)
        assert {ins.kernel for ins in f.program.instrs} & {"dim", "shape"} == kernels
        a, b = f(np.zeros((4, 3)))
        assert a == 8 and b.tolist() == [4, 3]


def test_a_shape_read_keeps_no_buffer_alive():
    from flowc_runtime.memory.liveness import value_args
    a, b = fc.input("a", (None, 8)), fc.input("b", (8, 8))
    h = fc.tanh(a @ b)  # no input shares h's shape: the read is of h itself
    out = fc.sum(h) + fc.cast(h.shape[0], "float64")
    f = fc.function([a, b], out, optimize="O0")
    dims = [ins for ins in f.program.instrs if ins.kernel == "dim"]
    assert dims and all(value_args(ins) == [] for ins in dims)
    for n in (3, 5, 2):
        av, bv = np.ones((n, 8)), np.eye(8)
        assert np.isclose(f(av, bv), np.tanh(av @ bv).sum() + n)


@pytest.mark.parametrize("level", ("O1", "O2"))
def test_shape_reads_are_answered_from_operands(level):
    # Theano's shape feature: a tensor read only for its shape is not computed.
    a, b = fc.input("a", (None, 8)), fc.input("b", (8, None))
    n = fc.scalar("n", "int64")
    h = fc.tanh(a @ b)
    r = fc.reshape(h, (n, -1))
    outs = [h.shape[0] * 1, h.shape[1] + 0, fc.shape(fc.exp(a)), fc.sum(h, axis=1).shape[0] * 1,
            r.shape[0] * 1, fc.zeros((n, 2)).shape[0] * 1, fc.transpose(h).shape[0] * 1,
            fc.concatenate([a, a]).shape[0] * 1]
    f = fc.function([a, b, n], outs, optimize=level)
    heavy = {"tanh", "matmul", "exp", "gemm", "fused", "alloc", "reshape_dyn", "sum", "transpose",
             "concatenate"}
    assert not heavy & {ins.kernel for ins in f.program.instrs}, f.source
    for m in (3, 4, 6):
        got = f(np.ones((m, 8)), np.ones((8, 5)), np.int64(5))
        assert [int(np.asarray(g).ravel()[0]) for g in got] == [m, 5, m, m, 5, 5, 5, 2 * m]
        assert got[2].tolist() == [m, 8]
