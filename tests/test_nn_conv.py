"""flowc.nn's conv and pooling layers against loop-by-loop NumPy, their gradients against
finite differences, their model-file kinds, and their argument errors."""
import itertools
import os

import numpy as np
import pytest

import flowc as fc
from flowc import nn
from flowc.ir.errors import FlowcError
from flowc.models.build import load_model_file
from flowc.models.modelfile import ModelFileError

RNG = np.random.default_rng(0)


# -- NumPy references, one output element at a time ---------------------------------------------
def ref_conv(x, w, b, stride, pad, dilation, groups):
    """Correlation of x (N, C, *S) with w (O, C/g, *K), zero padding pad (lo, hi) per dim."""
    nd = x.ndim - 2
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(pad))
    N, C = x.shape[:2]
    O, Cg, K = w.shape[0], w.shape[1], w.shape[2:]
    Og = O // groups
    out = tuple((xp.shape[2 + i] - dilation[i] * (K[i] - 1) - 1) // stride[i] + 1
                for i in range(nd))
    y = np.zeros((N, O) + out)
    for n, o in itertools.product(range(N), range(O)):
        g = o // Og
        for p in itertools.product(*map(range, out)):
            acc = 0.0
            for c in range(Cg):
                for k in itertools.product(*map(range, K)):
                    at = tuple(p[i] * stride[i] + k[i] * dilation[i] for i in range(nd))
                    acc += w[(o, c) + k] * xp[(n, g * Cg + c) + at]
            y[(n, o) + p] = acc + (b[o] if b is not None else 0.0)
    return y


def ref_conv_transpose(x, w, b, stride, pad, out_pad, dilation, groups):
    """The scatter form: each input pixel adds its weighted kernel into the output."""
    N, C, H, W = x.shape
    Og, (kh, kw) = w.shape[1], w.shape[2:]
    Cg = C // groups
    size = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
            zip((H, W), stride, pad, dilation, (kh, kw), out_pad)]
    full = np.zeros((N, Og * groups, size[0] + 2 * pad[0] + kh * dilation[0],
                     size[1] + 2 * pad[1] + kw * dilation[1]))
    for n, c, i, j, a, e in itertools.product(range(N), range(C), range(H), range(W),
                                              range(kh), range(kw)):
        g = c // Cg
        for o in range(Og):
            full[n, g * Og + o, i * stride[0] + a * dilation[0],
                 j * stride[1] + e * dilation[1]] += x[n, c, i, j] * w[c, o, a, e]
    y = full[:, :, pad[0]:pad[0] + size[0], pad[1]:pad[1] + size[1]]
    return y + (b.reshape(-1, 1, 1) if b is not None else 0.0)


