"""Each conv algorithm (im2col, offsets, col2im; forced by FLOWC_CONV_ALGO or called
directly) against the loop reference and each other over a random grid, values and both
gradients at O0/O2 on calls 1-3; the auto choice is cached per shape signature."""
import numpy as np
import pytest

import flowc as fc
from opinfo import conv_ref
import flowc_runtime.cpu.conv as kconv

ALGOS = kconv.ALGORITHMS


def random_case(r, depthwise=False):
    """(x shape, w shape, attrs) with at least one output element; sizes chosen so strides
    often do not divide them."""
    while True:
        nd = int(r.integers(1, 4))
        groups = int(r.choice([1, 2, 3]))
        cg = 1 if depthwise else int(r.integers(1, 3))
        og = 1 if depthwise else int(r.integers(1, 3))
        K = tuple(int(k) for k in r.integers(1, 4, nd))
        S = tuple(int(s) for s in r.integers(2, 8 if nd < 3 else 5, nd))
        a = dict(stride=tuple(int(v) for v in r.integers(1, 4, nd)),
                 pad=tuple((int(lo), int(hi)) for lo, hi in r.integers(-2, 3, (nd, 2))),
                 dilation=tuple(int(v) for v in r.integers(1, 3, nd)),
                 lhs_dilation=tuple(int(v) for v in r.integers(1, 4, nd)),
                 groups=groups, flip=bool(r.integers(2)))
        try:
            kconv.out_sizes(S, K, a["stride"], a["pad"], a["dilation"], a["lhs_dilation"])
        except ValueError:
            continue
        return (2, groups * cg) + S, (groups * og, cg) + K, a


@pytest.mark.parametrize("seed", range(40))
def test_every_algorithm_matches_the_definition(seed):
    r = np.random.default_rng(1000 + seed)
    xs, ws, a = random_case(r, depthwise=seed % 5 == 0)
    x, w = r.standard_normal(xs), r.standard_normal(ws)
    want = conv_ref(x, w, **a)
    conv = kconv.make_conv(np)
    for algo in ALGOS + (None,):
        got = conv(x, w, algorithm=algo, **a)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{algo} {a}")
        out = np.full(want.shape, np.nan)
        assert conv(x, w, algorithm=algo, out=out, **a) is out
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


def test_float32_and_an_empty_batch():
    r = np.random.default_rng(3)
    a = dict(stride=(2, 1), pad=((1, 0), (0, 2)), dilation=(1, 2), lhs_dilation=(2, 1),
             groups=2, flip=False)
    x, w = r.standard_normal((3, 4, 6, 5)), r.standard_normal((6, 2, 3, 2))
    want = conv_ref(x, w, **a)
    conv = kconv.make_conv(np)
    for algo in ALGOS:
        got = conv(x.astype(np.float32), w.astype(np.float32), algorithm=algo, **a)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        assert conv(x[:0], w, algorithm=algo, **a).shape == (0,) + want.shape[1:]


def build(xs, ws, a, level):
    x, w = fc.input("x", (None,) + xs[1:]), fc.input("w", ws)
    y = fc.conv(x, w, stride=a["stride"], padding=a["pad"], dilation=a["dilation"],
                groups=a["groups"], lhs_dilation=a["lhs_dilation"], flip=a["flip"])
    return fc.function([x, w], [y] + fc.grad(fc.sum(fc.sin(y) * y), [x, w]), optimize=level)


@pytest.mark.parametrize("seed", range(8))
def test_forced_algorithms_agree_on_values_and_gradients(seed, monkeypatch):
    """Every forced algorithm gives the same y, dx, dw (the gradients are convs with other
    geometry: dx of a strided conv is input-dilated) as the loop reference's y."""
    r = np.random.default_rng(2000 + seed)
    xs, ws, a = random_case(r, depthwise=seed % 4 == 0)
    args = [[r.standard_normal(((2, 1, 3)[c],) + xs[1:]), r.standard_normal(ws)]
            for c in range(3)]
    results = {}
    for algo in ALGOS + ("", "tune"):
        monkeypatch.setenv("FLOWC_CONV_ALGO", algo)  # "" is the rule's choice
        for lv in ("O0", "O2"):
            f = build(xs, ws, a, lv)
            results[algo, lv] = [f(*p) for p in args]
    assert kconv.CHOICES  # the auto runs chose (and so this is the runtime flowc links)
    for c, (xv, wv) in enumerate(args):
        want = conv_ref(xv, wv, **a)
        base = results["im2col", "O0"][c]
        for key, res in results.items():
            np.testing.assert_allclose(res[c][0], want, rtol=1e-12, atol=1e-12, err_msg=key)
            for got, ref in zip(res[c][1:], base[1:]):
                np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11, err_msg=key)


def test_the_auto_choice_is_cached_per_signature():
    conv = kconv.make_conv(np)
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 2, 2))
    a = dict(stride=(1, 1), pad=((0, 0), (0, 0)), dilation=(1, 1), lhs_dilation=(2, 2),
             groups=1)
    conv(x, w, **a)
    sig = (x.shape, w.shape, "float64", (1, 1), ((0, 0), (0, 0)), (1, 1), (2, 2), 1)
    assert kconv.CHOICES[sig] in ALGOS
    kconv.CHOICES[sig] = "offsets"  # a cached choice is used as is
    np.testing.assert_allclose(conv(x, w, **a), conv(x, w, algorithm="col2im", **a))
    assert kconv.CHOICES[sig] == "offsets"
    assert kconv.candidates((1, 1)) == ALGOS


