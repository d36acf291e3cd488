"""Model files with the convolutional kinds: one using every kind builds and trains, a bad
size names its line, and the shipped digits CNN beats the MLP from the CLI."""
import os
import subprocess
import sys

import numpy as np
import pytest

import flowc as fc
from flowc import nn
from flowc.models import load_model_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(43)


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
                       r"an integer >= 1 or an array of 2, got \[3, 0\]"):
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


def test_a_reshape_layer_of_the_wrong_size_is_refused_at_its_line(tmp_path):
    """64 features cannot become (1, 7, 7): the model file's line says so when it is built,
    not a kernel at run time."""
    from flowc.models import ModelFileError
    path = tmp_path / "bad.toml"
    path.write_text(CNN_TOML.replace("shape = [1, 6, 6]", "shape = [1, 7, 7]"))
    with pytest.raises(ModelFileError, match=r"bad.toml:7: layers\[0\].*cannot reshape .* 36 "
                       r"values per example, the shape holds 49"):
        load_model_file(str(path))
