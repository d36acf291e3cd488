"""The O2 lowerings of conv (flowc/passes/conv_columns.py, the specialize pass's conv_bias):
a forward conv's im2col columns shared with its weight gradient, and a per-channel bias added
in the conv's GEMM. Each is checked against O0 (the plain conv, bias added after) on calls 1-3
with fresh inputs, values, gradients and SGD updates, over a grid of geometries; the kernels
alone against the loop reference; the lowering on the fake GPU against the CPU."""
import numpy as np
import pytest

import flowc as fc
import flowc_runtime.cpu.conv as kconv
from opinfo import conv_ref

CASES = [  # x shape, w shape, conv kwargs
    ((2, 3, 9, 8), (4, 3, 3, 3), dict(padding=1)),
    ((3, 2, 11, 10), (5, 2, 3, 2), dict(stride=(2, 1), padding=((1, 0), (2, 1)),
                                         dilation=(1, 2))),
    ((2, 3, 7, 7), (4, 3, 3, 3), dict(stride=2, flip=True, lhs_dilation=2,
                                       padding=((2, -1), (0, 1)))),
    ((2, 1, 6, 6), (2, 1, 3, 3), dict(stride=2)),
    ((4, 2, 13), (3, 2, 4), dict(stride=3, padding=((0, 2),))),          # 1-D
    ((2, 2, 5, 4, 6), (3, 2, 2, 3, 2), dict(padding=1, dilation=(1, 1, 2))),  # 3-D
]


def step(xs, ws, kw, level, bias=True, batch_known=True):
    """A tanh conv layer's loss, gradients and an SGD update of w and b."""
    r = np.random.default_rng(0)
    # batch_known: True (every size), False (the batch at run time), None (the channels only)
    decl = {True: xs, False: (None,) + xs[1:], None: (None, xs[1]) + (None,) * (len(xs) - 2)}
    x = fc.input("x", decl[batch_known])
    w = fc.param("w", r.standard_normal(ws))
    b = fc.param("b", np.linspace(-1, 1, ws[0]))
    z = fc.conv(x, w, **kw)
    if bias:
        z = z + fc.reshape(b, (1, -1) + (1,) * (len(xs) - 2))
    y = fc.tanh(z)
    loss = fc.sum(y * y) + fc.sum(b * b)
    gx, gw, gb = fc.grad(loss, [x, w, b])
    return fc.function([x], [y, loss, gx, gw], updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)],
                       optimize=level)


def fired(f):
    return f.explain().split("fired:")[1].split("\n")[0]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("bias", [True, False])
def test_shared_columns_equal_the_plain_convs(case, bias):
    xs, ws, kw = CASES[case]
    f2, f0 = step(xs, ws, kw, "O2", bias), step(xs, ws, kw, "O0", bias)
    assert "share_conv_columns x1" in fired(f2)
    assert ("conv_bias x1" in fired(f2)) == bias
    r = np.random.default_rng(case)
    for call in range(3):  # the updates move w and b: each call sees new parameters
        xv = r.standard_normal(xs)
        for a, c in zip(f2(xv), f0(xv)):
            np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-11, err_msg=f"call {call}")


def test_the_columns_are_a_planned_buffer_and_the_weight_gradient_a_gemm():
    xs, ws, kw = CASES[0]
    f = step(xs, ws, kw, "O2")
    ops = [d["op"] for _, d in f.graph.nodes(data=True)]
    assert ops.count("im2col") == 1 and ops.count("conv_cols") == 1
    assert ops.count("conv_wgrad") == 1 and "conv_bias" not in ops  # the bias went in too
    f(np.ones(xs))
    mem = f.memory()
    cols_bytes = 2 * 8 * 9 * 8 * 3 * 9  # (N * P, C * KK) float64
    assert mem["plan"] >= cols_bytes and mem["plan"] <= 1.2 * mem["lower_bound"] + 1024


@pytest.mark.parametrize("case", range(len(CASES)))
def test_shared_columns_with_a_batch_known_only_at_run_time(case):
    """A model file's batch is symbolic: the columns are shared all the same, and calls with
    different batch sizes (a last, smaller batch) equal O0."""
    xs, ws, kw = CASES[case]
    f2 = step(xs, ws, kw, "O2", batch_known=False)
    f0 = step(xs, ws, kw, "O0", batch_known=False)
    assert "share_conv_columns x1" in fired(f2)
    r = np.random.default_rng(case)
    for n in (xs[0], 1, xs[0] + 2):
        xv = r.standard_normal((n,) + xs[1:])
        for a, c in zip(f2(xv), f0(xv)):
            np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-11, err_msg=f"batch {n}")


