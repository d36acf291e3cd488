"""Errors flowc raises on the user's behalf: one base class (runtime included), the classes
users catch (ValueError for shapes), and messages that name the op and the user's line, or
the file and field."""
import json
import os
import zipfile

import numpy as np
import pytest

import flowc as fc
import flowc_runtime as runtime
from flowc import cli, nn
from flowc.io import GraphFileError
from flowc.models import ModelFileError, load_model_file
from flowc.models.resolve import export, from_graph_file, resolve
from flowc.nn import checkpoint as ckpt

HERE = os.path.basename(__file__)
LEVELS = ["O0", "O1", "O2"]


# -- one base class ----------------------------------------------------------------------------
def test_every_error_class_is_a_flowc_error():
    from flowc.cli import UsageError
    from flowc.models.data import DataError
    from flowc.models.resolve import ModelError, UserCodeError
    from flowc.nn.train import TrainingDiverged
    from flowc_runtime.gpu.backend import GPUUnavailable
    assert fc.FlowcError is runtime.FlowcError
    for cls in (fc.ShapeError, fc.GraphError, fc.GradError, fc.InputError, fc.InputShapeError,
                ckpt.CheckpointError, ModelFileError, GraphFileError, DataError, ModelError,
                UserCodeError, TrainingDiverged, UsageError, fc.ArgumentError,
                runtime.ProgramError, runtime.CallError, runtime.CallShapeError, GPUUnavailable):
        assert issubclass(cls, fc.FlowcError), cls
    # The classes users caught before keep working.
    assert issubclass(runtime.ProgramError, RuntimeError)
    assert issubclass(runtime.CallError, TypeError)
    assert issubclass(runtime.CallShapeError, (TypeError, ValueError))
    assert issubclass(fc.InputError, TypeError) and issubclass(fc.InputShapeError, ValueError)
    assert issubclass(fc.ShapeError, ValueError) and issubclass(GPUUnavailable, RuntimeError)
    assert issubclass(fc.ArgumentError, ValueError)


def test_unknown_names_and_options_are_flowc_errors():
    for call, message in [(lambda: nn.losses.get("hinge"), "unknown loss 'hinge'"),
                          (lambda: nn.metrics.get("f1"), "unknown metric 'f1'"),
                          (lambda: nn.init.get("orthonormal"), "unknown initializer"),
                          (lambda: fc.numerical_grad(lambda a: a, [1.0], method="x"),
                           "method must be 'central' or 'forward'")]:
        with pytest.raises(fc.ArgumentError, match=message) as e:
            call()
        assert isinstance(e.value, ValueError) and isinstance(e.value, fc.FlowcError)


def _step(level):
    """x, y -> sum(x + y), with an update of w; sizes known only at call time."""
    with fc.Graph():
        x = fc.input("x", (None,))
        y = fc.input("y", (None,))
        w = fc.param("w", np.array([1.0, 2.0]))
        cost = fc.sum(x + y)
        return fc.function([x, y], cost, updates=[(w, w + cost)], optimize=level), w


@pytest.mark.parametrize("level", LEVELS)
def test_a_failing_kernel_is_caught_as_a_flowc_error_and_changes_nothing(level):
    f, w = _step(level)
    a, b = np.arange(3.0), np.ones(3)
    for call in range(3):  # the first call allocates; later ones run the memory plan
        before = w.get_value().copy()
        assert f(a, b) == pytest.approx(np.sum(a + b))
        assert np.array_equal(w.get_value(), before + np.sum(a + b))
        before = w.get_value().copy()
        with pytest.raises(fc.FlowcError) as e:
            f(a, np.ones(4))  # 3 + 4 does not broadcast: only the run time can tell
        assert isinstance(e.value, runtime.ProgramError)
        assert "instruction" in str(e.value) and HERE in str(e.value)
        assert np.array_equal(w.get_value(), before)


@pytest.mark.parametrize("level", LEVELS)
def test_a_call_with_the_wrong_shape_is_a_value_error(level):
    with fc.Graph():
        x = fc.input("x", (None, 3))
        f = fc.function([x], fc.sum(x * 2.0), optimize=level)
    for call in range(3):
        assert f(np.ones((2, 3))) == 12.0
        with pytest.raises(ValueError) as e:
            f(np.ones((2, 4)))
        assert isinstance(e.value, fc.InputShapeError) and isinstance(e.value, fc.FlowcError)
        assert isinstance(e.value, TypeError)  # what fc.InputError always was
        assert str(e.value) == "input 'x': expected shape (None, 3), got (2, 4)"
    # The runtime alone (a linked Program) raises its own class, under the same base.
    exe = runtime.link(f.program)
    with pytest.raises(runtime.CallShapeError) as e:
        exe(np.ones((2, 4)))
    assert isinstance(e.value, ValueError) and isinstance(e.value, fc.FlowcError)


