"""The Program: save/load round trip (JSON + .npz, no pickle), runs without the compiler."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import flowc as fc
import flowc_runtime as runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trained_function():
    x, y = fc.input("x", (None, 3)), fc.input("y", (None,))
    w = fc.param("w", np.array([0.5, -0.5, 0.25]))
    cost = fc.mean((x @ w - y) ** 2)
    gw = fc.grad(cost, w)
    return fc.function([x, y], [cost, x @ w], updates=[(w, w - 0.1 * gw)]), w


def test_round_trip_gives_the_same_results(tmp_path):
    f, w = trained_function()
    X, Y = np.arange(12.0).reshape(4, 3) / 10, np.ones(4)
    f(X, Y)
    f.save(str(tmp_path / "model"))
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["version"] == runtime.FORMAT_VERSION
    loaded = runtime.load(str(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.cells[0].value, w.get_value())
    for a, b in zip(loaded(X, Y), f(X, Y)):  # both take one step from the same state
        np.testing.assert_allclose(a, b, rtol=1e-15)
    np.testing.assert_allclose(loaded.cells[0].value, w.get_value(), rtol=1e-15)


def test_loaded_program_runs_without_importing_flowc(tmp_path):
    f, _ = trained_function()
    f.save(str(tmp_path / "model"))
    X, Y = np.ones((2, 3)), np.zeros(2)
    expected = f(X, Y)[0]
    script = (
        "import sys, numpy as np, runtime\n"
        f"exe = runtime.load({str(tmp_path / 'model')!r})\n"
        "c, _ = exe(np.ones((2, 3)), np.zeros(2))\n"
        "assert 'flowc' not in sys.modules and 'networkx' not in sys.modules, sorted(sys.modules)\n"
        "print(repr(float(c)))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(float(expected), rel=1e-15)


def test_saved_files_hold_no_pickle(tmp_path):
    f, _ = trained_function()
    f.save(str(tmp_path / "model"))
    with np.load(tmp_path / "model.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_validate_rejects_a_slot_read_before_it_is_written():
    f, _ = trained_function()
    prog = f.program
    bad = runtime.Program(**{**prog.__dict__, "instrs": list(reversed(prog.instrs))})
    with pytest.raises(ValueError, match="reads unset slots"):
        bad.validate()
    with pytest.raises(ValueError, match="not supported"):
        runtime.Program(**{**prog.__dict__, "version": 999}).validate()


def test_a_program_and_a_checkpoint_never_overwrite_each_other(tmp_path):
    """f.save("model") writes model.json + model.npz, trainer.save("model.npz") a checkpoint:
    each refuses to replace the other, and a Program whose values a checkpoint replaced
    anyway says what the file is."""
    from flowc.nn.checkpoint import CheckpointError, save
    x = fc.input("x", (None, 2))
    f = fc.function([x], x @ fc.param("w", np.ones(2)))
    base = str(tmp_path / "model")
    f.save(base)
    with pytest.raises(CheckpointError, match="holds the values of the saved Program"):
        save(base + ".npz", {"w": np.zeros(2)})
    assert runtime.load(base)(np.ones((1, 2)))[0] == 2.0   # untouched
    os.remove(base + ".npz")
    save(base + ".npz", {"w": np.zeros(2)})          # the collision the README once showed
    with pytest.raises(fc.FlowcError, match="is a flowc training checkpoint"):
        f.save(base)
    with pytest.raises(fc.FlowcError, match="got a flowc training checkpoint"):
        runtime.load(base)