@pytest.mark.parametrize("why", ["groups", "unknown sizes", "forced algorithm"])
def test_no_sharing_where_it_does_not_apply(why, monkeypatch):
    xs, ws, kw = CASES[0]
    if why == "groups":
        xs, ws, kw = (2, 4, 9, 8), (4, 2, 3, 3), dict(padding=1, groups=2)
    if why == "forced algorithm":
        monkeypatch.setenv("FLOWC_CONV_ALGO", "offsets")
    known = None if why == "unknown sizes" else True  # None: only the channels known
    f2 = step(xs, ws, kw, "O2", batch_known=known)
    f0 = step(xs, ws, kw, "O0", batch_known=known)
    assert "share_conv_columns" not in fired(f2)
    xv = np.random.default_rng(1).standard_normal(xs)
    for _ in range(2):
        for a, c in zip(f2(xv), f0(xv)):
            np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-11)


def test_the_column_kernels_against_the_loop_reference():
    """im2col + conv_cols is the conv, conv_wgrad of its columns the weight gradient's conv,
    for float32 and float64, with an out= buffer, over three calls."""
    kern = kconv.make_column_kernels(np)
    r = np.random.default_rng(4)
    a = dict(stride=(2, 1), pad=((1, 0), (0, 2)), dilation=(1, 2), lhs_dilation=(1, 1))
    for dtype, tol in (("float64", 1e-12), ("float32", 2e-5)):
        for _ in range(3):
            x = r.standard_normal((3, 2, 9, 7)).astype(dtype)
            w = r.standard_normal((4, 2, 3, 2)).astype(dtype)
            b = r.standard_normal((1, 4, 1, 1)).astype(dtype)
            want = conv_ref(x, w, groups=1, flip=True, **a) + b
            osz = want.shape[2:]
            cols = kern["im2col"](x, kernel=(3, 2), **a)
            out = np.full(want.shape, np.nan, dtype)
            got = kern["conv_cols"](cols, w, b, out=out, spatial=osz, flip=True)
            assert got is out and got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
            # dw of sum(y * g): conv(x^T, g^T) with stride and dilation exchanged.
            g = r.standard_normal(want.shape).astype(dtype)
            gt = np.swapaxes(g, 0, 1)
            xt = np.swapaxes(x, 0, 1)
            dw_pad = ((1, (osz[0] - 1) * 2 + 3 - 9 - 1), (0, (osz[1] - 1) + 3 - 7))
            ref = conv_ref(xt, gt, stride=(1, 2), pad=dw_pad, dilation=(2, 1),
                           lhs_dilation=(1, 1), groups=1, flip=False)
            np.testing.assert_allclose(kern["conv_wgrad"](cols, gt, kernel=(3, 2)), ref,
                                       rtol=tol * 10, atol=tol * 10)


def test_the_lowering_on_the_fake_gpu_equals_the_cpu(monkeypatch):
    from tests import gpu_emulator as emu
    if not emu.available():
        pytest.skip("no C++ compiler (g++) for the host emulator")
    from tests import fake_cupy
    from tests.test_gpu import host, relink
    fake_cupy.install(monkeypatch)
    try:
        xs, ws, kw = CASES[1]
        f = step(xs, ws, kw, "O2")
        assert "share_conv_columns x1" in fired(f)
        cpu, gpu = relink(f, "cpu"), relink(f, "gpu")
        r = np.random.default_rng(9)
        for call in range(3):
            xv = r.standard_normal(xs)
            for a, c in zip(host(gpu(xv)), cpu(xv)):
                np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-11, err_msg=str(call))
    finally:
        fake_cupy.uninstall()


def test_max_pooling_on_the_fake_gpu_runs_the_generated_kernel(monkeypatch):
    """pool_argmax on the device is the generated kernel (one launch, no host read, so the
    step is captured as a CUDA graph), equal to the CPU's on calls 1-3, with ties, -inf and
    NaN, padding and ceil mode; its gradient too."""
    from tests import gpu_emulator as emu
    if not emu.available():
        pytest.skip("no C++ compiler (g++) for the host emulator")
    from tests import fake_cupy
    from tests.test_gpu import host, relink
    fake_cupy.install(monkeypatch)
    try:
        from flowc_runtime.gpu import conv_run
        x = fc.input("x", (2, 3, 7, 6))
        y = fc.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
        f = fc.function([x], [y, fc.grad(fc.sum(y * y), x)])
        cpu, gpu = relink(f, "cpu"), relink(f, "gpu")
        graph = relink(f, "gpu", cuda_graph=True)
        r = np.random.default_rng(3)
        for call in range(3):
            xv = r.integers(-2, 3, (2, 3, 7, 6)).astype(float)  # ties
            if call == 2:
                xv[0, 0, 1, 1], xv[1, 2, :3, :3] = np.nan, -np.inf
            want = cpu(xv)
            for run in (gpu, graph):
                for a, c in zip(host(run(xv)), want):
                    np.testing.assert_array_equal(a, c, err_msg=str(call))
        assert conv_run._pool_kernel.cache_info().currsize >= 1
        # No host read inside: the step is captured as a CUDA graph.
        assert list(graph.graph_status().values()) == ["captured"], graph.graph_status()
    finally:
        fake_cupy.uninstall()


