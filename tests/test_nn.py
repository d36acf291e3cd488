"""flowc.nn: layers (shapes, names, initializers), losses and metrics against NumPy, dropout
(determinism and rate), the training loop (history, evaluation, NaN stop), progress bar."""
import io

import numpy as np
import pytest

import flowc as fc
from flowc import nn
from flowc.nn import init as I


def this_line():
    import inspect
    return f"test_nn.py:{inspect.currentframe().f_back.f_lineno}"


# -- layers -----------------------------------------------------------------------------------
def test_dense_shapes_names_and_trace():
    x = fc.input("x", (None, 5))
    d1, d2 = nn.Dense(3, activation="tanh"), nn.Dense(2)
    h = d1(x); where = this_line()  # noqa: E702
    y = d2(h)
    assert h.shape == (None, 3) and y.shape == (None, 2)
    assert [p.name for p in d1.params] == ["dense1.W", "dense1.b"]
    assert [p.name for p in d2.params] == ["dense2.W", "dense2.b"]
    assert d1.W.shape == (5, 3) and d1.b.shape == (3,)
    # Nodes made inside flowc.nn are credited to the user's line that called the layer.
    assert d1.W.node["trace"] == where and h.node["trace"] == where
    assert h.name == "dense1" and y.name == "dense2"
    f = fc.function([x], y)
    X = np.arange(10.0).reshape(2, 5)
    want = np.tanh(X @ d1.W.get_value() + d1.b.get_value()) @ d2.W.get_value()
    np.testing.assert_allclose(f(X), want + d2.b.get_value())
    assert "dense1.W" in fc.to_dot(y, stage="forward")


def test_linear_is_dense_with_pytorch_arguments():
    x = fc.input("x", (None, 4))
    lin = nn.Linear(4, 6, name="proj")
    assert lin(x).shape == (None, 6)
    assert [p.name for p in lin.params] == ["proj.W", "proj.b"]


def test_shape_errors_name_the_layer_and_the_user_line():
    x = fc.input("x", (None, 5)); made = this_line()  # noqa: E702
    called = f"test_nn.py:{int(made.split(':')[1]) + 3}"
    with pytest.raises(fc.ShapeError) as e:
        nn.Dense(3, in_features=4)(x)  # this line is `called`
    assert str(e.value) == (f"dense1 (at {called}) expects 4 input features, got "
                            f"x: f64[?,5] (input, made at {made})")
    with pytest.raises(fc.ShapeError, match="last dimension of its input must be known"):
        nn.Dense(3)(fc.input("z", (None, None)))


def test_same_seed_same_weights_different_seed_different():
    def weights(seed):
        with fc.Graph():
            m = nn.Sequential([nn.Dense(8), nn.Dense(4)], seed=seed)
            m(fc.input("x", (None, 3)))
            return [p.get_value() for p in m.params]
    a, b, c = weights(0), weights(0), weights(1)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0][:3, :4], a[2][:3, :4])  # layers draw different numbers


@pytest.mark.parametrize("name, bound, var", [
    ("glorot_uniform", np.sqrt(6 / 1000), 2 / 1000),
    ("glorot_normal", None, 2 / 1000),
    ("he_uniform", np.sqrt(6 / 400), 2 / 400),
    ("he_normal", None, 2 / 400),
    ("lecun_normal", None, 1 / 400),
])
def test_initializer_statistics(name, bound, var):
    w = I.get(name)(I.rng_for(0, "w"), (400, 600))
    assert w.shape == (400, 600) and w.dtype == np.float64
    assert abs(w.mean()) < 0.02 * np.sqrt(var) * 10
    assert w.var() == pytest.approx(var, rel=0.02)
    if bound is not None:
        assert np.abs(w).max() <= bound
    assert np.array_equal(w, I.get(name)(I.rng_for(0, "w"), (400, 600)))


def test_unknown_initializer_and_activation_are_clear():
    with pytest.raises(ValueError, match="unknown initializer 'glorot'.*glorot_uniform"):
        I.get("glorot")
    with pytest.raises(fc.FlowcError, match="unknown activation 'tanhh'"):
        nn.Dense(3, activation="tanhh")


# -- losses and metrics -----------------------------------------------------------------------
def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def run(out, *arrays_and_inputs):
    ins, arrs = arrays_and_inputs[::2], arrays_and_inputs[1::2]
    return fc.function(list(ins), out)(*arrs)


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((6, 4)) * 3
    labels = rng.integers(0, 4, 6)
    onehot = np.eye(4)[labels]
    z = fc.input("z", (None, 4))
    yi = fc.input("yi", (None,), "int64")
    yo = fc.input("yo", (None, 4))
    want = -log_softmax(Z)[np.arange(6), labels].mean()
    assert run(nn.categorical_cross_entropy(z, yi), z, Z, yi, labels) == pytest.approx(want)
    assert run(nn.categorical_cross_entropy(z, yo), z, Z, yo, onehot) == pytest.approx(want)
    assert run(nn.mse(z, yo), z, Z, yo, onehot) == pytest.approx(((Z - onehot) ** 2).mean())
    b = fc.input("b", (None,))
    t = fc.input("t", (None,))
    zb, tb = Z[:, 0], (labels % 2).astype(float)
    p = 1 / (1 + np.exp(-zb))
    want_b = -np.mean(tb * np.log(p) + (1 - tb) * np.log(1 - p))
    assert run(nn.binary_cross_entropy(b, t), b, zb, t, tb) == pytest.approx(want_b)


