"""fc.conv1d/2d/3d and pooling against PyTorch's CPU functions (skipped where torch is not
installed): values and both gradients in float32 and float64 over a grid of geometries, and
a LeNet-5 whose first training losses from the same weights and batches equal a PyTorch
twin's to 1e-5 in float32."""
import numpy as np
import pytest

import flowc as fc

torch = pytest.importorskip("torch")
F = torch.nn.functional
rng = np.random.default_rng(21)

TOL = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-12)}

# (spatial dims, x spatial, kernel, stride, padding, dilation, groups, channels in, out)
CONVS = [(1, (9,), (3,), 2, 1, 1, 1, 3, 4),
         (1, (7,), (2,), 1, 0, 3, 2, 4, 6),
         (2, (7, 6), (3, 2), (2, 1), (1, 0), (1, 2), 1, 2, 3),
         (2, (8, 8), (3, 3), 1, 1, 1, 4, 4, 4),       # depthwise
         (2, (5, 7), (1, 1), 1, 0, 1, 1, 3, 5),       # 1x1
         (2, (9, 9), (5, 5), 3, 2, 1, 1, 1, 2),       # stride not dividing the size
         (3, (5, 4, 6), (2, 3, 2), (1, 2, 1), (1, 1, 0), 1, 1, 2, 2)]


def _torch_conv(nd):
    return {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]


def _fc_conv(nd):
    return {1: fc.conv1d, 2: fc.conv2d, 3: fc.conv3d}[nd]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CONVS, ids=[f"conv{c[0]}d-{i}" for i, c in enumerate(CONVS)])
def test_conv_values_and_gradients_match_torch(case, dtype):
    nd, S, K, stride, pad, dil, groups, cin, cout = case
    xv = rng.standard_normal((2, cin) + S).astype(dtype)
    wv = rng.standard_normal((cout, cin // groups) + K).astype(dtype)
    gv = None
    x, w = fc.input("x", (None, cin) + S, dtype=dtype), fc.input("w", wv.shape, dtype=dtype)
    y = _fc_conv(nd)(x, w, stride=stride, padding=pad, dilation=dil, groups=groups)
    g = fc.input("g", y.type.shape, dtype=dtype)
    f = fc.function([x, w, g], [y] + fc.grad(fc.sum(y * g), [x, w]))
    xt = torch.tensor(xv, requires_grad=True)
    wt = torch.tensor(wv, requires_grad=True)
    yt = _torch_conv(nd)(xt, wt, stride=stride, padding=pad, dilation=dil, groups=groups)
    gv = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    (yt * torch.tensor(gv)).sum().backward()
    for _ in range(3):   # calls 2 and 3 reuse the first call's buffers
        got = f(xv, wv, gv)
        for a, b in zip(got, [yt.detach(), xt.grad, wt.grad]):
            np.testing.assert_allclose(a, b.numpy(), **TOL[dtype])


# (kernel, stride, padding, ceil_mode, count_include_pad)
POOLS = [((2, 2), None, 0, False, True), ((3, 3), 2, 1, False, True),
         ((3, 3), 2, 1, True, False), ((3, 2), (2, 1), (1, 0), True, True),
         ((2, 3), (3, 2), 0, True, False)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("how", ["max", "avg"])
@pytest.mark.parametrize("case", POOLS, ids=[f"pool-{i}" for i in range(len(POOLS))])
def test_pool2d_values_and_gradients_match_torch(case, how, dtype):
    k, s, p, ceil, include = case
    xv = rng.standard_normal((2, 3, 7, 8)).astype(dtype)   # no ties: one max per window
    x = fc.input("x", xv.shape, dtype=dtype)
    if how == "max":
        y = fc.max_pool2d(x, k, s, p, ceil_mode=ceil)
        want = lambda t: F.max_pool2d(t, k, s, p, ceil_mode=ceil)
    else:
        y = fc.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=include)
        want = lambda t: F.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=include)
    g = fc.input("g", y.type.shape, dtype=dtype)
    f = fc.function([x, g], [y, fc.grad(fc.sum(y * g), x)])
    xt = torch.tensor(xv, requires_grad=True)
    yt = want(xt)
    gv = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    (yt * torch.tensor(gv)).sum().backward()
    for _ in range(3):
        got = f(xv, gv)
        np.testing.assert_allclose(got[0], yt.detach().numpy(), **TOL[dtype])
        np.testing.assert_allclose(got[1], xt.grad.numpy(), **TOL[dtype])


def test_lenet_first_losses_equal_a_torch_twin():
    """LeNet-5 (conv 5x5x6, relu, max 2, conv 5x5x16, relu, max 2, dense 120-84-10), SGD,
    float32, the same weights and batches: five losses agree to 1e-5."""
    r = np.random.default_rng(5)
    shapes = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (256, 120), (120,), (120, 84), (84,),
              (84, 10), (10,)]
    init = [(r.standard_normal(s) / np.sqrt(np.prod(s[1:]) if len(s) == 4 else
                                            (s[0] if len(s) == 2 else 1))).astype("float32")
            * (1.0 if len(s) > 1 else 0.1) for s in shapes]
    batches = [(r.standard_normal((16, 1, 28, 28)).astype("float32"),
                r.integers(0, 10, 16)) for _ in range(5)]
    lr = 0.05

    x, y = fc.input("x", (None, 1, 28, 28), dtype="float32"), fc.input("y", (None,), "int64")
    ps = [fc.param(f"p{i}", v.copy()) for i, v in enumerate(init)]
    h = fc.max_pool2d(fc.relu(fc.conv2d(x, ps[0]) + ps[1][:, None, None]), 2)
    h = fc.max_pool2d(fc.relu(fc.conv2d(h, ps[2]) + ps[3][:, None, None]), 2)
    h = fc.reshape(h, (-1, 256))
    h = fc.relu(h @ ps[4] + ps[5])
    h = fc.relu(h @ ps[6] + ps[7])
    logits = h @ ps[8] + ps[9]
    loss = fc.mean(fc.logsumexp(logits, axis=1) - fc.take_along_axis(
        logits, y[:, None], axis=1)[:, 0])
    gs = fc.grad(loss, ps)
    step = fc.function([x, y], loss, updates=[(p, p - lr * g) for p, g in zip(ps, gs)])

    tp = [torch.tensor(v.copy(), requires_grad=True) for v in init]
    opt = torch.optim.SGD(tp, lr=lr)
    seen = []
    for xb, yb in batches:
        got = float(step(xb, yb))
        seen.append(got)
        opt.zero_grad()
        t = torch.tensor(xb)
        t = F.max_pool2d(F.relu(F.conv2d(t, tp[0], tp[1])), 2)
        t = F.max_pool2d(F.relu(F.conv2d(t, tp[2], tp[3])), 2)
        t = t.reshape(-1, 256)
        t = F.relu(t @ tp[4] + tp[5])
        t = F.relu(t @ tp[6] + tp[7])
        want = F.cross_entropy(t @ tp[8] + tp[9], torch.tensor(yb))
        want.backward()
        opt.step()
        want = want.item()
        assert abs(got - want) <= 1e-5 * max(1.0, abs(want)), (got, want)
    assert len(set(seen)) == len(seen)   # the steps really moved the weights
