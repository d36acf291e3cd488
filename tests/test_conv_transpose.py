"""fc.conv_transpose against its scatter definition in loops over a random grid of stride,
padding, output_padding, dilation and groups (1-3 spatial dims): values and both gradients
at O0 and O2 on calls 1-3; against torch.nn.functional.conv_transpose2d when torch is there;
the errors for bad arguments."""
import itertools

import numpy as np
import pytest

import flowc as fc
from flowc.ir.errors import FlowcError


def scatter_ref(x, w, stride, padding, output_padding, groups, dilation):
    """y by the definition of a transposed conv: every input element scatters its value
    times the kernel into the output (PyTorch's sizes; padding crops the full result)."""
    N, C = x.shape[:2]
    S, K = x.shape[2:], w.shape[2:]
    og = w.shape[1]
    cg = C // groups
    full = [(h - 1) * s + d * (k - 1) + 1 + op
            for h, s, d, k, op in zip(S, stride, dilation, K, output_padding)]
    y = np.zeros((N, og * groups) + tuple(full))
    for n, c in itertools.product(range(N), range(C)):
        g = c // cg
        for p in itertools.product(*map(range, S)):
            for o in range(og):
                for i in itertools.product(*map(range, K)):
                    q = tuple(pp * s + ii * d for pp, s, ii, d in zip(p, stride, i, dilation))
                    y[(n, g * og + o) + q] += x[(n, c) + p] * w[(c, o) + i]
    crop = tuple(slice(pd, f - pd) for pd, f in zip(padding, full))
    return y[(slice(None), slice(None)) + crop]


def random_case(r):
    """(x shape, w shape, args) with an output of at least one element per dim."""
    while True:
        nd = int(r.integers(1, 4))
        groups = int(r.choice([1, 2]))
        cg, og = int(r.integers(1, 3)), int(r.integers(1, 3))
        K = tuple(int(k) for k in r.integers(1, 4, nd))
        S = tuple(int(s) for s in r.integers(1, 5 if nd < 3 else 3, nd))
        s = tuple(int(v) for v in r.integers(1, 4, nd))
        d = tuple(int(v) for v in r.integers(1, 3, nd))
        p = tuple(int(v) for v in r.integers(0, 3, nd))
        op = tuple(int(r.integers(0, max(a, b))) for a, b in zip(s, d))
        out = [(h - 1) * ss - 2 * pp + dd * (k - 1) + o + 1
               for h, ss, pp, dd, k, o in zip(S, s, p, d, K, op)]
        if min(out) >= 1:
            return (2, groups * cg) + S, (groups * cg, og) + K, dict(
                stride=s, padding=p, output_padding=op, groups=groups, dilation=d)


def build(xs, ws, a, level):
    x, w = fc.input("x", (None,) + xs[1:]), fc.input("w", ws)
    y = fc.conv_transpose(x, w, **a)
    cost = fc.sum(fc.sin(y) * y)
    return fc.function([x, w], [y] + fc.grad(cost, [x, w]), optimize=level)


def directional(fn, args, grads, r, eps=1e-6):
    """<grad, v> against the central difference of fn along a random v."""
    vs = [r.standard_normal(a.shape) for a in args]
    plus = fn(*[a + eps * v for a, v in zip(args, vs)])
    minus = fn(*[a - eps * v for a, v in zip(args, vs)])
    got = sum(float(np.sum(g * v)) for g, v in zip(grads, vs))
    np.testing.assert_allclose(got, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", range(16))
def test_conv_transpose_and_its_gradients_match_the_scatter_definition(seed):
    r = np.random.default_rng(100 + seed)
    xs, ws, a = random_case(r)
    fs = {lv: build(xs, ws, a, lv) for lv in ("O0", "O2")}

    def cost(p, q):
        y = scatter_ref(p, q, **a)
        return float(np.sum(np.sin(y) * y))
    for call in range(3):
        n = (2, 1, 3)[call]  # a new batch size on each call
        xv, wv = r.standard_normal((n,) + xs[1:]), r.standard_normal(ws)
        want = scatter_ref(xv, wv, **a)
        for lv, f in fs.items():
            y, gx, gw = f(xv, wv)
            np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12, err_msg=f"{lv} {a}")
            directional(cost, [xv, wv], [gx, gw], r)


