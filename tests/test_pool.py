"""Pooling (flowc/ops/api_pool.py) against plain NumPy windows: max and average, strides
not dividing the size, padding, ceil_mode, both average-count conventions, 1-3 spatial
dims; values at O0 and O2 on calls 1-3, gradients against central differences."""
import itertools

import numpy as np
import pytest

import flowc as fc

rng = np.random.default_rng(7)


def pool_ref(x, k, s, p, ceil, how, include=True):
    """Each window of x by loops (PyTorch's semantics)."""
    nd = len(k)
    S = x.shape[2:]
    sizes = []
    for h, kk, ss, pp in zip(S, k, s, p):
        span = h + 2 * pp - kk
        o = (-(-span // ss) if ceil else span // ss) + 1
        if ceil and (o - 1) * ss >= h + pp:
            o -= 1
        sizes.append(o)
    out = np.empty(x.shape[:2] + tuple(sizes))
    for idx in itertools.product(*map(range, sizes)):
        lo = [i * ss - pp for i, ss, pp in zip(idx, s, p)]
        sl = tuple(slice(max(a, 0), min(a + kk, h)) for a, kk, h in zip(lo, k, S))
        win = x[(slice(None), slice(None)) + sl]
        if how == "max":
            out[(slice(None), slice(None)) + idx] = win.max(axis=tuple(range(2, 2 + nd)))
        else:
            if include:
                n = np.prod([min(a + kk, h + pp) - max(a, -pp) for a, kk, h, pp in
                             zip(lo, k, S, p)])
            else:
                n = np.prod([b.stop - b.start for b in sl])
            out[(slice(None), slice(None)) + idx] = win.sum(axis=tuple(range(2, 2 + nd))) / n
    return out


CASES = [((2, 3, 7, 6), (3, 2), (2, 2), (1, 0), False), ((1, 2, 8), (2,), (2,), (0,), False),
         ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1), True), ((1, 1, 5, 4, 4), (2, 2, 3), (1, 2, 1),
                                                        (1, 0, 1), True),
         ((2, 1, 6, 6), (2, 2), (2, 2), (0, 0), False)]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("how", ["max", "avg", "avg_exclude"])