def ref_pool(x, k, s, p, ceil_mode, kind, count_include_pad=True):
    N, C, H, W = x.shape

    def n_out(n, kk, ss, pp):
        span = n + 2 * pp - kk
        o = (-(-span // ss) if ceil_mode else span // ss) + 1
        return o - 1 if ceil_mode and (o - 1) * ss >= n + pp else o
    oh, ow = n_out(H, k[0], s[0], p[0]), n_out(W, k[1], s[1], p[1])
    y = np.zeros((N, C, oh, ow))
    for i, j in itertools.product(range(oh), range(ow)):
        r0, c0 = i * s[0] - p[0], j * s[1] - p[1]
        r1, c1 = r0 + k[0], c0 + k[1]
        win = x[:, :, max(r0, 0):min(r1, H), max(c0, 0):min(c1, W)]
        if kind == "max":
            y[:, :, i, j] = win.max(axis=(2, 3))
        else:
            if count_include_pad:  # the window clipped to the padded input
                n = (min(r1, H + p[0]) - max(r0, -p[0])) * (min(c1, W + p[1]) - max(c0, -p[1]))
            else:
                n = win.shape[2] * win.shape[3]
            y[:, :, i, j] = win.sum(axis=(2, 3)) / n
    return y


def run(layer, X):
    x = fc.input("x", (None,) + X.shape[1:])
    y = layer(x)
    return y, fc.function([x], [y])(X)


def value(p):
    return np.asarray(p.node["value"])


# -- forward values --------------------------------------------------------------------------
CONV2D = [  # (kwargs, in channels, spatial)
    (dict(filters=4, kernel_size=3), 2, (6, 5)),
    (dict(filters=4, kernel_size=(3, 2), stride=2, padding=1, dilation=(1, 2)), 2, (7, 6)),
    (dict(filters=6, kernel_size=3, padding="same", groups=3, activation="relu"), 3, (5, 5)),
    (dict(filters=2, kernel_size=2, padding="valid", use_bias=False), 1, (4, 4)),
]


@pytest.mark.parametrize("kw,c,spatial", CONV2D)
def test_conv2d_matches_numpy(kw, c, spatial):
    with fc.Graph():
        layer = nn.Conv2D(**kw)
        X = RNG.standard_normal((2, c) + spatial)
        y, got = run(layer, X)
        k = layer.kernel_size
        pad = [((d * (kk - 1)) // 2, d * (kk - 1) - (d * (kk - 1)) // 2)
               for kk, d in zip(k, layer.dilation)] if layer.padding == "same" else \
            [(0, 0)] * 2 if layer.padding == "valid" else [(p, p) for p in layer.padding]
        want = ref_conv(X, value(layer.W), value(layer.b) if layer.b is not None else None,
                        layer.stride, pad, layer.dilation, layer.groups)
        if kw.get("activation") == "relu":
            want = np.maximum(want, 0)
        assert tuple(y.type.shape[1:]) == want.shape[1:]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        assert layer.W.type.shape == (kw["filters"], c // layer.groups) + k


def test_conv1d_matches_numpy():
    with fc.Graph():
        layer = nn.Conv1D(3, 4, stride=2, padding=2, dilation=2, groups=1)
        X = RNG.standard_normal((2, 2, 11))
        y, got = run(layer, X)
        want = ref_conv(X, value(layer.W), value(layer.b), (2,), [(2, 2)], (2,), 1)
        assert y.type.shape == (None, 3, want.shape[2])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


CONVT = [
    (dict(filters=3, kernel_size=3), 2, (4, 3)),
    (dict(filters=4, kernel_size=3, stride=2, padding=1, output_padding=1), 2, (3, 4)),
    (dict(filters=6, kernel_size=(2, 3), stride=(2, 1), groups=3, dilation=2), 3, (3, 3)),
]


@pytest.mark.parametrize("kw,c,spatial", CONVT)
def test_conv_transpose2d_matches_numpy(kw, c, spatial):
    with fc.Graph():
        layer = nn.ConvTranspose2D(**kw)
        X = RNG.standard_normal((2, c) + spatial)
        y, got = run(layer, X)
        want = ref_conv_transpose(X, value(layer.W), value(layer.b), layer.stride, layer.padding,
                                  layer.output_padding, layer.dilation, layer.groups)
        assert layer.W.type.shape == (c, kw["filters"] // layer.groups) + layer.kernel_size
        assert tuple(y.type.shape[1:]) == want.shape[1:]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_the_composed_transposed_conv_matches_numpy():
    # The layer may use fc.conv_transpose2d when flowc has one; check the composition too.
    from flowc.nn.conv import conv_transpose
    with fc.Graph():
        X, Wv = RNG.standard_normal((2, 4, 3, 4)), RNG.standard_normal((4, 3, 3, 2))
        x, w = fc.input("x", X.shape), fc.input("w", Wv.shape)
        y = conv_transpose(x, w, (2, 3), (1, 0), (1, 2), 2, (1, 2))
        want = ref_conv_transpose(X, Wv, None, (2, 3), (1, 0), (1, 2), (1, 2), 2)
        np.testing.assert_allclose(fc.function([x, w], [y])(X, Wv), want, rtol=1e-10,
                                   atol=1e-12)


def test_conv_transpose2d_is_the_input_gradient_of_conv2d():
    # <conv(x, w), g> = <x, conv_transpose(g, w)>: the transposed conv is the adjoint.
    with fc.Graph():
        conv = nn.Conv2D(4, 3, stride=2, padding=1, use_bias=False)
        X = RNG.standard_normal((1, 2, 7, 7))
        _, y = run(conv, X)
        t = nn.ConvTranspose2D(2, 3, stride=2, padding=1, use_bias=False)
        G = RNG.standard_normal(y.shape)
        g = fc.input("g", (None, 4, 4, 4))
        Wi = fc.input("Wi", (4, 2, 3, 3))
        back = fc.function([g, Wi], [t(g)], givens={t.W: Wi})(G, value(conv.W))
        assert back.shape == X.shape
        assert np.vdot(y, G) == pytest.approx(np.vdot(X, back), rel=1e-10)


POOLS = [
    (nn.MaxPool2D, dict(kernel_size=2), "max"),
    (nn.MaxPool2D, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), "max"),
    (nn.AvgPool2D, dict(kernel_size=2, stride=1), "avg"),
    (nn.AvgPool2D, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), "avg"),
    (nn.AvgPool2D, dict(kernel_size=3, stride=2, padding=1, count_include_pad=False), "avg"),
]


@pytest.mark.parametrize("cls,kw,kind", POOLS)
def test_pools_match_numpy(cls, kw, kind):
    with fc.Graph():
        layer = cls(**kw)
        X = RNG.standard_normal((2, 3, 6, 7))
        y, got = run(layer, X)
        want = ref_pool(X, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, kind,
                        getattr(layer, "count_include_pad", True))
        assert tuple(y.type.shape[1:]) == want.shape[1:] and not layer.params
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_global_avg_pool_and_flatten():
    with fc.Graph():
        X = RNG.standard_normal((2, 3, 4, 5))
        y, got = run(nn.GlobalAvgPool(), X)
        assert y.type.shape == (None, 3)
        np.testing.assert_allclose(got, X.mean(axis=(2, 3)))
        y, got = run(nn.Flatten(), X)
        assert y.type.shape == (None, 60)
        np.testing.assert_array_equal(got, X.reshape(2, -1))
        _, got = run(nn.GlobalAvgPool(), X[..., 0])  # Conv1D features: (N, C, L)
        np.testing.assert_allclose(got, X[..., 0].mean(axis=2))


def test_init_fans_follow_pytorch_layouts():
    # He uniform draws within sqrt(6 / fan_in), fan_in = C/groups * kernel area for a conv.
    with fc.Graph():
        conv = nn.Conv2D(64, 3, activation="relu")
        conv(fc.input("x", (None, 8, 9, 9)))
        w = value(conv.W)
        assert np.abs(w).max() <= np.sqrt(6 / (8 * 9)) and np.abs(w).max() > 0.9 * np.sqrt(6 / 72)
        t = nn.ConvTranspose2D(4, 3, init="he_uniform")  # fan_in = filters/groups * area
        t(fc.input("z", (None, 64, 2, 2)))
        assert np.abs(value(t.W)).max() > np.sqrt(6 / (64 * 9))


# -- gradients ---------------------------------------------------------------------------------
def fd_check(layer, X):
    """fc.grad of sum(y * R) with respect to x, W and b against central differences."""
    with fc.Graph():
        x = fc.input("x", (None,) + X.shape[1:])
        y = layer(x)
        W, b = layer.W, layer.b
        Wi, bi = fc.input("Wi", W.type.shape), fc.input("bi", b.type.shape)
        R = RNG.standard_normal((X.shape[0],) + tuple(y.type.shape[1:]))
        loss = fc.sum(y * R)
        grads = fc.grad(loss, [x, W, b])
        f = fc.function([x, Wi, bi], [loss] + grads, givens={W: Wi, b: bi})
        args = [X, value(W).copy(), value(b).copy()]
        outs = f(*args)
        for a, g in zip(args, outs[1:]):
            num = np.zeros_like(a)
            for i in np.ndindex(a.shape):
                a[i] += 1e-6
                up = f(*args)[0]
                a[i] -= 2e-6
                down = f(*args)[0]
                a[i] += 1e-6
                num[i] = (up - down) / 2e-6
            np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


def test_conv2d_gradient_matches_finite_differences():
    fd_check(nn.Conv2D(4, 3, stride=2, padding=1, groups=2, activation="tanh"),
             RNG.standard_normal((2, 2, 5, 5)))


def test_conv_transpose2d_gradient_matches_finite_differences():
    fd_check(nn.ConvTranspose2D(4, 3, stride=2, padding=1, output_padding=1, groups=2),
             RNG.standard_normal((2, 2, 3, 3)))


# -- model files -----------------------------------------------------------------------------
MODEL = """
[inputs.x]
shape = ["batch", 64]
[inputs.y]
shape = ["batch"]
dtype = "int64"
[[layers]]
type = "reshape"
shape = [1, 8, 8]
[[layers]]
type = "conv2d"
filters = 4
kernel_size = [3, 3]
padding = "same"
activation = "relu"
[[layers]]
type = "maxpool2d"
kernel_size = 2
[[layers]]
type = "conv_transpose2d"
filters = 2
kernel_size = 2
stride = 2
[[layers]]
type = "avgpool2d"
kernel_size = 3
stride = 2
padding = 1
ceil_mode = true
count_include_pad = false
[[layers]]
type = "reshape"
shape = [2, 25]
[[layers]]
type = "conv1d"
filters = 3
kernel_size = 3
[[layers]]
type = "flatten"
[[layers]]
type = "dense"
units = 10
[loss]
type = "categorical_crossentropy"
[optimizer]
type = "adam"
lr = 0.01
"""


def test_model_file_kinds_build_and_train(tmp_path):
    path = tmp_path / "cnn.toml"
    path.write_text(MODEL)
    with fc.Graph():
        b = load_model_file(str(path))
        kinds = [type(la).__name__ for la in b.model.layers]
        assert kinds == ["Reshape", "Conv2D", "MaxPool2D", "ConvTranspose2D", "AvgPool2D",
                         "Reshape", "Conv1D", "Flatten", "Dense"]
        assert b.task.predict.type.shape == (None, 10)
        table = MODEL[:MODEL.index('"conv2d"')].count("\n")  # the [[layers]] line
        assert b.model.layers[1].W.node["trace"] == f"cnn.toml:{table}"
        X, Y = RNG.random((40, 64)), RNG.integers(0, 10, 40)
        h = nn.Trainer(b.task, b.optimizer, **b.opt_kwargs).fit([X, Y], epochs=1, batch_size=16)
        assert np.isfinite(h.as_dict()["loss"]).all()


def test_global_avg_pool_kind(tmp_path):
    path = tmp_path / "gap.toml"
    path.write_text(MODEL.replace('type = "flatten"', 'type = "globalavgpool"'))
    with fc.Graph():
        b = load_model_file(str(path))
        assert type(b.model.layers[7]).__name__ == "GlobalAvgPool"
        assert b.task.predict.type.shape == (None, 10)


@pytest.mark.parametrize("old,new,message", [
    ("filters = 4", "filters = 0", "layers[1].filters: expected an integer >= 1, got 0"),
    ("kernel_size = [3, 3]", "kernel_size = [3, 3, 3]",
     "layers[1].kernel_size: expected an integer >= 1 or an array of 2"),
    ('padding = "same"', 'padding = "full"', 'layers[1].padding: expected an integer >= 0 or an '
     'array of 2 or "same" or "valid", got "full" (a string)'),
    ("ceil_mode = true", "ceil_mode = 1", "layers[4].ceil_mode: expected true or false"),
    ("filters = 4", "filters = 4\ngroups = 3", "layers[1]: Conv2D: filters (4) must be "
     "divisible by groups (3)"),
    ("stride = 2\npadding = 1", "stride = 2\npadding = 2",
     "layers[4]: AvgPool2D: padding (2, 2) must be at most half the kernel (3, 3)"),
])
def test_bad_model_file_fields_name_the_line(tmp_path, old, new, message):
    path = tmp_path / "bad.toml"
    assert old in MODEL
    path.write_text(MODEL.replace(old, new, 1))
    with fc.Graph(), pytest.raises(ModelFileError) as e:
        load_model_file(str(path))
    line = MODEL.replace(old, new, 1)[:MODEL.index(old)].count("\n") + 1
    assert message in str(e.value), str(e.value)
    assert str(e.value).startswith(f"{path}:"), str(e.value)
    assert int(str(e.value)[len(str(path)) + 1:].split(":")[0]) <= line  # the field or table


def test_the_shipped_cnn_model_files_load():
    examples = os.path.join(os.path.dirname(fc.__file__), "examples")
    for name, shape in (("digits_cnn.toml", (None, 10)), ("lenet5.toml", (None, 10))):
        with fc.Graph():
            b = load_model_file(os.path.join(examples, name))
            assert b.task.predict.type.shape == shape


def test_digits28_is_the_digits_upsampled():
    pytest.importorskip("sklearn")
    from flowc.models import data as D
    d8, d28 = D.load("digits"), D.load("digits28")
    assert d28.Xtr.shape == (d8.Xtr.shape[0], 784)
    np.testing.assert_array_equal(d28.ytr, d8.ytr)
    img = d28.Xtr[0].reshape(28, 28)
    assert img.min() >= 0 and img.max() <= 1
    # Bilinear resizing keeps a constant image constant and the mean roughly.
    np.testing.assert_allclose(D.upsample(np.ones((1, 8, 8)), 28), 1.0)
    assert abs(img.mean() - d8.Xtr[0].mean()) < 0.05


# -- bad arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize("make,message", [
    (lambda: nn.Conv2D(0, 3), "Conv2D (at test_nn_conv.py:"),
    (lambda: nn.Conv2D(4, (3, 3, 3)), "kernel_size must be an int >= 1 or 2 of them"),
    (lambda: nn.Conv1D(4, 3, stride=0), "stride must be an int >= 1"),
    (lambda: nn.Conv2D(4, 3, padding="full"), "padding must be 'same' or 'valid' or ints"),
    (lambda: nn.Conv2D(4, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
    (lambda: nn.Conv2D(4, 3, groups=3), "filters (4) must be divisible by groups (3)"),
    (lambda: nn.Conv2D(4, 3, activation="swish"), "unknown activation 'swish'"),
    (lambda: nn.ConvTranspose2D(4, 3, padding="same"), "padding must be 'valid' or ints"),
    (lambda: nn.ConvTranspose2D(4, 3, stride=2, output_padding=2), "output_padding (2, 2)"),
    (lambda: nn.MaxPool2D(2, padding=2), "MaxPool2D (at test_nn_conv.py:"),
    (lambda: nn.AvgPool2D(2, count_include_pad="yes"), "count_include_pad must be true or"),
])
def test_bad_arguments_name_the_layer_and_line(make, message):
    with pytest.raises(FlowcError) as e:
        make()
    assert message in str(e.value)


@pytest.mark.parametrize("layer,shape,message", [
    (lambda: nn.Conv2D(4, 3), (None, 64), "expects (batch, channels, 2 spatial dims)"),
    (lambda: nn.Conv1D(4, 3), (None, 2, 3, 3), "expects (batch, channels, 1 spatial dim)"),
    (lambda: nn.Conv2D(4, 3, groups=2), (None, 3, 5, 5), "channels (3) must be divisible"),
    (lambda: nn.Conv2D(4, 5), (None, 1, 3, 3), "is larger than the padded input"),
    (lambda: nn.Conv2D(4, 3, in_channels=2), (None, 1, 3, 3), "expects 2 input channels"),
    (lambda: nn.ConvTranspose2D(2, 3, padding=2), (None, 1, 1, 1), "crops the whole output"),
    (lambda: nn.MaxPool2D(4), (None, 1, 3, 3), "window (4, 4) is larger than"),
    (lambda: nn.MaxPool2D(2), (None, 1, 3), "expects (batch, channels, height, width)"),
])
def test_bad_inputs_name_the_layer_and_line(layer, shape, message):
    with fc.Graph():
        la = layer()
        with pytest.raises(FlowcError) as e:
            la(fc.input("x", shape))
        assert message in str(e.value) and "test_nn_conv.py:" in str(e.value), str(e.value)