def test_cross_entropies_from_logits_stay_finite_for_huge_logits():
    z = fc.input("z", (None,))
    t = fc.input("t", (None,))
    loss = nn.binary_cross_entropy(z, t)
    gz = fc.grad(loss, z)
    f = fc.function([z, t], [loss, gz])
    val, g = f(np.array([800.0, -800.0]), np.array([0.0, 1.0]))
    assert val == pytest.approx(800.0) and np.allclose(g, [0.5, -0.5])
    Z = np.array([[1000.0, -1000.0, 0.0]])
    zz = fc.input("zz", (None, 3))
    y = fc.input("y", (None,), "int64")
    assert fc.function([zz, y], nn.categorical_cross_entropy(zz, y))(Z, [1]) == \
        pytest.approx(2000.0)


def test_loss_shape_mismatch_names_both_tensors():
    z = fc.input("z", (None, 10))
    y = fc.input("y", (None, 5))
    with pytest.raises(fc.ShapeError, match=r"target y: f64\[\?,5\].*does not match.*z: f64"):
        nn.categorical_cross_entropy(z, y)


def test_accuracy_multiclass_and_binary():
    Z = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    labels = np.array([0, 1, 1, 2])
    z = fc.input("z", (None, 3))
    y = fc.input("y", (None,), "int64")
    assert run(nn.accuracy(z, y), z, Z, y, labels) == 0.5
    yo = fc.input("yo", (None, 3))
    assert run(nn.accuracy(z, yo), z, Z, yo, np.eye(3)[labels]) == 0.5
    b = fc.input("b", (None, 1))
    t = fc.input("t", (None,))
    assert run(nn.accuracy(b, t), b, np.array([[1.0], [-1.0], [2.0]]), t,
               np.array([1.0, 1.0, 0.0])) == pytest.approx(1 / 3)


# -- dropout and the random generator ---------------------------------------------------------
def dropout_run(seed, rate=0.3, calls=2, shape=(50, 200)):
    with fc.Graph():
        x = fc.input("x", (None, shape[1]))
        d = nn.Dropout(rate, seed=seed)
        y = d(x, training=True)
        f = fc.function([x], y, updates=d.state_updates())
        return [f(np.ones(shape)) for _ in range(calls)], d


def test_dropout_rate_scale_and_determinism():
    (a1, a2), d = dropout_run(0)
    (b1, b2), _ = dropout_run(0)
    (c1, _), _ = dropout_run(1)
    assert d.generator.state.name == "dropout1.rng"
    for a in (a1, a2):
        kept = a != 0
        assert kept.mean() == pytest.approx(0.7, abs=0.015)
        np.testing.assert_allclose(a[kept], 1 / 0.7)
        assert a.mean() == pytest.approx(1.0, abs=0.03)  # inverted dropout keeps the mean
    assert np.array_equal(a1, b1) and np.array_equal(a2, b2)   # same seed, same run
    assert not np.array_equal(a1, a2)                          # the counter advances
    assert (a1 != c1).mean() > 0.3                             # another seed, another mask
    assert len({row.tobytes() for row in (a1 != 0)}) == len(a1)  # rows differ


def test_dropout_is_identity_at_evaluation_and_rate_is_checked():
    x = fc.input("x", (None, 4))
    d = nn.Dropout(0.5)
    assert d(x, training=False) is x
    with pytest.raises(fc.FlowcError, match=r"rate must be a number in \[0, 1\), got 1.0"):
        nn.Dropout(1.0)


def test_uniform_numbers_look_uniform():
    x = fc.input("x", (None, 100))
    gen = nn.Generator(seed=3)
    u = gen.uniform(x)
    vals = fc.function([x], u)(np.zeros((100, 100)))
    assert vals.min() >= 0 and vals.max() < 1
    counts = np.histogram(vals, 10, (0, 1))[0]
    assert counts.min() > 850 and counts.max() < 1150
    assert abs(np.corrcoef(vals.ravel()[:-1], vals.ravel()[1:])[0, 1]) < 0.05


# -- training ----------------------------------------------------------------------------------
def blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 4)) * 0.5 + np.eye(3, 4)[y] * 2
    return X, y


def make_task(seed=0, dropout=0.0):
    x = fc.input("x", (None, 4))
    y = fc.input("y", (None,), "int64")
    layers = [nn.Dense(16, "relu")] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Dense(3)]
    model = nn.Sequential(layers, seed=seed)
    return nn.supervised(model, x, y, loss="categorical_crossentropy"), model


