"""The `flowc` command end to end (subprocesses of `python -m flowc`): every command, --help,
bad files and flags (exit 2) and a failing run (exit 1)."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from flowc import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "flowc", "examples", "digits_mlp.toml")
needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                   reason="scikit-learn not installed (pip install -e '.[data]')")

REGRESSION = """\
[inputs.x]
shape = ["batch", 4]
[inputs.y]
shape = ["batch", 1]
[[layers]]
type = "dense"
units = 8
activation = "tanh"
[[layers]]
type = "dense"
units = 1
[loss]
type = "mse"
[optimizer]
type = "sgd"
lr = LR
[train]
epochs = 3
batch_size = 8
metrics = []
"""


def flowc(*args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "flowc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def work(tmp_path):
    """A folder with a regression model file and a CSV data set for it."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    y = X @ np.array([1.0, -2.0, 3.0, 0.5]) * 0.2
    lines = ["a,b,c,d,target"] + [",".join(f"{v:.6f}" for v in row) + f",{t:.6f}"
                                  for row, t in zip(X, y)]
    (tmp_path / "reg.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "reg.toml").write_text(REGRESSION.replace("LR", "0.05"))
    (tmp_path / "diverge.toml").write_text(REGRESSION.replace("LR", "1e6")
                                           .replace("tanh", "relu"))
    (tmp_path / "mymodel.py").write_text(
        "import numpy as np, flowc as fc\n"
        "def model():\n"
        "    x = fc.input('x', (None, 3))\n"
        "    w = fc.param('w', np.ones((3, 2)))\n"
        "    return fc.tanh(x @ w)\n"
        "def loss():\n"
        "    x = fc.input('x', (None, 3))\n"
        "    w = fc.param('w', np.linspace(-1, 1, 6).reshape(3, 2))\n"
        "    return {'loss': fc.mean(fc.softplus(x @ w))}\n"
        "def broken():\n"
        "    raise ValueError('no model today')\n")
    return tmp_path


def test_help_everywhere(capsys):
    assert cli.main(["--help"]) == 0
    assert "COMMAND" in capsys.readouterr().out
    for command in ("render", "compile", "train", "check-grad", "profile", "export", "ops"):
        assert cli.main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: flowc {command}") and "exit codes" in out


def test_top_level_help_and_ops_in_a_subprocess(work):
    r = flowc("--help", cwd=work)
    assert r.returncode == 0 and "check-grad" in r.stdout and "profile" in r.stdout
    r = flowc("ops", cwd=work)
    assert r.returncode == 0
    assert re.search(r"^matmul\s+2\s+matrix product", r.stdout, re.M)
    assert len(r.stdout.splitlines()) > 50
    r = flowc("ops", "softmax", cwd=work)
    assert r.stdout.splitlines()[0].startswith("log_softmax")


def test_render_compile_export(work):
    r = flowc("render", DIGITS, "-o", "pics/digits.svg", "--stage", "forward", cwd=work)
    assert r.returncode == 0, r.stderr
    dot = (work / "pics" / "digits.dot").read_text()
    assert "dense1.W" in dot and "digits_mlp.toml:" in dot
    r = flowc("compile", "digits_mlp.toml", "--explain", "--source", "-O2", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "compiled training step at O2" in r.stdout and "rewrites that fired" in r.stdout
    assert "def run(x0, x1):" in r.stdout and "dense1.W.adam_m" in r.stdout
    r = flowc("export", "reg.toml", "-o", "reg.json", cwd=work)
    assert r.returncode == 0 and (work / "reg.json").exists()
    r = flowc("compile", "reg.json", "-O0", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "reg: compiled training step at O0" in r.stdout


def test_render_every_stage_of_the_shipped_models(work):
    from flowc.render.files import find_renderer
    if find_renderer() is None:
        pytest.skip("no Graphviz renderer (pip install -e '.[render]')")
    for model in ("digits_mlp.toml", "breast_cancer.toml"):
        for stage in ("all", "forward", "backward", "optimized"):
            r = flowc("render", model, "-o", f"pics/{stage}.svg", "--stage", stage, cwd=work)
            assert r.returncode == 0, (model, stage, r.stderr)
            assert "<svg" in (work / "pics" / f"{stage}.svg").read_text()


def test_train_from_csv_with_checkpoint_and_resume(work):
    r = flowc("train", "reg.toml", "--data", "reg.csv", "--epochs", "2", "--checkpoint", "ck",
              "--out", "o", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "training reg on reg.csv: 48 training / 16 held-out samples, sgd(lr=0.05)" in r.stdout
    assert "epoch 2/2  loss " in r.stdout and "\r" not in r.stdout  # no bar off a terminal
    assert (work / "ck" / "checkpoint.npz").exists()
    r = flowc("train", "reg.toml", "--data", "reg.csv", "--epochs", "3", "--checkpoint", "ck",
              "--resume", "--out", "o", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "resumed from ck/checkpoint.npz after epoch 2" in r.stdout
    assert "epoch 3/3" in r.stdout and "epoch 1/3" not in r.stdout
    rows = (work / "o" / "reg-history.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss,val_loss,seconds" and len(rows) == 4
    assert {p.name for p in (work / "o").iterdir()} & {"reg-history.svg", "reg-history.png"}


@needs_sklearn
def test_train_digits_from_the_command_line(work):
    r = flowc("train", "digits_mlp.toml", cwd=work)  # its [train] says: digits, 30 epochs
    assert r.returncode == 0, r.stderr
    acc = float(re.search(r"held-out loss \S+  accuracy (\S+)", r.stdout).group(1))
    assert acc >= 0.95, r.stdout


def test_check_grad_and_profile(work):
    r = flowc("check-grad", "reg.toml", "--entries", "10", cwd=work)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^dense1.W\s+\[4, 8\]\s+10/32 .* ok$", r.stdout, re.M)
    assert "all gradients match" in r.stdout
    r = flowc("check-grad", "mymodel:loss", cwd=work)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^w\s+\[3, 2\]\s+6/6 .* ok$", r.stdout, re.M)
    r = flowc("profile", "reg.toml", "--top", "5", "--calls", "3", "-o", "prof/p.svg",
              cwd=work)
    assert r.returncode == 0, r.stderr
    assert "kernel" in r.stdout and "whole call:" in r.stdout and "matmul" in r.stdout
    rows = (work / "prof" / "p.csv").read_text().splitlines()
    assert rows[0] == "index,kernel,node,seconds_per_call,where" and len(rows) > 10
    dot = (work / "prof" / "p.dot").read_text()
    import inspect
    from flowc.render import render
    if "heat" in inspect.signature(render).parameters:
        assert "coloured by time" in dot and "of the call" in dot


def test_module_function_models(work):
    r = flowc("render", "mymodel:model", "-o", "m.dot", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "tanh" in (work / "m.dot").read_text()
    r = flowc("train", "mymodel:model", "--data", "reg.csv", cwd=work)
    assert r.returncode == 2 and "train needs a model with a loss" in r.stderr
    r = flowc("compile", "mymodel:broken", cwd=work)
    assert r.returncode == 1 and "mymodel:broken raised ValueError: no model today" in r.stderr


def test_bad_files_and_flags_exit_2(work, monkeypatch, capsys):
    (work / "bad.toml").write_text(REGRESSION.replace("LR", "0.1")
                                   .replace("units = 8", 'units = "eight"'))
    r = flowc("compile", "bad.toml", cwd=work)
    assert r.returncode == 2
    assert r.stderr.strip() == ('flowc: error: bad.toml:7: layers[0].units: expected an '
                                'integer >= 1, got "eight" (a string)')
    r = flowc("train", "reg.toml", "--bogus", cwd=work)
    assert r.returncode == 2 and "unrecognized arguments: --bogus" in r.stderr
    # The same cases, in this process (faster): the code and the message on stderr.
    monkeypatch.chdir(work)
    (work / "bad.csv").write_text("a,b,c,d,target\n1,2,3,4,5\n1,2,x,4,5\n")
    (work / "nan.csv").write_text("a,b,c,d,target\n1,2,3,4,5\n1,nan,3,4,5\n")
    for argv, message in [
            (["render", "nothere.toml"], "nothere.toml: no such model file"),
            (["train", "reg.toml", "--epochs", "many"],
             "argument --epochs: expected a positive integer, got 'many'"),
            (["train", "reg.toml", "--data", "reg.csv", "--resume"],
             "--resume needs --checkpoint"),
            (["train", "reg.toml", "--data", "bad.csv"],
             "bad.csv:3: column 3 ('c'): expected a number, got 'x'"),
            (["train", "reg.toml", "--data", "nothere.csv"], "nothere.csv: cannot read the file"),
            (["train", "reg.toml", "--data", "nan.csv"],
             "nan.csv:3: column 2 ('b'): expected a finite number, got 'nan'"),
            (["profile", "reg.toml", "-o", "p.pdf"], "-o p.pdf: the picture must end in"),
            (["export", "reg.toml", "-o", "g.txt"], "a graph file must end in .json"),
            (["ops", "nosuchop"], "no op name contains 'nosuchop'"),
    ]:
        assert cli.main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_a_failing_run_exits_1(work):
    r = flowc("train", "diverge.toml", "--data", "reg.csv", cwd=work)
    assert r.returncode == 1
    assert "training stopped: " in r.stderr and "appeared at epoch 1/3, batch " in r.stderr
    assert "first shows in the loss" in r.stderr and "diverge.toml:" in r.stderr


def test_a_wrong_gradient_fails_check_grad_with_exit_1(work):
    (work / "wrongmod.py").write_text(
        "import numpy as np, flowc as fc\n"
        "def loss():\n"
        "    x = fc.input('x', (None, 3))\n"
        "    w = fc.param('w', np.linspace(-1, 1, 3))\n"
        "    bad = fc.custom_vjp(lambda t: fc.tanh(t), lambda xs, y, g: [2.0 * g])\n"
        "    return {'loss': fc.mean(bad(x @ w))}\n")
    r = flowc("check-grad", "wrongmod:loss", cwd=work)
    assert r.returncode == 1, r.stderr
    assert re.search(r"^w\s+\[3\]\s+3/3 .* FAIL$", r.stdout, re.M)
    assert "gradient check failed for w" in r.stderr


def test_pyproject_declares_the_command_and_ships_the_model_files():
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert 'flowc = "flowc.cli:main"' in text
    assert '"examples/*.toml"' in text
    assert 'tomli; python_version < \\"3.11\\"' in text or "tomli; python_version < '3.11'" \
        in text


def test_no_gpu_is_a_runtime_failure(capsys):
    try:
        import cupy
        if cupy.is_available():
            pytest.skip("a GPU is present")
    except Exception:
        pass
    assert cli.main(["compile", DIGITS, "--device", "gpu"]) == 1
    assert "device='gpu'" in capsys.readouterr().err


def test_a_csv_with_features_of_very_different_scales_gets_a_note(work):
    """The bundled sets are standardized, a CSV is not unless asked: train says so when
    the features' scales differ by orders of magnitude (a CSV copy of breast_cancer
    trained to 0.37 accuracy without a word)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 4)) * np.array([1e-3, 1.0, 50.0, 600.0])
    lines = ["a,b,c,d,target"] + [",".join(f"{v:.6g}" for v in row) + ",0.5" for row in X]
    (work / "wide.csv").write_text("\n".join(lines) + "\n")
    r = flowc("train", "reg.toml", "--data", "wide.csv", "--epochs", "1", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "have scales from" in r.stdout and "--standardize" in r.stdout
    r = flowc("train", "reg.toml", "--data", "wide.csv", "--epochs", "1", "--standardize",
              cwd=work)
    assert r.returncode == 0 and "have scales from" not in r.stdout
    r = flowc("train", "reg.toml", "--data", "reg.csv", "--epochs", "1", cwd=work)
    assert "have scales from" not in r.stdout   # similar scales: nothing to say