@pytest.mark.parametrize("arg, got", [
    (None, "got None"),
    ("str", "got a string 'str'"),
    ([[1.0, 2.0, 3.0], [3.0]], "got a nested list whose rows differ in length"),
    (object(), "got an object of type object"),
])
def test_calls_with_things_that_are_not_arrays_say_what_came(arg, got):
    with fc.Graph():
        x = fc.input("x", (None, 3))
        f = fc.function([x], fc.sum(x))
    for call in range(3):
        assert f(np.ones((1, 3))) == 3.0
        with pytest.raises(fc.InputError) as e:
            f(arg)
        assert str(e.value) == f"input 'x': expected float64 array of shape (None, 3), {got}"
        assert "object" not in str(e.value) or "type object" in got
    if isinstance(arg, list):
        assert isinstance(e.value, ValueError)


# -- axes name the op and the user's line ----------------------------------------------------------
def _x():
    return fc.input("x", (None, 3))


AXIS_CASES = [
    ("sum", lambda x: fc.sum(x, axis=5), "axis 5 is out of range for a tensor with 2 dimensions"),
    ("mean", lambda x: fc.mean(x, axis=-3), "axis -3 is out of range"),
    ("max", lambda x: fc.max(x, axis=(0, 0)), "repeated axis in (0, 0)"),
    ("min", lambda x: fc.min(x, axis=2), "axis 2 is out of range"),
    ("prod", lambda x: fc.prod(x, axis=1.5), "axis must be an integer or a tuple of integers, "
                                             "got 1.5"),
    ("logsumexp", lambda x: fc.logsumexp(x, axis="a"), "axis must be an integer"),
    ("argmax", lambda x: fc.argmax(x, axis=5), "axis 5 is out of range"),
    ("argmin", lambda x: fc.argmin(x, axis=(0, 1)), "axis must be one integer, got (0, 1)"),
    ("softmax", lambda x: fc.softmax(x, axis=5), "axis 5 is out of range"),
    ("log_softmax", lambda x: fc.log_softmax(x, axis=-4), "axis -4 is out of range"),
    ("softmax", lambda x: fc.softmax(fc.sum(x)), "axis -1 is out of range for a tensor with 0 "
                                                 "dimensions"),
    ("log_softmax", lambda x: fc.log_softmax(fc.sum(x)), "with 0 dimensions"),
    ("concatenate", lambda x: fc.concatenate([x, x], axis=2), "axis 2 is out of range"),
    ("stack", lambda x: fc.stack([x, x], axis=4), "axis 4 is out of range"),
    ("expand_dims", lambda x: fc.expand_dims(x, 7), "axis 7 is out of range"),
    ("squeeze", lambda x: fc.squeeze(x, 5), "axis 5 is out of range"),
    ("take", lambda x: fc.take(x, [0], axis=3), "axis 3 is out of range"),
    ("topk", lambda x: fc.topk(x, 1, axis=2), "axis 2 is out of range"),
    ("take_along_axis", lambda x: fc.take_along_axis(x, np.zeros((1, 3), np.int64), axis=9),
     "axis 9 is out of range"),
    ("norm", lambda x: fc.norm(x, axis=3), "axis 3 is out of range"),
    ("transpose", lambda x: fc.transpose(x, (0, 5)), "axes (0, 5) are not a permutation of 2 "
                                                     "axes"),
    ("dot", lambda x: fc.dot(fc.expand_dims(x, 0), x), "dot of 3-D and 2-D tensors"),
    ("diag", lambda x: fc.diag(fc.expand_dims(x, 0)), "takes a vector or a matrix"),
    ("reshape", lambda x: fc.reshape(x, "ab"), "shape must be an integer or a tuple of "
                                               "integers, got 'ab'"),
    ("broadcast_to", lambda x: fc.broadcast_to(x, (2, 3.5)), "got (2, 3.5)"),
    ("getitem", lambda x: x[1.5], "unsupported index 1.5"),
]


