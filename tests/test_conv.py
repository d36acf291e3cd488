"""The conv op against its definition in loops (tests/conv_ref.py) over a random grid of
geometries (strides not dividing the size, asymmetric and negative pads, kernel and input
dilation, groups, flip, 1-3 spatial dims), values and both gradients at O0 and O2 on calls
1-3; per-example gradients by batching; the errors for bad geometry."""
import numpy as np
import pytest

import flowc as fc
from opinfo import conv_ref

rng = np.random.default_rng(14)


def random_case(r):
    """One geometry: (x shape, w shape, attrs) with an output of at least one element."""
    while True:
        nd = int(r.integers(1, 4))
        groups = int(r.choice([1, 2]))
        cg, og = int(r.integers(1, 3)), int(r.integers(1, 3))
        K = tuple(int(k) for k in r.integers(1, 4, nd))
        S = tuple(int(s) for s in r.integers(2, 7 if nd < 3 else 5, nd))
        a = dict(stride=tuple(int(v) for v in r.integers(1, 3, nd)),
                 pad=tuple((int(lo), int(hi)) for lo, hi in r.integers(-1, 3, (nd, 2))),
                 dilation=tuple(int(v) for v in r.integers(1, 3, nd)),
                 lhs_dilation=tuple(int(v) for v in r.integers(1, 3, nd)),
                 groups=groups, flip=bool(r.integers(2)))
        sizes = [((h - 1) * u + 1 + lo + hi - d * (k - 1) - 1) // s + 1 for h, k, s, (lo, hi), d, u
                 in zip(S, K, a["stride"], a["pad"], a["dilation"], a["lhs_dilation"])]
        if min(sizes) >= 1:
            return (2, groups * cg) + S, (groups * og, cg) + K, a


def build(xs, ws, a, level):
    x, w = fc.input("x", (None,) + xs[1:]), fc.input("w", ws)
    y = fc.conv(x, w, stride=a["stride"], padding=a["pad"], dilation=a["dilation"],
                groups=a["groups"], lhs_dilation=a["lhs_dilation"], flip=a["flip"])
    cost = fc.sum(fc.sin(y) * y)
    return fc.function([x, w], [y] + fc.grad(cost, [x, w]), optimize=level)


def directional(fn, args, grads, r, eps=1e-6):
    """<grad, v> against the central difference of fn along v, for a random v per operand
    (a few reference calls instead of two per element)."""
    vs = [r.standard_normal(a.shape) for a in args]
    plus = fn(*[a + eps * v for a, v in zip(args, vs)])
    minus = fn(*[a - eps * v for a, v in zip(args, vs)])
    want = (plus - minus) / (2 * eps)
    got = sum(float(np.sum(g * v)) for g, v in zip(grads, vs))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", range(16))
def test_conv_and_its_gradients_match_the_definition(seed):
    r = np.random.default_rng(seed)
    xs, ws, a = random_case(r)
    fs = {lv: build(xs, ws, a, lv) for lv in ("O0", "O2")}

    def cost(p, q):
        y = conv_ref(p, q, **a)
        return float(np.sum(np.sin(y) * y))
    for call in range(3):
        n = (2, 1, 3)[call]
        xv, wv = r.standard_normal((n,) + xs[1:]), r.standard_normal(ws)
        want = conv_ref(xv, wv, **a)
        for lv, f in fs.items():
            y, gx, gw = f(xv, wv)
            np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12, err_msg=f"{lv} {a}")
            directional(cost, [xv, wv], [gx, gw], r)
            directional(lambda p: cost(p, wv), [xv], [gx], r)  # each gradient on its own too
            directional(lambda q: cost(xv, q), [wv], [gw], r)


