"""Max pooling's gradient scatter over disjoint windows (put_along_axis_grad with
`unique`, set by the O2 specialize pass) and the gather into a planned buffer
(take_along_axis with out=): against the summing scatter and O0 bit for bit on calls 1-3,
on the CPU and the fake GPU; and the col2im conv's cached scatter plan on calls 1-3."""
import numpy as np
import pytest

import flowc as fc
import flowc_runtime.cpu.conv as kconv
from flowc_runtime.cpu import kernels_extra as kx


def _marked(f):
    return "unique_scatter" in f.explain()


@pytest.mark.parametrize("k, s, pad, ceil, disjoint", [
    ((2, 2), (2, 2), 0, False, True),       # the CNN case
    ((2, 2), (3, 2), 1, True, True),        # strides past the kernel, padding, ceil mode
    ((1,), (1,), 0, False, True),           # 1-D, windows of one
    ((2, 2, 2), (2, 2, 2), 1, False, True),  # 3-D
    ((3, 3), (2, 2), 1, False, False),      # overlapping: picks may repeat, so a sum
    ((2, 3), (2, 2), 0, False, False),      # overlapping along one dim only
])
@pytest.mark.parametrize("decl", ["known", "batch", "spatial"])
def test_o2_assigns_only_where_windows_are_disjoint(k, s, pad, ceil, disjoint, decl):
    """The pass marks the scatter exactly where stride >= kernel in every dim, with the
    batch or the spatial sizes known only at run time too; O2 equals O0 bit for bit on
    calls 1-3, NaN and inf in x and in the cotangent included."""
    nd = len(k)
    S = (5, 6, 4)[:nd]
    shape = {"known": (2, 3) + S, "batch": (None, 3) + S, "spatial": (None, 3) + (None,) * nd}
    x = fc.input("x", shape[decl])
    g = fc.input("g", (None, 3) + (None,) * nd)
    y = fc.max_pool(x, k, s, pad, ceil)
    outs = [y, fc.grad(fc.sum(y * g), x)]
    f2 = fc.function([x, g], outs, optimize="O2")
    f0 = fc.function([x, g], outs, optimize="O0")
    assert _marked(f2) == disjoint
    r = np.random.default_rng(sum(k) + sum(s) + len(decl))
    for call in range(3):
        xv = r.integers(-2, 3, (2, 3) + S).astype(float)  # many ties
        if call == 1:
            xv.flat[r.integers(0, xv.size, 4)] = [np.nan, np.inf, -np.inf, np.nan]
        gv = r.standard_normal(f0(xv, np.ones((1, 3) + (1,) * nd))[0].shape)
        if call == 2:
            gv.flat[:3] = [np.inf, -np.inf, np.nan]
        with np.errstate(invalid="ignore"):  # inf * 0 in y * g
            got, want = f2(xv, gv), f0(xv, gv)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def _distinct_rows(r, rows, k, n):
    """(rows, k) indices into rows of length n, distinct within each row, some negative."""
    idx = np.stack([r.permutation(n)[:k] for _ in range(rows)])
    return np.where(r.random(idx.shape) < 0.3, idx - n, idx)


@pytest.mark.parametrize("chunk", [None, 8])
def test_assignment_equals_the_summing_scatter(chunk, monkeypatch):
    """The unique path equals the bincount sum (every row's indices distinct), whole and
    a few rows at a time; an index out of range is an IndexError naming the axis."""
    if chunk:
        monkeypatch.setattr(kx, "CHUNK", chunk)
        monkeypatch.setattr(kx, "MIN_CHUNK", chunk)
    r = np.random.default_rng(5)
    for dtype in ("float32", "float64"):
        x = np.zeros((3, 4, 10), dtype)
        idx = _distinct_rows(r, 12, 6, 10).reshape(3, 4, 6)
        g = r.standard_normal((3, 4, 6)).astype(dtype)
        want = kx._put_along_axis_grad(x, idx, g, axis=2)
        got = kx._put_along_axis_grad(x, idx, g, axis=2, out=np.full_like(x, 7), unique=True)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(IndexError, match="axis 2 of size 10"):
        kx._put_along_axis_grad(x, np.full((3, 4, 6), 10), g, axis=2, unique=True)


