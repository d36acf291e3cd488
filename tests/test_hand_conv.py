"""tools/hand_conv.py, the hand-NumPy baseline of tools/bench_conv.py, computes flowc's step:
same losses and parameters over three SGD steps (float32), for LeNet-5 (at batch 8) and
the digits CNN, so the benchmark's ratio compares like with like."""
import numpy as np
import pytest

from tools import bench_conv, hand_conv


@pytest.mark.parametrize("spec", [dict(bench_conv.LENET, batch=8), bench_conv.DIGITS],
                         ids=["lenet5", "digits"])
def test_the_hand_step_equals_flowcs(spec):
    values = bench_conv.init(spec)
    f = bench_conv.flowc_step(spec, values)
    hand = hand_conv.hand_step(spec, values)
    r = np.random.default_rng(7)
    for step in range(3):
        x = r.standard_normal((spec["batch"], 1, spec["size"], spec["size"])).astype(np.float32)
        y = np.eye(spec["dense"][-1], dtype=np.float32)[r.integers(0, spec["dense"][-1],
                                                                    spec["batch"])]
        np.testing.assert_allclose(float(hand(x, y)), float(f(x, y)), rtol=1e-5)
    names = [p["name"] for p in f.program.params]
    assert names == [f"p{i}" for i in range(len(values))]   # cells in the values' order
    for cell, mine in zip(f.exe.cells, hand.params):
        assert cell.value.shape == mine.shape
        np.testing.assert_allclose(cell.value, mine, rtol=1e-4, atol=1e-6)