@pytest.mark.parametrize("op, build, message", AXIS_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(AXIS_CASES)])
def test_bad_axes_name_the_op_and_the_users_line(op, build, message):
    with fc.Graph():
        x = _x()
        with pytest.raises(fc.ShapeError) as e:
            build(x)
    err = e.value
    assert isinstance(err, ValueError) and isinstance(err, fc.FlowcError)
    line = build.__code__.co_firstlineno
    assert str(err).startswith(f"{op} at {HERE}:"), str(err)
    assert f"{HERE}:{line}" in str(err) or f"{HERE}:{line + 1}" in str(err), str(err)
    assert message in str(err) and ". Operands: " in str(err) and "f64[" in str(err)


def test_good_axes_still_work_at_every_level():
    X = np.arange(6.0).reshape(2, 3)
    with fc.Graph():
        x = fc.input("x", (None, 3))
        outs = [fc.sum(x, axis=np.int64(-1)), fc.mean(x, axis=[0]), fc.transpose(x, (-1, -2)),
                fc.argmax(x, axis=-1), fc.softmax(x, axis=0), fc.expand_dims(x, (0, -1))]
        want = [X.sum(-1), X.mean(0), X.T, X.argmax(-1),
                np.exp(X) / np.exp(X).sum(0), X[None, :, :, None]]
        for level in LEVELS:
            f = fc.function([x], outs, optimize=level)
            for call in range(3):
                for got, w in zip(f(X), want):
                    np.testing.assert_allclose(got, w)


# -- checkpoints --------------------------------------------------------------------------------
def _trainer():
    with fc.Graph():
        x = fc.input("x", (None, 4))
        y = fc.input("y", (None,), "int64")
        model = nn.Sequential([nn.Dense(5, "tanh"), nn.Dense(3)], seed=0)
        return nn.Trainer(nn.supervised(model, x, y), "adam", seed=0, lr=0.02)


def _state(tr):
    return ({p.name: p.get_value().copy() for p in tr.state_params}, tr.epoch, tr.steps,
            json.dumps(tr.rng.bit_generator.state, default=int))


def _good_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    tr = _trainer()
    tr.fit([X, y], epochs=1, batch_size=16, progress=False)
    path = str(tmp_path / "good.npz")
    tr.save(path)
    return path


