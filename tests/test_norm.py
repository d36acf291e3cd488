"""fc.batch_norm / fc.layer_norm against NumPy (and torch when it imports), their gradients
against finite differences, nn.BatchNorm's train/eval graphs and running statistics, the
trainer's use of them (updates, evaluation mode, checkpoints), the model-file kinds and the
errors."""
import numpy as np
import pytest

import flowc as fc
from flowc import nn
from flowc.ir.errors import FlowcError
from flowc.models import ModelFileError, load_model_file

rng = np.random.default_rng(15)
LEVELS = ("O0", "O2")


def bn_ref(x, mean, var, weight=None, bias=None, eps=1e-5, axis=1):
    shape = [1] * x.ndim
    shape[axis] = -1
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    return y + bias.reshape(shape) if bias is not None else y


def bn_train_ref(x, weight, bias, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    return bn_ref(x, x.mean(axes), x.var(axes), weight, bias, eps)


def ln_ref(x, k, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    m = x.mean(axes, keepdims=True)
    y = (x - m) / np.sqrt(((x - m) ** 2).mean(axes, keepdims=True) + eps)
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


# -- the functions ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6), (2, 3, 4, 5)])
@pytest.mark.parametrize("affine", [False, True])
def test_batch_norm_with_given_statistics(shape, affine):
    c = shape[1]
    xv = rng.standard_normal(shape)
    m, v, w, b = rng.standard_normal(c), rng.random(c) + 0.1, rng.standard_normal(c), \
        rng.standard_normal(c)
    x = fc.input("x", (None,) + shape[1:])
    args = (w, b) if affine else (None, None)
    y = fc.batch_norm(x, m, v, *args, eps=1e-3)
    for lv in LEVELS:
        np.testing.assert_allclose(fc.function([x], y, optimize=lv)(xv),
                                   bn_ref(xv, m, v, *args, eps=1e-3), rtol=1e-12, atol=1e-12)


def test_batch_norm_on_another_channel_axis():
    xv, m, v = rng.standard_normal((2, 5, 4)), rng.standard_normal(4), rng.random(4) + 0.5
    x = fc.input("x", xv.shape)
    got = fc.function([x], fc.batch_norm(x, m, v, axis=-1))(xv)
    np.testing.assert_allclose(got, bn_ref(xv, m, v, axis=2), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2])
def test_layer_norm_over_trailing_sizes_and_over_axes(k):
    xv = rng.standard_normal((3, 4, 5))
    w, b = rng.standard_normal(xv.shape[3 - k:]), rng.standard_normal(xv.shape[3 - k:])
    x = fc.input("x", (None, 4, 5))
    for lv in LEVELS:
        got = fc.function([x], fc.layer_norm(x, xv.shape[3 - k:], w, b), optimize=lv)(xv)
        np.testing.assert_allclose(got, ln_ref(xv, k, w, b), rtol=1e-12, atol=1e-12)
    # axes=(0, 2): weight of shape (3, 5) broadcast over axis 1
    x = fc.input("x", xv.shape)
    w = rng.standard_normal((3, 5))
    got = fc.function([x], fc.layer_norm(x, axes=(0, 2), weight=w))(xv)
    m = xv.mean((0, 2), keepdims=True)
    want = (xv - m) / np.sqrt(((xv - m) ** 2).mean((0, 2), keepdims=True) + 1e-5) * w[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_variance_is_not_cancelled_by_a_large_mean():
    # E[x^2] - E[x]^2 at mean 1e8 and std 1 loses every digit (1e16 * 2^-52 ~ 2); the mean
    # of squared deviations keeps them.
    d = rng.standard_normal((4, 64))
    x = fc.input("x", d.shape)
    got = fc.function([x], fc.layer_norm(x, 64))(d + 1e8)
    np.testing.assert_allclose(got, ln_ref(d, 1), rtol=1e-6, atol=1e-6)
    z = fc.input("z", (None, 64))
    got = fc.function([z], nn.BatchNorm()(z, training=True))(d + 1e8)
    np.testing.assert_allclose(got, bn_train_ref(d, None, None), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("level", LEVELS)
def test_batch_norm_gradients_in_training_mode_match_finite_differences(level):
    xv = rng.standard_normal((4, 3, 5))
    wv, bv, gv = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(xv.shape)
    x, w, b = fc.input("x", (None, 3, 5)), fc.input("w", (3,)), fc.input("b", (3,))
    axes = (0, 2)
    m, v = fc.ops.api_norm.moments(x, axes, keepdims=False)
    cost = fc.sum(fc.sin(fc.batch_norm(x, m, v, w, b)) * gv)
    f = fc.function([x, w, b], fc.grad(cost, [x, w, b]), optimize=level)
    for call in range(3):
        got = f(xv, wv, bv)
        want = fc.numerical_grad(lambda p, q, r: np.sum(np.sin(bn_train_ref(p, q, r)) * gv),
                                 [xv, wv, bv])
        for a, e in zip(got, want):
            np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7)
        xv = xv + 0.1 * rng.standard_normal(xv.shape)


@pytest.mark.parametrize("level", LEVELS)
def test_layer_norm_gradients_match_finite_differences(level):
    xv = rng.standard_normal((3, 2, 4))
    wv, bv, gv = rng.standard_normal((2, 4)), rng.standard_normal((2, 4)), \
        rng.standard_normal(xv.shape)
    x, w, b = fc.input("x", (None, 2, 4)), fc.input("w", (2, 4)), fc.input("b", (2, 4))
    cost = fc.sum(fc.tanh(fc.layer_norm(x, (2, 4), w, b)) * gv)
    f = fc.function([x, w, b], fc.grad(cost, [x, w, b]), optimize=level)
    got = f(xv, wv, bv)
    want = fc.numerical_grad(lambda p, q, r: np.sum(np.tanh(ln_ref(p, 2, q, r)) * gv),
                             [xv, wv, bv])
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_against_torch_batch_norm_and_layer_norm(dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xv = (rng.standard_normal((4, 3, 5, 2)) * 3 + 2).astype(dtype)
    m, v, w, b = (a.astype(dtype) for a in (rng.standard_normal(3), rng.random(3) + 0.2,
                                            rng.standard_normal(3), rng.standard_normal(3)))
    W, B = (rng.standard_normal((5, 2)).astype(dtype) for _ in range(2))
    g = rng.standard_normal(xv.shape).astype(dtype)
    T = {k: torch.tensor(a, requires_grad=True) for k, a in
         dict(x=xv, w=w, b=b, W=W, B=B).items()}
    outs = [F.batch_norm(T["x"], torch.tensor(m), torch.tensor(v), T["w"], T["b"]),
            F.batch_norm(T["x"], None, None, T["w"], T["b"], training=True),
            F.layer_norm(T["x"], (5, 2), T["W"], T["B"])]
    x = fc.input("x", (None, 3, 5, 2), dtype)
    ins = [fc.input(k, a.shape, dtype) for k, a in (("w", w), ("b", b), ("W", W), ("B", B))]
    fw, fb, fW, fB = ins
    bm, bv = fc.ops.api_norm.moments(x, (0, 2, 3), keepdims=False)
    mine = [fc.batch_norm(x, m, v, fw, fb), fc.batch_norm(x, bm, bv, fw, fb),
            fc.layer_norm(x, (5, 2), fW, fB)]
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
    for i, (t, y) in enumerate(zip(outs, mine)):
        for k in T:
            T[k].grad = None
        t.backward(torch.tensor(g))
        wrt = [x, fw, fb] if i < 2 else [x, fW, fB]
        got = fc.function([x] + ins, [y] + fc.grad(fc.sum(y * g), wrt))(xv, w, b, W, B)
        keys = ["x", "w", "b"] if i < 2 else ["x", "W", "B"]
        theirs = [t] + [T[k].grad for k in keys]
        for a, e in zip(got, theirs):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, e.detach().numpy(), **tol, err_msg=f"output {i}")


# -- the layers ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2)])
@pytest.mark.parametrize("level", LEVELS)
def test_batchnorm_running_statistics_over_three_steps(shape, level):
    x = fc.input("x", (None,) + shape[1:])
    bn = nn.BatchNorm(momentum=0.2)
    y_train, y_eval = bn(x, training=True), bn(x, training=False)
    assert [p.name for p in bn.params] == ["batchnorm1.weight", "batchnorm1.bias"]
    assert [p.name for p in bn.buffers] == ["batchnorm1.running_mean", "batchnorm1.running_var"]
    step = fc.function([x], y_train, updates=bn.state_updates(), optimize=level)
    evaluate = fc.function([x], y_eval, optimize=level)
    bn.weight.set_value(rng.standard_normal(3))
    bn.bias.set_value(rng.standard_normal(3))
    w, b = bn.weight.get_value(), bn.bias.get_value()
    rm, rv = np.zeros(3), np.ones(3)
    axes = (0,) + tuple(range(2, len(shape)))
    for n in (shape[0], 2, shape[0] + 3):  # batch sizes change between calls
        xv = rng.standard_normal((n,) + shape[1:]) * 2 + 5
        np.testing.assert_allclose(step(xv), bn_train_ref(xv, w, b), rtol=1e-10, atol=1e-10)
        # PyTorch's rule: the running variance takes the unbiased batch variance
        rm = 0.8 * rm + 0.2 * xv.mean(axes)
        rv = 0.8 * rv + 0.2 * xv.var(axes, ddof=1)
        np.testing.assert_allclose(bn.running_mean.get_value(), rm, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.get_value(), rv, rtol=1e-12)
    xv = rng.standard_normal((3,) + shape[1:])
    np.testing.assert_allclose(evaluate(xv), bn_ref(xv, rm, rv, w, b), rtol=1e-12)
    evaluate(xv)  # evaluation leaves the running statistics alone
    np.testing.assert_allclose(bn.running_mean.get_value(), rm, rtol=1e-12)


def test_batchnorm_batch_of_one_keeps_the_running_variance_finite():
    x = fc.input("x", (None, 2))
    bn = nn.BatchNorm()
    y = bn(x, training=True)
    f = fc.function([x], y, updates=bn.state_updates())
    np.testing.assert_array_equal(f(np.array([[1.0, 2.0]])), np.zeros((1, 2)))
    assert np.all(np.isfinite(bn.running_var.get_value()))
    with pytest.raises(FlowcError, match="more than one value per channel"):
        nn.BatchNorm()(fc.input("z", (1, 2)), training=True)


def test_batchnorm_and_layernorm_against_torch_modules():
    torch = pytest.importorskip("torch")
    for dtype in ("float32", "float64"):
        x = fc.input("x", (None, 3, 4, 4), dtype)
        bn = nn.BatchNorm(3)
        ln = nn.LayerNorm((4, 4))
        y = ln(bn(x, training=True))
        f = fc.function([x], y, updates=bn.state_updates())
        g = fc.function([x], ln(bn(x, training=False)))
        tb = torch.nn.BatchNorm2d(3).to(getattr(torch, dtype))
        tl = torch.nn.LayerNorm((4, 4)).to(getattr(torch, dtype))
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
        for _ in range(3):
            xv = (rng.standard_normal((5, 3, 4, 4)) * 2 + 1).astype(dtype)
            got = f(xv)
            assert got.dtype == dtype
            np.testing.assert_allclose(got, tl(tb(torch.tensor(xv))).detach().numpy(), **tol)
        np.testing.assert_allclose(bn.running_var.get_value(), tb.running_var.numpy(), **tol)
        tb.eval()
        xv = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
        np.testing.assert_allclose(g(xv), tl(tb(torch.tensor(xv))).detach().numpy(), **tol)


def test_layernorm_infers_the_last_axis_and_checks_it():
    x = fc.input("x", (None, 7))
    ln = nn.LayerNorm()
    ln(x)
    assert ln.normalized_shape == (7,) and [p.type.shape for p in ln.params] == [(7,), (7,)]
    assert nn.LayerNorm(elementwise_affine=False)(x) is not None
    with pytest.raises(FlowcError, match=r"trailing sizes .* normalized_shape \(5,\)"):
        nn.LayerNorm(5)(x)


def _model(seed=0):
    return nn.Sequential([nn.Dense(8), nn.BatchNorm(), nn.Activation("relu"), nn.Dense(3)],
                         seed=seed)


def _data():
    r = np.random.default_rng(3)
    return r.standard_normal((50, 4)) * 3 + 2, r.integers(0, 3, 50)


def test_the_trainer_updates_running_statistics_and_evaluates_with_them(tmp_path):
    X, Y = _data()
    model = _model()
    x, y = fc.input("x", (None, 4)), fc.input("y", (None,), "int64")
    task = nn.supervised(model, x, y)
    bn = model.layers[1]
    assert task.eval_loss is not task.loss  # a separate evaluation graph
    assert {p.name for p, _ in task.state_updates} == {bn.running_mean.name,
                                                       bn.running_var.name}
    tr = nn.Trainer(task, "sgd", lr=0.05)
    tr.fit([X, Y], epochs=1, batch_size=16)  # 50 rows: the last batch has 2
    rm, rv = bn.running_mean.get_value().copy(), bn.running_var.get_value().copy()
    assert not np.allclose(rm, 0) and not np.allclose(rv, 1)
    # evaluation = the model with the running statistics, by hand
    W1, b1, w, b, W2, b2 = (p.get_value() for p in model.params)
    h = np.maximum(bn_ref(X @ W1 + b1, rm, rv, w, b), 0)
    z = h @ W2 + b2
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    want = np.mean(lse - z[np.arange(len(Y)), Y])
    assert tr.evaluate([X, Y])["loss"] == pytest.approx(want, rel=1e-10)
    np.testing.assert_allclose(tr.predict(X), z, rtol=1e-10)
    np.testing.assert_array_equal(bn.running_mean.get_value(), rm)  # evaluation left them
    # checkpoints hold the running statistics
    names = {p.name for p in tr.state_params}
    assert {bn.running_mean.name, bn.running_var.name} <= names
    path = str(tmp_path / "ck.npz")
    tr.save(path)
    tr.fit([X, Y], epochs=2, batch_size=16)
    assert not np.allclose(bn.running_mean.get_value(), rm)
    tr.load(path)
    np.testing.assert_array_equal(bn.running_mean.get_value(), rm)
    np.testing.assert_array_equal(bn.running_var.get_value(), rv)


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    X, Y = _data()
    runs = []
    for resume in (False, True):
        with fc.Graph():
            model = _model()
            task = nn.supervised(model, fc.input("x", (None, 4)),
                                 fc.input("y", (None,), "int64"))
            tr = nn.Trainer(task, "momentum", lr=0.05)
            if resume:
                tr.fit([X, Y], epochs=1, batch_size=16)
                tr.save(str(tmp_path / "ck.npz"))
                tr.fit([X, Y], epochs=2, batch_size=16)  # then thrown away
                tr.load(str(tmp_path / "ck.npz"))
            tr.fit([X, Y], epochs=2, batch_size=16)
            runs.append([p.get_value().copy() for p in tr.state_params])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


MODEL = """\
[model]
name = "normed"
seed = 2

[inputs.x]
shape = ["batch", 4]

[inputs.y]
shape = ["batch"]
dtype = "int64"

[[layers]]
type = "dense"
units = 6

[[layers]]
type = "batchnorm"
momentum = 0.3
eps = 0.001

[[layers]]
type = "layernorm"
elementwise_affine = false

[[layers]]
type = "dense"
units = 3

[loss]
type = "categorical_crossentropy"
target = "y"
"""


def test_model_file_kinds_batchnorm_and_layernorm(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text(MODEL)
    b = load_model_file(str(p))
    bn, ln = b.model.layers[1], b.model.layers[2]
    assert isinstance(bn, nn.BatchNorm) and (bn.momentum, bn.eps) == (0.3, 0.001)
    assert isinstance(ln, nn.LayerNorm) and ln.params == []
    assert len(b.task.state_updates) == 2 and b.task.eval_loss is not b.task.loss
    X, Y = _data()
    nn.Trainer(b.task, "sgd", lr=0.1).fit([X, Y], epochs=1, batch_size=25)
    assert not np.allclose(bn.running_mean.get_value(), 0)
    p.write_text(MODEL.replace("eps = 0.001", "eps = 0"))
    with pytest.raises(ModelFileError, match=r"m.toml:\d+: layers\[1\]\.eps: expected a number "
                                             r"> 0, got 0"):
        load_model_file(str(p))


# -- errors ----------------------------------------------------------------------------------
def _x(shape=(2, 3, 4)):
    return fc.input("x", shape)


@pytest.mark.parametrize("make, match", [
    (lambda: fc.batch_norm(fc.input("v", (3,)), np.zeros(3), np.ones(3)),
     r"batch_norm at .*test_norm.py:\d+: expected x \(N, C, \.\.\.\) of rank >= 2, got rank 1"),
    (lambda: fc.batch_norm(_x(), np.zeros(4), np.ones(3)),
     r"batch_norm at .*: mean must have one entry per channel \(shape \(3,\) along axis 1\), "
     r"got f64\[4\]"),
    (lambda: fc.batch_norm(_x(), np.zeros(3), np.ones(3), weight=np.ones(2)),
     r"weight must have one entry per channel"),
    (lambda: fc.batch_norm(_x(), np.zeros(3), np.ones(3), eps=0.0),
     r"batch_norm at .*: eps must be a positive number, got 0.0"),
    (lambda: fc.batch_norm(_x(), np.zeros(3), np.ones(3), axis=3),
     r"axis must be an int in \[-3, 3\), got 3"),
    (lambda: fc.layer_norm(_x(), (3,)),
     r"layer_norm at .*: normalized_shape \(3,\) must be the trailing sizes of x"),
    (lambda: fc.layer_norm(_x(), 4, weight=np.ones(3)),
     r"weight must have the normalized sizes \(4,\), got f64\[3\]"),
    (lambda: fc.layer_norm(_x(), 4, eps=-1),
     r"layer_norm at .*: eps must be a positive number, got -1"),
    (lambda: fc.layer_norm(_x()), r"give exactly one of normalized_shape .* and axes"),
    (lambda: fc.layer_norm(_x(), axes=(1, -2)), r"axes must be distinct ints"),
    (lambda: nn.BatchNorm(4)(_x()), r"batchnorm1 \(at .*\) expects 4 channels"),
    (lambda: nn.BatchNorm()(fc.input("v", (None,))), r"known channel count"),
])
def test_bad_uses_are_errors_naming_the_op_sizes_and_line(make, match):
    with pytest.raises(FlowcError, match=match) as e:
        make()
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("make, match", [
    (lambda: nn.BatchNorm(eps=0), "eps must be a positive number"),
    (lambda: nn.BatchNorm(momentum=1.5), r"momentum must be a number in \[0, 1\]"),
    (lambda: nn.BatchNorm(num_features=0), "num_features must be a positive int"),
    (lambda: nn.LayerNorm((3, 0)), "normalized_shape must be positive ints"),
])
def test_bad_layer_arguments(make, match):
    with pytest.raises(FlowcError, match=match):
        make()


def test_a_normed_model_exported_as_json_trains_the_same(tmp_path):
    from flowc.models.resolve import export, from_graph_file, resolve
    p = tmp_path / "m.toml"
    p.write_text(MODEL)
    loaded = resolve(str(p))
    again = from_graph_file(export(loaded, str(tmp_path / "m.json")))
    X, Y = _data()
    runs = []
    for m in (loaded, again):
        tr = nn.Trainer(m.task, "sgd", lr=0.1)
        runs.append((tr.fit([X, Y], epochs=2, batch_size=16).as_dict()["loss"],
                     tr.evaluate([X, Y])["loss"]))
    assert runs[0] == runs[1]