def test_pooling_matches_windows_by_loops(case, how):
    shape, k, s, p, ceil = case
    x = fc.input("x", (None,) + shape[1:])
    if how == "max":
        y = fc.max_pool(x, k, s, p, ceil)
    else:
        y = fc.avg_pool(x, k, s, p, ceil, count_include_pad=how == "avg")

    def ref(v):
        return pool_ref(v, k, s, p, ceil, "max" if how == "max" else "avg", how == "avg")
    outs = [y, fc.grad(fc.sum(fc.sin(y)), x)]
    fs = [fc.function([x], outs, optimize=lv) for lv in ("O0", "O2")]
    for n in (shape[0], 1, shape[0]):
        # distinct values: no ties, so the max's gradient is unambiguous
        xv = rng.permutation(n * int(np.prod(shape[1:]))).reshape((n,) + shape[1:]) * 0.01
        num = fc.numerical_grad(lambda v: float(np.sin(ref(v)).sum()), [xv])[0]
        for f in fs:
            got, g = f(xv)
            np.testing.assert_allclose(got, ref(xv), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("how", ["max", "avg", "avg_exclude"])
def test_pooling_with_spatial_sizes_known_only_at_run_time(case, how):
    """x declared (None, C, None, ...): one function takes other sizes at each call; the
    output sizes, the padding ceil_mode needs and the average's counts are run-time values."""
    shape, k, s, p, ceil = case
    nd = len(k)
    x = fc.input("x", (None, shape[1]) + (None,) * nd)
    if how == "max":
        y = fc.max_pool(x, k, s, p, ceil)
    else:
        y = fc.avg_pool(x, k, s, p, ceil, count_include_pad=how == "avg")
    outs = [y, fc.grad(fc.sum(fc.sin(y)), x)]
    fs = [fc.function([x], outs, optimize=lv) for lv in ("O0", "O2")]
    for extra in (0, 1, 0, 2):
        size = shape[:2] + tuple(h + extra for h in shape[2:])
        xv = rng.permutation(int(np.prod(size))).reshape(size) * 0.01

        def ref(v):
            return pool_ref(v, k, s, p, ceil, "max" if how == "max" else "avg", how == "avg")
        num = fc.numerical_grad(lambda v: float(np.sin(ref(v)).sum()), [xv])[0]
        for f in fs:
            got, g = f(xv)
            np.testing.assert_allclose(got, ref(xv), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = fc.input("x", (1, 1, 2, 2))
    g = fc.function([x], fc.grad(fc.sum(fc.max_pool2d(x, 2)), x))
    np.testing.assert_array_equal(g(np.ones((1, 1, 2, 2)))[0, 0], [[1, 0], [0, 0]])


@pytest.mark.parametrize("make,match", [
    (lambda: fc.max_pool2d(fc.input("x", (1, 1, 4, 4)), 0), "at least 1"),
    (lambda: fc.max_pool2d(fc.input("x", (1, 1, 4, 4)), 2, padding=2), "half the kernel"),
    (lambda: fc.avg_pool2d(fc.input("x", (1, 4, 4)), 2), "rank 4"),
    (lambda: fc.max_pool2d(fc.input("x", (1, 1, 2, 2)), 3), "larger than the padded"),
])
def test_bad_pooling_is_an_error_naming_the_line(make, match):
    with pytest.raises(fc.ShapeError, match=match) as e:
        make()
    assert "test_pool.py" in str(e.value)


@pytest.mark.parametrize("known", [True, False], ids=["specified", "tensor3"])
@pytest.mark.parametrize("mode", ["max", "sum", "average_inc_pad", "average_exc_pad"])
@pytest.mark.parametrize("ignore_border,pad", [(True, (0, 0)), (True, (1, 1)),
                                                (False, (0, 0))])
def test_theano_pool_2d_modes(mode, ignore_border, pad, known):
    import flowc.theano as theano
    import flowc.theano.tensor as T
    from flowc.theano.tensor.signal import pool
    x = T.tensor3("x")  # one leading axis, pooled over like a channel
    y = pool.pool_2d(T.specify_shape(x, (3, 7, 6)) if known else x, ws=(3, 2),
                     ignore_border=ignore_border, stride=(2, 2), pad=pad, mode=mode)
    f = theano.function([x], y)
    xv = rng.permutation(3 * 7 * 6).reshape(3, 7, 6) * 0.1
    how = "max" if mode == "max" else "avg"
    want = pool_ref(xv[:, None], (3, 2), (2, 2), pad, not ignore_border, how,
                    mode != "average_exc_pad")[:, 0]
    if mode == "sum":
        want = pool_ref(xv[:, None], (3, 2), (2, 2), pad, not ignore_border, "avg",
                        False)[:, 0] * _sum_ones(xv.shape[1:], (3, 2), (2, 2), pad,
                                                 not ignore_border)
    np.testing.assert_allclose(f(xv), want, rtol=1e-12, atol=1e-12)


def _sum_ones(S, k, s, p, ceil):
    ones = np.ones((1, 1) + tuple(S))
    r = pool_ref(ones, k, s, p, ceil, "avg", False)  # 1 everywhere: the mean of ones
    out = np.empty(r.shape[2:])
    for idx in itertools.product(*map(range, out.shape)):
        lo = [i * ss - pp for i, ss, pp in zip(idx, s, p)]
        out[idx] = np.prod([min(a + kk, h) - max(a, 0) for a, kk, h in zip(lo, k, S)])
    return out


@pytest.mark.parametrize("seed", range(12))
def test_max_pool_by_argmax_equals_the_slices_reference_with_ties(seed):
    """fc.max_pool (pool_argmax + a gather) against the per-offset slices folded with
    maximum, on small integers (many ties): values and gradients bit for bit, calls 1-3,
    known and run-time sizes."""
    from flowc.ops.api_pool import _max_pool_slices
    r = np.random.default_rng(300 + seed)
    nd = int(r.integers(1, 4))
    k = tuple(int(v) for v in r.integers(1, 4, nd))
    s = tuple(int(v) for v in r.integers(1, 4, nd))
    p = tuple(int(r.integers(0, kk // 2 + 1)) for kk in k)
    ceil = bool(r.integers(2))
    S = tuple(int(v) for v in r.integers(max(k), 7, nd))
    x = fc.input("x", (None, 2) + (S if r.random() < 0.5 else (None,) * nd))
    xk = fc.input("xk", (None, 2) + S)
    g = fc.input("g", (None, 2) + (None,) * nd)
    outs = []
    for make, xin in ((fc.max_pool, x), (_max_pool_slices, xk)):
        y = make(xin, k, s, p, ceil)
        outs.append((xin, [y, fc.grad(fc.sum(y * g), xin)]))
    f_new = fc.function([x, g], outs[0][1], optimize="O2")
    f_ref = fc.function([xk, g], outs[1][1], optimize="O0")
    for _ in range(3):
        xv = r.integers(-2, 3, (3, 2) + S).astype(float)
        ref = f_ref(xv, np.ones((3, 2) + tuple(1 for _ in S)))
        gv = r.standard_normal(ref[0].shape)
        want, got = f_ref(xv, gv), f_new(xv, gv)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_max_pool_propagates_nan_and_ignores_padding():
    x = fc.input("x", (1, 1, 2, 3))
    f = fc.function([x], fc.max_pool2d(x, 2, 1, padding=1))
    v = np.array([[[[-np.inf, -np.inf, 1.0], [-np.inf, np.nan, -5.0]]]])
    got = f(v)[0, 0]
    want = np.array([[-np.inf, -np.inf, 1.0, 1.0], [-np.inf, np.nan, np.nan, 1.0],
                     [-np.inf, np.nan, np.nan, -5.0]])
    np.testing.assert_array_equal(got, want)


def test_per_example_gradients_through_max_pool():
    """fc.batch over examples: the batching rule of pool_argmax folds the batch into N."""
    w = fc.input("w", (2, 1, 1, 1))
    x1 = fc.input("x1", (1, 1, 4, 4))
    xb = fc.input("xb", (3, 1, 1, 4, 4))
    one = fc.grad(fc.sum(fc.max_pool2d(fc.conv2d(x1, w), 2) ** 2), w)
    f = fc.function([xb, w], fc.batch(one, {x1: xb}))
    xv, wv = rng.standard_normal((3, 1, 1, 4, 4)), rng.standard_normal((2, 1, 1, 1))
    single = fc.function([x1, w], one)
    got = f(xv, wv)
    for i in range(3):
        np.testing.assert_allclose(got[i], single(xv[i], wv), rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 2)])
def test_global_pooling_over_every_spatial_axis(shape):
    xv = rng.standard_normal(shape)
    gv = rng.standard_normal(shape[:2])
    x = fc.input("x", (None,) + shape[1:])
    axes = tuple(range(2, len(shape)))
    for keep in (False, True):
        a, m = fc.global_avg_pool(x, keepdims=keep), fc.global_max_pool(x, keepdims=keep)
        assert a.type.shape == (None, shape[1]) + ((1,) * len(axes) if keep else ())
        f = fc.function([x], [a, m] + fc.grad(fc.sum(fc.reshape(a + m, (-1, shape[1])) * gv),
                                             [x]))
        ga, gm, gx = f(xv)
        np.testing.assert_allclose(ga, xv.mean(axes, keepdims=keep), rtol=1e-12)
        np.testing.assert_array_equal(gm, xv.max(axes, keepdims=keep))
        n = int(np.prod(shape[2:]))
        is_max = xv == xv.max(axes, keepdims=True)  # random data: no ties
        want = gv.reshape(shape[:2] + (1,) * len(axes)) * (1.0 / n + is_max)
        np.testing.assert_allclose(gx, want, rtol=1e-12)
    with pytest.raises(ValueError, match=r"global_max_pool at .*: expected x \(N, C, \*spatial\) "
                                         r"of rank >= 3, got rank 2"):
        fc.global_max_pool(fc.input("v", (2, 3)))