@pytest.mark.parametrize("seed", range(8))
def test_an_input_dilated_conv_on_the_fake_gpu_runs_col2im(seed, monkeypatch):
    """A strided conv's input gradient (the conv op with lhs_dilation > 1) runs as one GEMM
    of the undilated input and the generated gathering col2im on the device, equal to the
    NumPy reference over random geometries (strides, dilations, negative pads, groups,
    flip, 1-3 spatial dims, a bias), on calls 1-3."""
    from tests import gpu_emulator as emu
    if not emu.available():
        pytest.skip("no C++ compiler (g++) for the host emulator")
    from test_conv_algorithms import random_case
    from tests import fake_cupy
    cp = fake_cupy.install(monkeypatch)
    try:
        from flowc_runtime.gpu import conv_run
        r = np.random.default_rng(3000 + seed)
        while True:
            xs, ws, a = random_case(r, depthwise=seed % 4 == 3)
            if any(u > 1 for u in a["lhs_dilation"]):
                break
        ref = kconv.make_conv(np, choose=False)
        conv_run._col2im_kernel.cache_clear()
        for call in range(3):
            x, w = r.standard_normal(xs), r.standard_normal(ws)
            b = r.standard_normal(ws[0]) if call == 2 else None
            want = ref(x, w, b, **a)
            got = conv_run.conv(cp.asarray(x), cp.asarray(w),
                                None if b is None else cp.asarray(b), **a).get()
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=str(a))
        assert conv_run._col2im_kernel.cache_info().currsize == 1
    finally:
        fake_cupy.uninstall()


@pytest.mark.parametrize("case", range(len(CASES)))
def test_a_conv_without_its_weight_gradient_is_lowered_alone(case):
    """Inference (no gradient), and grouped convs: every conv the rule runs as im2col
    becomes im2col + conv_cols (its window copy a planned buffer), equal bit for bit to the
    conv kernel's im2col on calls 1-3 with the batch changing."""
    xs, ws, kw = CASES[case]
    r = np.random.default_rng(case)
    x = fc.input("x", (None,) + xs[1:])
    w = fc.param("w", r.standard_normal(ws))
    y = fc.tanh(fc.conv(x, w, **kw))
    f2, f1 = fc.function([x], y), fc.function([x], y, optimize="O1")
    ops = [d["op"] for _, d in f2.graph.nodes(data=True)]
    if "conv" in ops:  # the rule picks another algorithm: nothing to lower
        assert "conv_columns" not in fired(f2)
        return
    assert "conv_columns x1" in fired(f2) and ops.count("im2col") == 1
    for n in (xs[0], 1, xs[0] + 1):
        xv = r.standard_normal((n,) + xs[1:])
        np.testing.assert_array_equal(f2(xv), f1(xv))


def test_grouped_convs_are_lowered_with_their_gradients():
    r = np.random.default_rng(2)
    xs, ws = (3, 4, 7, 6), (6, 2, 3, 3)
    x = fc.input("x", xs)
    w = fc.param("w", r.standard_normal(ws))
    loss = fc.sum(fc.tanh(fc.conv2d(x, w, padding=1, groups=2, stride=(2, 1))) ** 2)
    outs = [loss] + fc.grad(loss, [x, w])
    f2, f0 = fc.function([x], outs), fc.function([x], outs, optimize="O0")
    assert "conv_columns" in fired(f2)
    for _ in range(3):
        xv = r.standard_normal(xs)
        for a, c in zip(f2(xv), f0(xv)):
            np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-11)


def test_a_reversing_transpose_of_a_conv_in_the_gradient():
    """x.T (a transpose with every axis reversed, axes=None) on a conv's output puts an
    axes-less transpose where the pass walks back from a weight gradient's input (fuzz seed
    1309: O2 compile crashed); O2 equals O0 on calls 1-3."""
    r = np.random.default_rng(3)
    x = fc.input("x", (2, 1, 6, 6))
    w = fc.input("w", (1, 1, 1, 3))
    c = fc.input("c", (1, 1, 8, 2))
    y = fc.conv(x, w, stride=(1, 2), padding=((2, 0), (2, 0)), dilation=(1, 2))
    loss = fc.sum(fc.exp(fc.tanh(c - y.T)))
    outs = [loss] + fc.grad(loss, [x, w, c])
    f2, f0 = fc.function([x, w, c], outs), fc.function([x, w, c], outs, optimize="O0")
    for _ in range(3):
        args = [r.uniform(-2, 2, s) for s in ((2, 1, 6, 6), (1, 1, 1, 3), (1, 1, 8, 2))]
        for a, b in zip(f2(*args), f0(*args)):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
