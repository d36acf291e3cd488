"""Checkpoints: every parameter and the optimizer and generator state in one .npz (no pickle),
written atomically (a crash mid-save leaves the old file intact), and a resumed run that
gives exactly the result of an uninterrupted one."""
import os

import numpy as np
import pytest

import flowc as fc
from flowc import nn
from flowc.nn import checkpoint as ckpt


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 4)) * 0.5 + np.eye(3, 4)[y] * 2
    return X, y


def trainer(seed=0):
    """A fresh graph holding an MLP with dropout, trained by Adam with shuffled batches."""
    g = fc.Graph()
    with g:
        x = fc.input("x", (None, 4))
        y = fc.input("y", (None,), "int64")
        model = nn.Sequential([nn.Dense(8, "tanh"), nn.Dropout(0.25), nn.Dense(3)], seed=seed)
        task = nn.supervised(model, x, y)
        return nn.Trainer(task, "adam", seed=seed, lr=0.02)


def values(tr):
    return {p.name: p.get_value() for p in tr.state_params}


def test_save_and_load_round_trip_everything(tmp_path):
    X, y = data()
    tr = trainer()
    tr.fit([X, y], epochs=2, batch_size=16)
    path = tr.save(str(tmp_path / "c.npz"))
    with np.load(path, allow_pickle=False) as z:  # no pickle anywhere
        names = set(z.files)
    assert {"dense1.W", "dense1.W.adam_m", "dense1.W.adam_v", "adam.t", "dropout1.rng",
            ckpt.META} <= names
    before = values(tr)
    other = trainer(seed=5)
    meta = other.load(path)
    assert meta["epoch"] == 2 and other.epoch == 2 and other.steps == tr.steps
    after = values(other)
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert other.history.as_dict() == tr.history.as_dict()


def test_any_parameter_name_can_be_saved(tmp_path):
    # np.savez(f, **arrays) takes "file" and "allow_pickle" as its own arguments.
    with fc.Graph():
        ps = [fc.param(n, np.arange(3.0) + i) for i, n in
              enumerate(["file", "allow_pickle", "args", "dense1.W"])]
        path = ckpt.save_params(str(tmp_path / "odd.npz"), ps, {"note": "x"})
        arrays, meta = ckpt.load(path)
    assert sorted(arrays) == ["allow_pickle", "args", "dense1.W", "file"]
    assert all(np.array_equal(arrays[p.name], p.get_value()) for p in ps)
    assert meta["note"] == "x"


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    X, y = data()
    Xv, yv = data(40, seed=1)
    full = trainer()
    full.fit([X, y], epochs=4, batch_size=16, validation=[Xv, yv])
    first = trainer()
    first.fit([X, y], epochs=2, batch_size=16, validation=[Xv, yv],
              checkpoint=str(tmp_path / "ck"))
    assert os.listdir(tmp_path / "ck") == ["checkpoint.npz"]
    resumed = trainer()
    resumed.load(str(tmp_path / "ck" / "checkpoint.npz"))
    resumed.fit([X, y], epochs=4, batch_size=16, validation=[Xv, yv])
    want, got = values(full), values(resumed)
    for k in want:
        assert np.array_equal(want[k], got[k]), k  # bit for bit
    hf, hr = full.history.as_dict(), resumed.history.as_dict()
    for col in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy"):
        assert hf[col] == hr[col], col
    assert resumed.epoch == 4 and resumed.steps == full.steps
    assert full.rng.bit_generator.state == resumed.rng.bit_generator.state


def test_a_crash_while_saving_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    X, y = data()
    tr = trainer()
    tr.fit([X, y], epochs=1, batch_size=16)
    path = str(tmp_path / "c.npz")
    tr.save(path)
    good = values(tr)
    tr.fit([X, y], epochs=2, batch_size=16)   # the values move on

    def crash(f, payload):
        f.write(b"PK\x03\x04 half an archive")  # the writer dies half-way
        raise OSError("disk full")
    monkeypatch.setattr(ckpt, "_write_npz", crash)
    with pytest.raises(OSError, match="disk full"):
        tr.save(path)
    assert os.listdir(tmp_path) == ["c.npz"]      # no temporary file left behind
    arrays, meta = ckpt.load(path)
    assert meta["epoch"] == 1
    assert all(np.array_equal(arrays[k], good[k]) for k in good)


def test_a_checkpoint_that_does_not_fit_is_refused_and_changes_nothing(tmp_path):
    X, y = data()
    tr = trainer()
    tr.fit([X, y], epochs=1, batch_size=32)
    path = str(tmp_path / "c.npz")
    tr.save(path)
    with fc.Graph():
        x = fc.input("x", (None, 4))
        yy = fc.input("y", (None,), "int64")
        model = nn.Sequential([nn.Dense(9, "tanh"), nn.Dropout(0.25), nn.Dense(3)])
        other = nn.Trainer(nn.supervised(model, x, yy), "adam", lr=0.02)
    before = values(other)
    with pytest.raises(ckpt.CheckpointError, match=r"parameter 'dense1.W': expected "
                       r"float64\[4, 9\], got float64\[4, 8\]"):
        other.load(path)
    assert all(np.array_equal(before[k], v) for k, v in values(other).items())
    with pytest.raises(ckpt.CheckpointError, match="missing dense1.W.velocity"):
        with fc.Graph():
            x = fc.input("x", (None, 4))
            yy = fc.input("y", (None,), "int64")
            m = nn.Sequential([nn.Dense(8, "tanh"), nn.Dropout(0.25), nn.Dense(3)])
            nn.Trainer(nn.supervised(m, x, yy), "momentum").load(path)


def test_unreadable_checkpoints_are_named(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ckpt.CheckpointError, match="bad.npz: not a readable checkpoint"):
        ckpt.load(str(bad))
    with pytest.raises(ckpt.CheckpointError, match="no such checkpoint file"):
        ckpt.load(str(tmp_path / "missing.npz"))
    np.savez(str(tmp_path / "plain.npz"), a=np.zeros(2))
    with pytest.raises(ckpt.CheckpointError, match="not a flowc checkpoint"):
        ckpt.load(str(tmp_path / "plain.npz"))