def test_explain_and_profile_name_each_convs_algorithm(monkeypatch):
    monkeypatch.setenv("FLOWC_CONV_ALGO", "col2im")
    x, w = fc.input("x", (2, 1, 6, 6)), fc.param("w", np.ones((2, 1, 3, 3)))
    y = fc.conv2d(x, w, stride=2)
    f = fc.function([x], [y] + fc.grad(fc.sum(y * y), [x, w]))
    assert "conv[" not in f.explain()  # chosen at run time: nothing before a call
    f(np.ones((2, 1, 6, 6)))
    assert f.explain().count("conv[col2im]") == 3
    assert "conv[col2im]" in str(f.profile(np.ones((2, 1, 6, 6)), calls=2))


def test_the_first_call_that_times_the_algorithms_equals_the_later_ones(monkeypatch):
    """Timing (FLOWC_CONV_ALGO=tune) runs every candidate into the output; the first call
    must still return the chosen one's rounding, so calls 1 and 3 agree bit for bit (fuzz
    seed 1301)."""
    monkeypatch.setenv("FLOWC_CONV_ALGO", "tune")
    import flowc as fc
    from flowc_runtime.cpu import conv as kernel
    r = np.random.default_rng(1301)
    x, w = fc.input("x", (2, 3, 9, 7)), fc.input("w", (4, 3, 3, 2))
    y = fc.conv2d(x, w, stride=(2, 1), padding=1)
    f = fc.function([x, w], [y] + fc.grad(fc.sum(y * y), [x, w]))
    xv, wv = r.standard_normal((2, 3, 9, 7)), r.standard_normal((4, 3, 3, 2))
    kernel.TUNED.clear()
    first = [a.copy() for a in f(xv, wv)]
    f(xv * 2, wv)
    for a, b in zip(f(xv, wv), first):
        np.testing.assert_array_equal(a, b)


def test_the_default_choice_is_a_rule_not_a_timing(monkeypatch):
    """Without FLOWC_CONV_ALGO the algorithm is a function of the shapes alone, so a Program
    computes the same bits in every process and run (timing picked by machine and moment:
    fuzz seed 1305, a saved Program rounded differently when loaded in another process).
    Nothing is timed, and the choice is the one the rule gives."""
    monkeypatch.delenv("FLOWC_CONV_ALGO", raising=False)
    monkeypatch.setattr(kconv.time, "perf_counter", lambda: pytest.fail("a conv was timed"))
    conv = kconv.make_conv(np)
    r = np.random.default_rng(5)
    cases = [((64, 1, 28, 28), (6, 1, 5, 5), (1, 1), 2, "im2col"),      # LeNet conv1
             ((64, 16, 8, 8), (6, 16, 5, 5), (1, 1), 4, "col2im"),      # its dx: narrow out
             ((1, 64, 28, 28), (6, 64, 24, 24), (1, 1), 0, "im2col"),   # its dw: few positions
             ((32, 16, 8, 8), (32, 16, 3, 3), (2, 2), 2, "col2im"),     # a strided conv's dx
             ((8, 3, 32, 32), (16, 3, 5, 5), (2, 2), 2, "im2col"),      # too few channels
             ((16, 64, 32, 32), (64, 64, 3, 3), (1, 1), 1, "offsets")]  # a 37 MB scratch
    for xs, ws, u, p, want in cases:
        a = dict(stride=(1, 1), pad=((p, p), (p, p)), dilation=(1, 1), lhs_dilation=u,
                 groups=1)
        x, w = r.standard_normal(xs).astype(np.float32), r.standard_normal(ws).astype(np.float32)
        kconv.CHOICES.clear()
        got = conv(x, w, **a)
        sig = (xs, ws, "float32", (1, 1), a["pad"], (1, 1), u, 1)
        assert kconv.CHOICES[sig] == want, (xs, ws)
        np.testing.assert_array_equal(got, conv(x, w, algorithm=want, **a))


@pytest.mark.parametrize("algo", ALGOS)
def test_a_weight_gradients_conv_few_positions_many_offsets(algo):
    """A weight gradient's conv: the activation is the kernel (many offsets), the output the
    kernel's few positions; im2col fills it one position at a time. Each algorithm against
    the loop reference, strided and dilated, with an out= buffer on calls 1-3."""
    r = np.random.default_rng(7)
    conv = kconv.make_conv(np)
    a = dict(stride=(2, 1), pad=((1, 0), (0, 2)), dilation=(1, 2), lhs_dilation=(1, 1),
             groups=2, flip=True)
    x, w = r.standard_normal((3, 4, 13, 11)), r.standard_normal((6, 2, 7, 5))
    want = conv_ref(x, w, **a)
    assert np.prod(want.shape[2:]) < 7 * 5
    out = np.empty(want.shape)
    for _ in range(3):
        assert conv(x, w, algorithm=algo, out=out, **a) is out
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