def test_float32_same_padding_and_the_rank_named_functions():
    x = fc.input("x", (None, 3, 9, 8), "float32")
    w = fc.param("w", rng.standard_normal((4, 3, 3, 2)).astype(np.float32))
    y = fc.conv2d(x, w, padding="same", dilation=(2, 1))
    assert y.type.shape == (None, 4, 9, 8) and y.dtype == "float32"
    f = fc.function([x], y)
    xv = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    want = conv_ref(xv.astype(np.float64), w.get_value().astype(np.float64), (1, 1),
                    ((2, 2), (0, 1)), (2, 1), (1, 1), 1, False)
    for _ in range(3):
        np.testing.assert_allclose(f(xv), want, rtol=1e-5, atol=1e-5)
    x1 = fc.input("x1", (2, 1, 7))
    assert fc.conv1d(x1, fc.constant(np.ones((1, 1, 3))), stride=2).type.shape == (2, 1, 3)
    x3 = fc.input("x3", (1, 1, 3, 3, 3))
    assert fc.conv3d(x3, fc.constant(np.ones((2, 1, 2, 2, 2)))).type.shape == (1, 2, 2, 2, 2)


def test_per_example_weight_gradients_by_batching():
    """grad of one example's loss for each example at once: the batched gradient is one
    grouped conv (both operands batched), equal to looping over the examples."""
    w = fc.input("w", (3, 2, 2, 2))
    xb = fc.input("xb", (4, 1, 2, 5, 5))  # 4 examples, each a batch of 1

    x1 = fc.input("x1", (1, 2, 5, 5))
    one = fc.grad(fc.sum(fc.tanh(fc.conv2d(x1, w, stride=2, padding=1))), w)
    per = fc.batch(one, {x1: xb})
    f = fc.function([xb, w], per)
    xv, wv = rng.standard_normal((4, 1, 2, 5, 5)), rng.standard_normal((3, 2, 2, 2))
    for i in range(4):
        num = fc.numerical_grad(lambda q: float(np.tanh(conv_ref(
            xv[i], q, (2, 2), ((1, 1), (1, 1)), (1, 1), (1, 1), 1, False)).sum()), [wv])[0]
        np.testing.assert_allclose(f(xv, wv)[i], num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("make,match", [
    (lambda: fc.conv2d(fc.input("x", (1, 3, 5, 5)), fc.input("w", (2, 2, 3, 3))),
     "w needs 3 input channels per group"),
    (lambda: fc.conv2d(fc.input("x", (1, 4, 5, 5)), fc.input("w", (3, 2, 3, 3)), groups=2),
     "groups=2 must divide"),
    (lambda: fc.conv2d(fc.input("x", (1, 1, 2, 5)), fc.input("w", (1, 1, 3, 3))),
     "larger than spatial dim 0"),
    (lambda: fc.conv2d(fc.input("x", (1, 1, 5, 5)), fc.input("w", (1, 1, 3, 3)), stride=0),
     "stride must be at least 1"),
    (lambda: fc.conv2d(fc.input("x", (1, 5, 5)), fc.input("w", (1, 1, 3, 3))),
     "same rank"),
    (lambda: fc.conv2d(fc.input("x", (1, 1, 5, 5)), fc.input("w", (1, 1, 3))),
     "rank 4"),
    (lambda: fc.conv2d(fc.input("x", (1, 1, 5, 5)), fc.input("w", (1, 1, 3, 3)), stride=2,
                       padding="same"), "needs stride 1"),
])
def test_bad_geometry_is_an_error_naming_the_op_and_the_line(make, match):
    with pytest.raises(fc.ShapeError, match=match) as e:
        make()
    assert "test_conv.py" in str(e.value)


@pytest.mark.parametrize("x,w,groups,match", [
    ((2, 3, 8, 8), (4, 2, 3, 3), 1, "x has 3 channels and w 4 outputs of 2 input channels"),
    ((2, 4, 8, 8), (3, 2, 3, 3), 2, "channel counts divisible by 2"),
    ((2, 3, 2, 8), (4, 3, 3, 3), 1, r"larger than the input \(2, 8\)"),
])
def test_bad_sizes_known_only_at_call_time_name_the_op_the_sizes_and_the_line(x, w, groups,
                                                                               match):
    X, W = fc.input("X", (None,) * 4), fc.input("W", (None,) * 4)
    f = fc.function([X, W], fc.conv2d(X, W, groups=groups))
    with pytest.raises(ValueError, match=match) as e:
        f(np.ones(x), np.ones(w))
    assert "test_conv.py" in str(e.value) and "conv" in str(e.value)


@pytest.mark.parametrize("mode,pad", [("valid", (0, 0)), ("full", (2, 3)), ("half", (1, 2)),
                                      (1, (1, 1)), ((2, 0), (2, 0))])
def test_theano_conv2d_border_modes_flip_by_default(mode, pad):
    import flowc.theano as theano
    import flowc.theano.tensor as T
    x, w = T.tensor4("x"), T.tensor4("w")
    f = theano.function([x, w], T.nnet.conv2d(x, w, border_mode=mode, subsample=(1, 2),
                                               filter_shape=(3, 2, 3, 4)))
    xv, wv = rng.standard_normal((2, 2, 6, 7)), rng.standard_normal((3, 2, 3, 4))
    want = conv_ref(xv, wv, (1, 2), tuple((p, p) for p in pad), (1, 1), (1, 1), 1, True)
    for _ in range(2):
        np.testing.assert_allclose(f(xv, wv), want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="border_mode"):
        T.nnet.conv2d(x, w, border_mode="same", filter_shape=(3, 2, 3, 4))
    with pytest.raises(ValueError, match="pass filter_shape="):
        T.nnet.conv2d(x, w)


def test_second_order_through_a_cotangent_of_unknown_size():
    """The cotangent reaching a conv may know less than its output (a matmul against an
    input of unknown size): grad of grad still builds and matches the O0 reference."""
    x, w = fc.input("x", (2, 2, 3, 3)), fc.input("w", (4, 1, 1, 2))
    m = fc.input("m", (1, None, 2))
    y = fc.matmul(fc.conv(x, w, stride=(2, 1), padding=((0, 2), (1, 1)), groups=2), m)
    g = fc.grad(fc.sum(y * y), [x, w])
    gg = fc.grad(sum(fc.sum(t * t) for t in g), [x, w])
    args = [rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((4, 1, 1, 2)),
            rng.standard_normal((1, 4, 2))]
    want = fc.function([x, w, m], gg, optimize="O0")(*args)
    f = fc.function([x, w, m], gg, optimize="O2")
    for _ in range(3):
        for a, b in zip(f(*args), want):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_jacobian_with_respect_to_the_kernel():
    """fc.jacobian batches the pullback's conv, whose kernel is the cotangent."""
    x, w = fc.input("x", (1, 4, 6, 5)), fc.input("w", (2, 2, 2, 1))
    y = fc.conv(x, w, stride=(1, 2), padding=((0, 0), (2, 2)), dilation=(1, 2), groups=2)
    f = fc.function([x, w], fc.jacobian(y, w))
    xv, wv = rng.standard_normal((1, 4, 6, 5)), rng.standard_normal((2, 2, 2, 1))
    ref = lambda q: conv_ref(xv, q, (1, 2), ((0, 0), (2, 2)), (1, 2), (1, 1), 2, False)
    # y is linear in w: column k of the Jacobian is y at the k-th unit kernel
    want = np.stack([ref(e.reshape(wv.shape)) for e in np.eye(wv.size)], -1)
    for _ in range(3):
        np.testing.assert_allclose(f(xv, wv), want.reshape(f(xv, wv).shape), atol=1e-12)


def test_theano_conv2d_of_a_tensor4_with_and_without_the_input_shape_hint():
    """A T.tensor4 knows no sizes: the gradient builds with or without Theano's
    input_shape= hint, and the hint is checked at run time."""
    import flowc.theano as theano
    from flowc.theano import tensor as T
    x = T.tensor4("x")
    w = theano.shared(rng.standard_normal((2, 1, 3, 3)))
    xv = rng.standard_normal((2, 1, 6, 6))
    num = fc.numerical_grad(lambda q: float((conv_ref(xv, q, (1, 1), ((0, 0), (0, 0)), (1, 1),
                                                      (1, 1), 1, True) ** 2).sum()),
                            [w.get_value()])[0]
    for hint in (None, (None, 1, 6, 6)):
        y = T.nnet.conv2d(x, w, input_shape=hint)
        f = theano.function([x], T.grad((y * y).sum(), w))
        for _ in range(3):
            np.testing.assert_allclose(f(xv), num, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):   # the hint is checked at run time
        f(rng.standard_normal((2, 1, 5, 6)))


@pytest.mark.parametrize("seed", range(8))
def test_gradients_with_spatial_sizes_known_only_at_run_time(seed):
    """x declared (None, C, None, ...): one compiled function takes other sizes at every
    call, and its values and both gradients equal those of a function built for each size
    (the transposed convs pad for the most dropped positions and crop)."""
    r = np.random.default_rng(100 + seed)
    xs, ws, a = random_case(r)
    nd = len(xs) - 2
    x = fc.input("x", (None, xs[1]) + (None,) * nd)
    w = fc.input("w", ws)
    y = fc.conv(x, w, stride=a["stride"], padding=a["pad"], dilation=a["dilation"],
                groups=a["groups"], lhs_dilation=a["lhs_dilation"], flip=a["flip"])
    f = fc.function([x, w], [y] + fc.grad(fc.sum(fc.sin(y) * y), [x, w]))
    wv = r.standard_normal(ws)
    for extra in (0, 1, 0, 2):   # other sizes at calls 2 and 4, the first again at 3
        size = (2, xs[1]) + tuple(h + extra for h in xs[2:])
        xv = r.standard_normal(size)
        want = build(size, ws, a, "O0")(xv, wv)
        for got, ref in zip(f(xv, wv), want):
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_a_conv_rnn_scan_equals_its_unrolled_steps():
    """Convolutions and max pooling inside a scan body (a ConvRNN): values and gradients
    equal the same steps unrolled in Python, at O0 and O2, calls 1-3."""
    r = np.random.default_rng(8)
    T, N, C, H = 4, 2, 2, 5
    x, h0 = fc.input("x", (T, N, C, H, H)), fc.input("h0", (N, C, H, H))
    w = fc.param("w", r.standard_normal((C, C, 3, 3)) * 0.3)
    u = fc.param("u", r.standard_normal((C, C, 3, 3)) * 0.3)

    def step(h, xt):
        hn = fc.tanh(fc.conv2d(xt, w, padding=1) + fc.conv2d(h, u, padding=1, stride=1))
        return hn, fc.max_pool2d(hn, 2)
    hT, ys = fc.scan(step, h0, x)
    cost = fc.sum(hT ** 2) + fc.sum(ys * ys)
    h, total = h0, 0
    for t in range(T):
        h, y = step(h, x[t])
        total = total + fc.sum(y * y)
    unrolled = fc.sum(h ** 2) + total
    want_f = fc.function([x, h0], [unrolled] + fc.grad(unrolled, [w, u, h0]), optimize="O0")
    xv, hv = r.standard_normal((T, N, C, H, H)), r.standard_normal((N, C, H, H))
    want = want_f(xv, hv)
    for level in ("O0", "O2"):
        f = fc.function([x, h0], [cost] + fc.grad(cost, [w, u, h0]), optimize=level)
        for _ in range(3):
            for a, b in zip(f(xv, hv), want):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_a_pointwise_conv_becomes_a_matmul_at_o2(nd):
    """The algebra's pointwise_conv rule: a 1x1 conv (stride 1, no pads, one group) is a
    matmul over the channels; O2 (no conv left) equals O0 in values and gradients, also
    with spatial sizes known only at run time, on calls 1-3."""
    x = fc.input("x", (None, 3) + (None,) * nd)
    w = fc.input("w", (4, 3) + (1,) * nd)
    y = fc.conv(x, w)
    outs = [y] + fc.grad(fc.sum(fc.tanh(y) * y), [x, w])
    f0, f2 = fc.function([x, w], outs, optimize="O0"), fc.function([x, w], outs, optimize="O2")
    def convs(f):
        return sum(d["op"] == "conv" for _, d in f.graph.nodes(data=True))
    # The forward conv and dx's (also 1x1) go; dw's kernel is the output's size and stays.
    assert convs(f2) == convs(f0) - 2 and "pointwise_conv" in str(f2.explain())
    wv = rng.standard_normal((4, 3) + (1,) * nd)
    for size in (2, 3, 2):
        xv = rng.standard_normal((2, 3) + (size,) * nd)
        for a, b in zip(f2(xv, wv), f0(xv, wv)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
