"""flowc.nn's convolutional layers against NumPy references (values, shapes, gradients by
central differences), their TOML kinds, the shipped CNN model files, fc.conv_transpose
against the scatter definition, and the errors for bad arguments."""
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import flowc as fc
from flowc import nn
from flowc.models import load_model_file
from opinfo import conv_ref, max_pool_ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(41)


def conv_transpose_ref(x, w, stride, padding, output_padding, groups, dilation):
    """PyTorch's conv_transpose by its definition: each input element scatters its kernel
    times itself into the output, then the padding is cropped."""
    nd = x.ndim - 2
    N, C = x.shape[:2]
    cog, K = w.shape[1], w.shape[2:]
    full = [(h - 1) * s + d * (k - 1) + 1 + op for h, s, d, k, op in
            zip(x.shape[2:], stride, dilation, K, output_padding)]
    y = np.zeros((N, cog * groups) + tuple(full))
    cg = C // groups
    for n, c in itertools.product(range(N), range(C)):
        g = c // cg
        for p in itertools.product(*map(range, x.shape[2:])):
            for i in itertools.product(*map(range, K)):
                q = tuple(pp * s + ii * d for pp, s, ii, d in zip(p, stride, i, dilation))
                y[(n, slice(g * cog, (g + 1) * cog)) + q] += x[(n, c) + p] * w[(c, slice(None)) + i]
    return y[(slice(None), slice(None)) + tuple(slice(pd, f - pd) for pd, f in
                                                 zip(padding, full))]


@pytest.mark.parametrize("seed", range(10))
def test_conv_transpose_matches_the_scatter_definition(seed):
    r = np.random.default_rng(500 + seed)
    nd = int(r.integers(1, 3))
    g = int(r.choice([1, 2]))
    cin, cog = g * int(r.integers(1, 3)), int(r.integers(1, 3))
    k = tuple(int(v) for v in r.integers(1, 4, nd))
    s = tuple(int(v) for v in r.integers(1, 4, nd))
    d = tuple(int(v) for v in r.integers(1, 3, nd))
    p = tuple(int(r.integers(0, dd * (kk - 1) + 1)) for kk, dd in zip(k, d))
    op = tuple(int(r.integers(0, max(ss, dd))) for ss, dd in zip(s, d))
    S = tuple(int(v) for v in r.integers(2, 5, nd))
    xv, wv = r.standard_normal((2, cin) + S), r.standard_normal((cin, cog) + k)
    want = conv_transpose_ref(xv, wv, s, p, op, g, d)
    if min(want.shape[2:]) < 1:
        return
    x, w = fc.input("x", (None, cin) + S), fc.input("w", wv.shape)
    y = fc.conv_transpose(x, w, s, p, op, g, d)
    f = fc.function([x, w], [y] + fc.grad(fc.sum(fc.sin(y)), [x, w]))
    for _ in range(3):
        got = f(xv, wv)
        np.testing.assert_allclose(got[0], want, rtol=1e-12, atol=1e-12)
    for i, a in enumerate((xv, wv)):
        def cost(v, i=i):
            args = [xv, wv]
            args[i] = v
            return float(np.sin(conv_transpose_ref(*args, s, p, op, g, d)).sum())
        num = fc.numerical_grad(cost, [a])[0]
        np.testing.assert_allclose(got[1 + i], num, rtol=1e-6, atol=1e-7)


def test_conv_layers_compute_their_definitions():
    x = fc.input("x", (None, 2, 7, 6))
    layers = [nn.Conv2D(4, 3, stride=2, padding=1, activation="relu", seed=1),
              nn.Conv2D(4, (3, 2), padding="same", groups=2, use_bias=False, seed=2),
              nn.ConvTranspose2D(3, 3, stride=2, padding=1, output_padding=1, seed=3),
              nn.MaxPool2D(2), nn.AvgPool2D(3, stride=2, padding=1, count_include_pad=False),
              nn.GlobalAvgPool(), nn.Flatten()]
    xv = rng.standard_normal((2, 2, 7, 6))
    outs = [layer(x) for layer in layers]
    got = fc.function([x], outs)(xv)
    c0, c1, ct = layers[:3]
    W, b = c0.W.get_value(), c0.b.get_value()
    want0 = np.maximum(conv_ref(xv, W, (2, 2), ((1, 1), (1, 1)), (1, 1), (1, 1), 1, False)
                       + b[:, None, None], 0)
    np.testing.assert_allclose(got[0], want0, rtol=1e-12)
    want1 = conv_ref(xv, c1.W.get_value(), (1, 1), ((1, 1), (0, 1)), (1, 1), (1, 1), 2, False)
    np.testing.assert_allclose(got[1], want1, rtol=1e-12, atol=1e-14)
    want2 = conv_transpose_ref(xv, ct.W.get_value(), (2, 2), (1, 1), (1, 1), 1, (1, 1)) + \
        ct.b.get_value()[:, None, None]
    assert got[2].shape == (2, 3, 14, 12)
    np.testing.assert_allclose(got[2], want2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got[3], max_pool_ref(xv, (2, 2), (2, 2), (0, 0), False))
    assert got[4].shape == (2, 2, 4, 3)
    np.testing.assert_allclose(got[5], xv.mean(axis=(2, 3)))
    np.testing.assert_array_equal(got[6], xv.reshape(2, -1))
    assert c0.W.type.shape == (4, 2, 3, 3) and c1.W.type.shape == (4, 1, 3, 2)
    assert ct.W.type.shape == (2, 3, 3, 3)       # PyTorch's (in, out / groups, kh, kw)