def _rewrite(src, dst, change):
    """Copy the .npz src to dst, entry by entry, with change(name, bytes) -> bytes or None."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for info in z.infolist():
            data = change(info.filename, z.read(info))
            if data is not None:
                out.writestr(info.filename, data)
    return dst


def _npy(a):
    import io
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)
    return buf.getvalue()


def _damage_cases(good, tmp_path):
    raw = open(good, "rb").read()
    p = lambda name: str(tmp_path / name)  # noqa: E731
    open(p("empty.npz"), "wb").close()
    open(p("garbage.npz"), "wb").write(b"\x80\x04\x95 not a zip at all")
    open(p("truncated.npz"), "wb").write(raw[:len(raw) // 2])
    meta = ckpt.META + ".npy"
    # A flipped byte inside the first parameter's data: the entry's CRC no longer matches.
    flipped = bytearray(raw)
    data = ckpt.load(good)[0]["dense1.W"].tobytes()
    flipped[raw.index(data) + len(data) // 2] ^= 0xFF
    open(p("flipped.npz"), "wb").write(bytes(flipped))
    return [
        (p("empty.npz"), "the file is empty"),
        (p("garbage.npz"), "not a complete .npz archive"),
        (p("truncated.npz"), "not a complete .npz archive"),
        (p("flipped.npz"), "CRC"),
        (_rewrite(good, p("badjson.npz"), lambda n, d: _npy(np.array("{not json"))
                  if n == meta else d), "record is not valid JSON"),
        (_rewrite(good, p("listjson.npz"), lambda n, d: _npy(np.array("[1, 2]"))
                  if n == meta else d), "record is a JSON list, not an object"),
        (_rewrite(good, p("numbermeta.npz"), lambda n, d: _npy(np.zeros(3)) if n == meta
                  else d), "record is float64[3], not one text string"),
        (_rewrite(good, p("objects.npz"), lambda n, d: _npy(np.array([{"a": 1}], dtype=object))
                  if n == "dense1.W.npy" else d), "entry 'dense1.W.npy' holds Python objects"),
        (_rewrite(good, p("short.npz"), lambda n, d: d[:-8] if n == "dense1.W.npy" else d),
         "entry 'dense1.W.npy' is cut short"),
        (_rewrite(good, p("notnpy.npz"), lambda n, d: b"hello" if n == "dense1.W.npy" else d),
         "entry 'dense1.W.npy' is not a NumPy array"),
        (_rewrite(good, p("badrng.npz"), lambda n, d: _npy(np.array(json.dumps(
            {**json.loads(str(np.lib.format.read_array(__import__("io").BytesIO(d)))),
             "rng": {"bit_generator": "nope"}}))) if n == meta else d), "training state"),
    ]


def test_damaged_checkpoints_name_the_file_and_change_nothing(tmp_path):
    good = _good_checkpoint(tmp_path)
    for path, why in _damage_cases(good, tmp_path):
        tr = _trainer()
        before = _state(tr)
        with pytest.raises(ckpt.CheckpointError) as e:
            tr.load(path)
        msg = str(e.value)
        assert isinstance(e.value, fc.FlowcError)
        assert msg.startswith(f"{path}: not a readable checkpoint: the file is damaged"), msg
        assert why in msg, (path, msg)
        assert "pickle" not in msg.lower(), msg
        after = _state(tr)
        assert after[1:] == before[1:], path
        assert all(np.array_equal(before[0][k], v) for k, v in after[0].items()), path
    tr = _trainer()
    tr.load(good)  # the undamaged file still loads
    assert tr.epoch == 1


def test_checkpoints_that_do_not_fit_change_nothing(tmp_path):
    good = _good_checkpoint(tmp_path)
    cases = [
        (_rewrite(good, str(tmp_path / "missing.npz"),
                  lambda n, d: None if n == "dense2.b.npy" else d), "missing dense2.b"),
        (_rewrite(good, str(tmp_path / "shape.npz"),
                  lambda n, d: _npy(np.zeros((4, 6))) if n == "dense1.W.npy" else d),
         "parameter 'dense1.W': expected float64[4, 5], got float64[4, 6]"),
        (_rewrite(good, str(tmp_path / "dtype.npz"),
                  lambda n, d: _npy(np.zeros((4, 5), np.float32)) if n == "dense1.W.npy" else d),
         "parameter 'dense1.W': expected float64[4, 5], got float32[4, 5]"),
        (_rewrite(good, str(tmp_path / "nometa.npz"),
                  lambda n, d: None if n == ckpt.META + ".npy" else d), "not a flowc checkpoint"),
    ]
    for path, why in cases:
        tr = _trainer()
        before = _state(tr)
        with pytest.raises(ckpt.CheckpointError, match=f"^{path}: .*") as e:
            tr.load(path)
        assert why in str(e.value)
        after = _state(tr)
        assert after[1:] == before[1:]
        assert all(np.array_equal(before[0][k], v) for k, v in after[0].items())


# -- model files and graph JSON -------------------------------------------------------------------
MODEL = """\
[inputs.x]
shape = ["batch", 4]
[inputs.y]
shape = ["batch"]
dtype = "int64"
[[layers]]
type = "dense"
units = 8
activation = "tanh"
[[layers]]
type = "dropout"
rate = 0.25
[[layers]]
type = "dense"
units = 3
[loss]
type = "categorical_crossentropy"
[optimizer]
type = "OPT"
lr = 0.1
[train]
epochs = 2
test_size = 0.25
"""


@pytest.mark.parametrize("opt, old, new, message", [
    ("sgd", "lr = 0.1", "lr = nan", "optimizer.lr: expected a finite number >= 0, got nan"),
    ("sgd", "lr = 0.1", "lr = inf", "optimizer.lr: expected a finite number >= 0, got inf"),
    ("sgd", "lr = 0.1", "lr = -0.1", "optimizer.lr: expected a number >= 0, got -0.1"),
    ("momentum", "lr = 0.1", "mu = nan", "optimizer.mu: expected a finite number in [0, 1), "
                                         "got nan"),
    ("momentum", "lr = 0.1", "mu = 1.0", "optimizer.mu: expected a number in [0, 1), got 1.0"),
    ("adam", "lr = 0.1", "beta2 = 1", "optimizer.beta2: expected a number in [0, 1), got 1"),
    ("adam", "lr = 0.1", "eps = 0.0", "optimizer.eps: expected a number > 0, got 0.0"),
    ("rmsprop", "lr = 0.1", "rho = -inf", "optimizer.rho: expected a finite number in [0, 1), "
                                          "got -inf"),
    ("sgd", "rate = 0.25", "rate = nan", "layers[1].rate: expected a finite number in [0, 1), "
                                         "got nan"),
    ("sgd", "test_size = 0.25", "test_size = nan", "train.test_size: expected a finite number "
                                                    "in [0, 1), got nan"),
])
def test_non_finite_and_out_of_range_numbers_in_model_files(tmp_path, opt, old, new, message):
    text = MODEL.replace("OPT", opt).replace(old, new)
    path = tmp_path / "m.toml"
    path.write_text(text)
    line = text[:text.index(new)].count("\n") + 1
    with pytest.raises(ModelFileError) as e:
        load_model_file(str(path))
    assert str(e.value).startswith(f"{path}:{line}: {message} ("), str(e.value)
    assert isinstance(e.value, fc.FlowcError)


def test_bad_files_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nan.toml").write_text(MODEL.replace("OPT", "sgd").replace("lr = 0.1",
                                                                           "lr = nan"))
    (tmp_path / "good.toml").write_text(MODEL.replace("OPT", "adam"))
    doc = json.loads(open(export(resolve("good.toml"), "good.json")).read())
    roles = doc["graph"]["roles"]
    bad = json.loads(json.dumps(doc))
    bad["graph"]["roles"]["loss"] = roles["inputs"][0]
    (tmp_path / "lossinput.json").write_text(json.dumps(bad, indent=1))
    bad = json.loads(json.dumps(doc))
    bad["graph"]["roles"]["optimizer"]["lr"] = float("nan")
    (tmp_path / "nanlr.json").write_text(json.dumps(bad, indent=1))
    bad = json.loads(json.dumps(doc))
    bad["graph"]["roles"]["params"] = [roles["inputs"][1]]
    (tmp_path / "params.json").write_text(json.dumps(bad, indent=1))
    rng = np.random.default_rng(0)
    rows = ["a,b,c,d,y"] + [",".join(f"{v:.4f}" for v in rng.standard_normal(4)) + f",{i % 3}"
                            for i in range(30)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    os.makedirs("ck")
    (tmp_path / "ck" / "checkpoint.npz").write_bytes(b"\x80\x04 damaged")
    for argv, message in [
            (["compile", "nan.toml"], "nan.toml:20: optimizer.lr: expected a finite number "
                                      ">= 0, got nan"),
            (["compile", "lossinput.json"], "graph.roles.loss: expected the id of a scalar node "
                                            "computed from the inputs and params (the loss), got "
                                            f"node {roles['inputs'][0]}, x: f64[?,4] (input"),
            (["compile", "nanlr.json"], "nanlr.json: graph.roles.optimizer.lr: expected a finite "
                                        "number >= 0, got nan"),
            (["compile", "params.json"], "graph.roles.params[0]: expected the id of a param node"),
            (["train", "good.toml", "--data", "d.csv", "--lr", "nan"],
             "argument --lr: expected a finite number >= 0, got 'nan'"),
            (["train", "good.toml", "--data", "d.csv", "--checkpoint", "ck", "--resume"],
             "ck/checkpoint.npz: not a readable checkpoint: the file is damaged"),
    ]:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert "pickle" not in err


def test_a_graph_file_with_good_roles_still_loads(tmp_path):
    (tmp_path / "good.toml").write_text(MODEL.replace("OPT", "momentum"))
    loaded = from_graph_file(export(resolve(str(tmp_path / "good.toml")),
                                    str(tmp_path / "good.json")))
    assert loaded.optimizer == "momentum" and loaded.opt_kwargs == {"lr": 0.1}
    assert loaded.train["epochs"] == 2 and loaded.task.loss.ndim == 0


def test_fit_refuses_bad_sizes_and_data_with_flowc_errors():
    tr = _trainer()
    X, y = np.ones((8, 4)), np.zeros(8, np.int64)
    for kwargs, data, message in [
            (dict(epochs=1, batch_size=1.5), [X, y], "batch_size must be an integer >= 1, got 1.5"),
            (dict(epochs=1, batch_size=0), [X, y], "batch_size must be an integer >= 1, got 0"),
            (dict(epochs=-1), [X, y], "epochs must be an integer >= 0, got -1"),
            (dict(epochs=1), [None, y], "data: input 'x' must be a numeric array with one row "
                                        "per sample, got object[]"),
            (dict(epochs=1), [[[1.0, 2.0], [3.0]], y], "data: array 0 is a nested list whose "
                                                       "rows differ in length"),
    ]:
        before = _state(tr)
        with pytest.raises(fc.FlowcError) as e:
            tr.fit(data, progress=False, **kwargs)
        assert str(e.value) == message
        after = _state(tr)
        assert after[1:] == before[1:]
        assert all(np.array_equal(before[0][k], v) for k, v in after[0].items())


def test_an_unknown_optimize_level_is_an_argument_error():
    x = fc.input("x", (None,))
    with pytest.raises(fc.ArgumentError, match=r"optimize must be one of \['O0', 'O1', 'O2'\], "
                                               r"got 'O3'") as info:
        fc.function([x], x * 2.0, optimize="O3")
    assert isinstance(info.value, ValueError)