def test_unique_scatter_on_the_fake_gpu(monkeypatch):
    """The GPU kernel takes `unique` (one scatter-add launch either way) and agrees."""
    from tests import fake_cupy
    r = np.random.default_rng(6)
    x = np.zeros((2, 3, 9))
    idx = _distinct_rows(r, 6, 4, 9).reshape(2, 3, 4)
    g = r.standard_normal((2, 3, 4))
    want = kx._put_along_axis_grad(x, idx, g, axis=2)
    cp = fake_cupy.install(monkeypatch)
    try:
        from flowc_runtime.gpu.kernels import KERNELS as GPU
        got = GPU["put_along_axis_grad"].fn(cp.asarray(x), cp.asarray(idx), cp.asarray(g),
                                            axis=2, unique=True)
        np.testing.assert_array_equal(got.get(), want)
        out = cp.asarray(np.full((2, 3, 4), 5.0))
        got = GPU["take_along_axis"].fn(cp.asarray(np.arange(54.0).reshape(2, 3, 9)),
                                        cp.asarray(idx), axis=2, out=out)
        np.testing.assert_array_equal(got.get(), np.take_along_axis(
            np.arange(54.0).reshape(2, 3, 9), idx, axis=2))
    finally:
        fake_cupy.uninstall()


def test_take_along_axis_into_a_buffer():
    """The gather writes into out= on its flat path and its general one (x not
    C-ordered), equal to NumPy's."""
    r = np.random.default_rng(8)
    x = r.standard_normal((3, 4, 7))
    idx = r.integers(-7, 7, (3, 4, 5))
    for xv in (x, np.asfortranarray(x)):
        out = np.empty((3, 4, 5))
        got = kx._take_along_axis(xv, idx, axis=2, out=out)
        assert got is out
        np.testing.assert_array_equal(out, np.take_along_axis(x, idx % 7, axis=2))


def test_col2im_scatter_plan_is_reused_across_calls():
    """col2im's per-geometry scatter plan (cached) gives the im2col algorithm's values on
    calls 1-3 with new values, bias, groups, input dilation and negative pads."""
    r = np.random.default_rng(9)
    conv = kconv.make_conv(np)
    geoms = [((2, 4, 5, 6), (6, 2, 3, 2), dict(stride=(1, 2), pad=((1, -1), (2, 0)),
                                               dilation=(1, 2), lhs_dilation=(2, 1),
                                               groups=2)),
             ((3, 8, 4), (2, 8, 3), dict(stride=(1,), pad=((2, 2),), dilation=(1,),
                                         lhs_dilation=(3,), groups=1))]
    for xs, ws, a in geoms:
        for _ in range(3):
            x, w = r.standard_normal(xs), r.standard_normal(ws)
            b = r.standard_normal(ws[0])
            want = conv(x, w, b, algorithm="im2col", **a)
            np.testing.assert_allclose(conv(x, w, b, algorithm="col2im", **a), want,
                                       rtol=1e-12, atol=1e-12)


def test_a_cnn_layer_with_a_run_time_batch_is_marked():
    """conv -> relu -> max pooling with the batch known only at run time: the pooling's
    batch is read from another tensor of its shape class (the conv's columns), and the
    scatter is still marked (its rows are the pooled input's own (N, C)); O2 equals O0
    on calls 1-3 with the batch changing."""
    r = np.random.default_rng(12)
    x = fc.input("x", (None, 3, 9, 9))
    w = fc.param("w", r.standard_normal((4, 3, 3, 3)))
    z = fc.max_pool2d(fc.relu(fc.conv2d(x, w, padding=1)), 2)
    outs = [fc.sum(z * z), fc.grad(fc.sum(z * z), w)]
    f2, f0 = fc.function([x], outs), fc.function([x], outs, optimize="O0")
    assert _marked(f2)
    for n in (2, 5, 1):
        xv = r.standard_normal((n, 3, 9, 9))
        for a, b in zip(f2(xv), f0(xv)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