def test_the_rank_named_functions_and_static_sizes():
    x = fc.input("x", (None, 4, 5, 3))
    w = fc.input("w", (4, 3, 3, 2))
    y = fc.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=2)
    assert y.type.shape == (None, 6, 10, 5)  # (5-1)*2 - 2 + 2 + 1 + 1, (3-1)*2 - 2 + 1 + 1 + 1
    assert fc.conv_transpose1d(fc.input("a", (1, 2, 7)), fc.input("b", (2, 5, 3))).type.shape \
        == (1, 5, 9)
    assert fc.conv_transpose3d(fc.input("c", (1, 1, 2, 2, 2)), fc.input("d", (1, 1, 2, 2, 2)),
                               stride=3).type.shape == (1, 1, 5, 5, 5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(6))
def test_against_torch_conv_transpose2d(dtype, seed):
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(200 + seed)
    while True:
        xs, ws, a = random_case(r)
        if len(xs) == 4:
            break
    xv, wv = r.standard_normal(xs).astype(dtype), r.standard_normal(ws).astype(dtype)
    tx, tw = (torch.tensor(v, requires_grad=True) for v in (xv, wv))
    ty = torch.nn.functional.conv_transpose2d(tx, tw, **a)
    g = r.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(g))
    x, w = fc.input("x", (None,) + xs[1:], dtype), fc.input("w", ws, dtype)
    y = fc.conv_transpose2d(x, w, **a)
    gy = fc.input("g", y.type.shape, dtype)
    f = fc.function([x, w, gy], [y] + fc.grad(fc.sum(y * gy), [x, w]))
    got = f(xv, wv, g)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-11, atol=1e-11)
    for mine, theirs in zip(got, (ty, tx.grad, tw.grad)):
        assert mine.dtype == dtype
        np.testing.assert_allclose(mine, theirs.detach().numpy(), **tol)


@pytest.mark.parametrize("make, match", [
    (lambda: fc.conv_transpose2d(fc.input("x", (1, 3, 4, 4)), fc.input("w", (2, 1, 3, 3))),
     r"conv_transpose2d at .*test_conv_transpose.py.*x has 3 channels but w .* expects 2"),
    (lambda: fc.conv_transpose2d(fc.input("x", (1, 3, 4)), fc.input("w", (3, 1, 3, 3))),
     r"conv_transpose2d at .*same rank"),
    (lambda: fc.conv_transpose1d(fc.input("x", (1, 3, 4)), fc.input("w", (3, 1, 3, 3))),
     r"conv_transpose1d at .*rank 3 .*got rank 4"),
    (lambda: fc.conv_transpose2d(fc.input("x", (1, 3, 4, 4)), fc.input("w", (3, 1, 3, 3)),
                                 groups=2),
     r"groups=2 must divide w's 3 input channels"),
    (lambda: fc.conv_transpose2d(fc.input("x", (1, 2, 4, 4)), fc.input("w", (2, 1, 3, 3)),
                                 stride=2, output_padding=2),
     r"output_padding \(2, 2\) must be smaller than stride \(2, 2\) or dilation"),
    (lambda: fc.conv_transpose1d(fc.input("x", (1, 2, 1)), fc.input("w", (2, 1, 1)),
                                 padding=1),
     r"spatial dim 0 would be empty"),
    (lambda: fc.conv_transpose1d(fc.input("x", (1, 2, 4)), fc.input("w", (2, 1, 1)),
                                 stride=0),
     r"stride and dilation must be at least 1"),
    (lambda: fc.conv_transpose2d(fc.input("x", (1, 2, 4, 4)), fc.input("w", (2, 1, 3, 3)),
                                 padding=(1, 2, 3)),
     r"padding must be an int or 2 ints"),
    (lambda: fc.conv_transpose2d(fc.input("x", (1, 2, 4, 4), "float32"),
                                 fc.input("w", (2, 1, 3, 3))),
     r"conv_transpose2d at .*one float dtype, got float32 and float64"),
])
def test_bad_arguments_are_errors_naming_the_op_and_the_line(make, match):
    with pytest.raises(FlowcError, match=match) as e:
        make()
    assert isinstance(e.value, ValueError)
