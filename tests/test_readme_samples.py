"""The README's sample outputs stay true: each block shown after a command is checked
against what the command prints now (lines in order, `...` standing for lines left out,
timings like `(0.02 s)` ignored)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
TIMING = re.compile(r"\(\d+\.\d+ s\)")


def block_after(marker):
    """The first ``` block after the README line holding `marker`."""
    at = README.index(marker)
    start = README.index("```\n", at) + 4
    return README[start:README.index("```", start)].rstrip("\n").splitlines()


def flowc(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, COLUMNS="200")
    r = subprocess.run([sys.executable, "-m", "flowc", *args], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def assert_shown(block, out):
    """Every line of the README's block appears in the output, in order; `...` skips."""
    norm = [TIMING.sub("", line).rstrip() for line in out]
    i = 0
    for want in block:
        if want.strip() == "...":
            continue
        want = TIMING.sub("", want).rstrip()
        while i < len(norm) and norm[i] != want:
            i += 1
        assert i < len(norm), f"README shows {want!r}, the command no longer prints it:\n" + \
            "\n".join(out)
        i += 1


@pytest.mark.parametrize("marker,args", [
    ("**1. The ops.**", ["ops"]),
    ("**4. Compile it.**", ["compile", "flowc/examples/breast_cancer.toml", "--explain"]),
    ("**5. Check the gradients.**", ["check-grad", "flowc/examples/digits_mlp.toml"]),
    ("**6. Train it.**", ["train", "flowc/examples/digits_mlp.toml", "--out", "{tmp}"]),
], ids=["ops", "compile", "check-grad", "train"])
def test_the_readme_tour_outputs_are_what_the_commands_print(marker, args, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    block = block_after(marker)
    if "train" in args:  # the README shows the default out/ folder
        block = [line.replace("out/", f"{tmp_path}/") for line in block]
    assert_shown(block, flowc(*args))