def test_trainer_history_evaluation_and_one_compile():
    task, model = make_task(dropout=0.2)
    X, y = blobs()
    tr = nn.Trainer(task, "adam", lr=0.05)
    step = tr.step.fn
    lines = []
    h = tr.fit([X[:150], y[:150]], epochs=5, batch_size=32, validation=[X[150:], y[150:]],
               log=lines.append)
    assert tr.step.fn is step and tr.epoch == 5
    assert list(h.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                               "seconds"]
    assert h["epoch"] == [1, 2, 3, 4, 5] and len(lines) == 5
    assert lines[0].startswith("epoch 1/5  loss ")
    assert h["loss"][-1] < h["loss"][0]
    assert h["val_accuracy"][-1] >= 0.9
    ev = tr.evaluate([X[150:], y[150:]])
    assert ev["accuracy"] == pytest.approx(h["val_accuracy"][-1])
    assert tr.predict(X[:5]).shape == (5, 3)
    names = {p.name for p in tr.state_params}
    assert {"dense1.W", "dense1.W.adam_m", "adam.t", "dropout1.rng"} <= names
    assert "dense1: Dense" not in model.summary() and "total" in model.summary()


def test_training_stops_on_nan_naming_where_and_when():
    x = fc.input("x", (None, 4))
    y = fc.input("y", (None, 1))
    model = nn.Sequential([nn.Dense(8, "relu"), nn.Dense(1)], seed=0)
    task = nn.supervised(model, x, y, loss="mse", metrics=())
    X, _ = blobs(64)
    Y = (X @ np.array([1.0, -2.0, 3.0, 0.5]))[:, None]
    tr = nn.Trainer(task, "sgd", lr=1e6)
    with pytest.raises(nn.TrainingDiverged) as e:
        tr.fit([X, Y], epochs=3, batch_size=8)
    msg = str(e.value)
    assert "appeared at epoch 1/3, batch " in msg and "(step " in msg
    assert "it first shows in the loss [loss: f64[] (mean" in msg
    assert "smaller learning rate than 1e+06" in msg
    assert e.value.epoch == 1 and e.value.batch >= 2


def test_nan_in_the_data_is_named():
    task, _ = make_task()
    X, y = blobs(40)
    X[17, 2] = np.nan
    tr = nn.Trainer(task, "sgd", lr=0.1)
    with pytest.raises(nn.TrainingDiverged, match="first shows in input 'x' of this batch") as e:
        tr.fit([X, y], epochs=1, batch_size=40)
    # The advice is about the data, not the learning rate.
    assert "NaN) and infinite values in the data" in str(e.value)
    assert "learning rate" not in str(e.value)


def test_nan_in_the_held_out_data_is_named_before_training():
    task, _ = make_task()
    X, y = blobs(40)
    Xv = X.copy()
    Xv[5, 1] = np.inf
    tr = nn.Trainer(task, "sgd", lr=0.1)
    with pytest.raises(fc.FlowcError, match=r"validation: input 'x' holds NaN or inf \(first in "
                       r"row 5\)"):
        tr.fit([X, y], epochs=1, validation=[Xv, y])
    assert tr.epoch == 0 and tr.steps == 0


def test_nan_in_a_gradient_is_named():
    x = fc.input("x", (None, 2))
    w = fc.param("w", np.array([1.0, 1.0]))
    loss = fc.mean(fc.sqrt(fc.abs(x @ w)))  # d sqrt at 0 is inf
    task = nn.Task(inputs=[x], loss=loss, params=[w])
    tr = nn.Trainer(task, "sgd", lr=0.1)
    with pytest.raises(nn.TrainingDiverged, match=r"the gradient of parameter \[w: f64\[2\]"):
        tr.fit([np.array([[1.0, -1.0]])], epochs=1)


def test_fit_checks_its_data():
    task, _ = make_task()
    tr = nn.Trainer(task)
    with pytest.raises(fc.FlowcError, match=r"expected 2 arrays \(x, y\), got 1"):
        tr.fit([np.zeros((3, 4))], epochs=1)
    with pytest.raises(fc.FlowcError, match="equal length"):
        tr.fit([np.zeros((3, 4)), np.zeros(2, "int64")], epochs=1)


def test_progress_bar_draws_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    quiet, loud = io.StringIO(), Tty()
    for stream in (quiet, loud):
        with nn.Progress(3, "epoch 1/1", stream=stream) as bar:
            for _ in range(3):
                bar.update(1, loss=0.5)
    assert quiet.getvalue() == ""
    assert "epoch 1/1 [" in loud.getvalue() and "3/3" in loud.getvalue()
    assert loud.getvalue().endswith("\r")


def test_history_csv_and_svg_plot(tmp_path, monkeypatch):
    import importlib.util
    h = nn.History()
    for e in range(1, 4):
        h.append({"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + 0.1 * e, "val_loss": 1.2 / e,
                  "val_accuracy": 0.5 + 0.09 * e, "seconds": 0.1})
    text = open(h.to_csv(str(tmp_path / "h.csv"))).read().splitlines()
    assert text[0] == "epoch,loss,accuracy,val_loss,val_accuracy,seconds"
    assert text[1].startswith("1,1.0,0.6")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    path = h.plot(str(tmp_path / "h"))
    assert path.endswith(".svg")
    import xml.etree.ElementTree as ET
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg") and len(root.findall(".//{*}polyline")) == 4