def test_conv_weights_are_drawn_with_the_convs_fans():
    layer = nn.Conv2D(64, 5, init="he_normal", seed=0)
    layer(fc.input("x", (None, 16, 9, 9)))
    W = layer.W.get_value()
    np.testing.assert_allclose(W.std(), np.sqrt(2 / (16 * 25)), rtol=0.05)


def test_a_cnn_trains_and_its_gradients_match_differences():
    x, y = fc.input("x", (None, 1, 6, 6)), fc.input("y", (None,), "int64")
    model = nn.Sequential([nn.Conv2D(3, 3, padding=1, activation="tanh"), nn.AvgPool2D(2),
                           nn.ConvTranspose2D(2, 2, stride=2), nn.MaxPool2D(3, stride=3),
                           nn.Flatten(), nn.Dense(3)], seed=0)
    task = nn.supervised(model, x, y, loss="categorical_crossentropy")
    xv, yv = rng.standard_normal((4, 1, 6, 6)), np.array([0, 1, 2, 1])
    f = fc.function([x, y], fc.grad(task.loss, model.params))
    loss = fc.function([x, y], task.loss)
    got = f(xv, yv)
    for p, g in zip(model.params, got):
        v = p.get_value()
        idx = tuple(rng.integers(0, n) for n in v.shape)

        def at(delta, p=p, v=v, idx=idx):
            w = v.copy()
            w[idx] += delta
            p.set_value(w)
            out = float(loss(xv, yv))
            p.set_value(v)
            return out
        num = (at(1e-6) - at(-1e-6)) / 2e-6
        np.testing.assert_allclose(g[idx], num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Conv2D(0, 3), "filters must be a positive int"),
    (lambda: nn.Conv2D(4, 3, groups=3), "groups must be a positive int dividing filters"),
    (lambda: nn.Conv2D(4, (3, 3, 3)), "kernel_size must be an int >= 1 or 2 of them"),
    (lambda: nn.Conv2D(4, 3, padding="full"), "padding must be 'same', 'valid'"),
    (lambda: nn.MaxPool2D(0), "kernel_size must be an int >= 1"),
    (lambda: nn.Conv2D(4, 3)(fc.input("x", (None, 3, 5))), "expects \\(batch, channels, 2"),
    (lambda: nn.Conv2D(4, 3, groups=2)(fc.input("x", (None, 3, 5, 5))), "must divide"),
    (lambda: fc.conv_transpose2d(fc.input("x", (1, 2, 3, 3)), fc.input("w", (2, 1, 3, 3)),
                                 stride=2, output_padding=2), "output_padding .* must be smaller"),
])
def test_bad_conv_layer_arguments_are_named(make, match):
    with pytest.raises(fc.FlowcError, match=match):
        make()


CNN_TOML = """
[inputs.x]
shape = ["batch", 36]
[inputs.y]
shape = ["batch"]
dtype = "int64"
[[layers]]
type = "reshape"
shape = [1, 6, 6]
[[layers]]
type = "conv2d"
filters = 4
kernel_size = [3, 3]
padding = "same"
activation = "relu"
[[layers]]
type = "conv_transpose2d"
filters = 2
kernel_size = 2
stride = 2
[[layers]]
type = "avgpool2d"
kernel_size = 2
count_include_pad = false
[[layers]]
type = "maxpool2d"
kernel_size = 3
stride = 2
padding = 1
ceil_mode = true
[[layers]]
type = "globalavgpool"
[[layers]]
type = "flatten"
[[layers]]
type = "dense"
units = 3
[loss]
type = "categorical_crossentropy"
target = "y"
"""


def test_the_toml_layer_kinds_build_and_train(tmp_path):
    path = tmp_path / "cnn.toml"
    path.write_text(CNN_TOML)
    with fc.Graph():
        b = load_model_file(str(path))
        kinds = [type(layer).__name__ for layer in b.model.layers]
        assert kinds == ["Reshape", "Conv2D", "ConvTranspose2D", "AvgPool2D", "MaxPool2D",
                         "GlobalAvgPool", "Flatten", "Dense"]
        trainer = nn.Trainer(b.task, "adam", lr=0.01)
        X, Y = rng.standard_normal((24, 36)), rng.integers(0, 3, 24)
        h = trainer.fit([X, Y], epochs=3, batch_size=8, log=None)
        assert h["loss"][-1] < h["loss"][0]


def test_bad_conv_fields_in_a_model_file_name_the_line(tmp_path):
    from flowc.models import ModelFileError
    path = tmp_path / "bad.toml"
    path.write_text(CNN_TOML.replace('kernel_size = [3, 3]', 'kernel_size = [3, 0]'))
    with pytest.raises(ModelFileError, match=r"bad.toml:13: layers\[1\].kernel_size: expected "
                       r"an integer >= 1 or an array of them"):
        load_model_file(str(path))


@pytest.mark.slow
def test_the_digits_cnn_beats_the_mlp_from_the_cli(tmp_path):
    """The numbers digits_cnn.toml's header states: 0.9800 held out against the MLP's 0.9578."""
    r = subprocess.run([sys.executable, "-m", "flowc", "train", "flowc/examples/digits_cnn.toml",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=600)
    assert r.returncode == 0, r.stderr
    acc = float(r.stdout.strip().splitlines()[-1].split()[-1])
    assert acc >= 0.975, r.stdout
