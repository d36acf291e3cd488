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


@pytest.mark.parametrize("mode", ["max", "sum", "average_inc_pad", "average_exc_pad"])
@pytest.mark.parametrize("ignore_border,pad", [(True, (0, 0)), (True, (1, 1)),
                                                (False, (0, 0))])
def test_theano_pool_2d_modes(mode, ignore_border, pad):
    import flowc.theano as theano
    import flowc.theano.tensor as T
    from flowc.theano.tensor.signal import pool
    x = T.tensor3("x")  # one leading axis, pooled over like a channel
    y = pool.pool_2d(T.specify_shape(x, (3, 7, 6)), ws=(3, 2), ignore_border=ignore_border, stride=(2, 2), pad=pad,
                     mode=mode)
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
