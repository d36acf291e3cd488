"""Loops in tools/bench_loops.py's terms: the hand-written LSTM BPTT the benchmark times flowc
against gives flowc's loss, gradients and updated parameters (float64, 1e-10); the peak
memory (tracemalloc) of a scan's forward and backward call under each save policy, calls
2-3, is within 10 % of its formula; the memory report counts a loop's stacked outputs."""
import numpy as np
import pytest

import flowc as fc
from flowc_runtime.cpu import loops as loop_kernel
from flowc_runtime.memory import plan as memory
from tools import bench_loops as bl

# Small enough for a quick test, large enough that a carry (8 KiB) dwarfs Python's own
# allocations: one carry per step is 144 carries, the ("every", 12) formula about 40.
DIMS = (144, 16, 64)
POLICIES = ["carries", "products", "residuals", ("every", 4), ("every", 12)]

# ("every", k) is above its formula by a constant 7-10 carry-sized arrays at this small size
# (T=144-288, k=4 and 12, batch 16-32, 64-128 units), 1.18-1.21x; at the benchmark's size
# (below) it is 1.04-1.08x. The outer graph's planned values of carry size are more than the
# formula's "4 carries". (A nested loop's stacks are dropped before the next step makes them
# and a body's big values after their last reader: every-12 was 1.44x.)
# A strict xfail: when that is fixed the test fails until the mark goes.
BEYOND_DESIGN = {("every", 4): "a constant 7-10 carries above the formula",
                 ("every", 12): "a constant 7-10 carries above the formula"}


def test_the_hand_lstm_bptt_matches_flowc_in_float64():
    rng = np.random.default_rng(3)
    dims = (5, 3, 4, 6)
    values = bl.lstm_params(rng, dims, np.float64)
    x, y = rng.standard_normal(dims[:3]), rng.standard_normal((dims[1], 1))
    worst = bl.check_lstm_numpy(values, x, y, rtol=1e-10)  # scan and unrolled, raises if not
    assert worst < 1e-10


def test_the_hand_lstm_bptt_check_catches_a_wrong_gradient(monkeypatch):
    rng = np.random.default_rng(4)
    dims = (3, 2, 3, 4)
    values = bl.lstm_params(rng, dims, np.float64)
    x, y = rng.standard_normal(dims[:3]), rng.standard_normal((dims[1], 1))
    right = bl.lstm_grads_numpy

    def wrong(params, xv, yv):
        loss, grads = right(params, xv, yv)
        grads[1] = grads[1] * 1.001  # dU off by 0.1 %
        return loss, grads
    monkeypatch.setattr(bl, "lstm_grads_numpy", wrong)
    with pytest.raises(AssertionError, match="dU"):
        bl.check_lstm_numpy(values, x, y, rtol=1e-10)


# The formulas model inlined loops (runtime/cpu/loops.py): with FLOWC_LOOP_INLINE=0 each body
# is a linked Executable with a memory plan of its own.
inlined_only = pytest.mark.skipif(not loop_kernel.INLINE, reason="loops run linked bodies")


def peaks(save):
    with fc.Graph():
        f, args = bl.memory_model(DIMS, save)
        return bl.peak_bytes(f, args, calls=3)


@pytest.fixture(scope="module")
def measured():
    return {str(save): peaks(save) for save in POLICIES}


@inlined_only
@pytest.mark.parametrize("save", [pytest.param(s, id=str(s), marks=[pytest.mark.xfail(
    reason=BEYOND_DESIGN[s], strict=True)] if s in BEYOND_DESIGN else []) for s in POLICIES])
def test_peak_memory_is_within_10_percent_of_the_policy_formula(save, measured):
    """Calls 2 and 3 (the first call allocates every value before the memory plan exists,
    see runtime/link/linker.py, and peaks higher)."""
    want = bl.design_bytes(save, DIMS)
    for call, got in enumerate(measured[str(save)][1:], 2):
        assert abs(got / want - 1) <= 0.10, (save, call, got, want)


@inlined_only
@pytest.mark.parametrize("k", [4, 24])
def test_checkpointing_is_within_10_percent_at_the_benchmark_size(k):
    """At tools/bench_loops.py's size (T=576, B=16, H=128) the constant excess above is a
    few percent of the formula."""
    dims = (576, 16, 128)
    with fc.Graph():
        f, args = bl.memory_model(dims, ("every", k))
        got = bl.peak_bytes(f, args, calls=3)
    want = bl.design_bytes(("every", k), dims)
    for call, peak in enumerate(got[1:], 2):
        assert abs(peak / want - 1) <= 0.10, (k, call, peak, want)


@inlined_only
def test_checkpointing_keeps_far_less_than_one_carry_per_step(measured):
    one_per_step = DIMS[0] * DIMS[1] * DIMS[2] * 8
    for save in (("every", 4), ("every", 12)):
        assert max(measured[str(save)][1:]) < one_per_step * 0.75, save
    assert max(measured["carries"][1:]) > 2 * one_per_step


def test_the_memory_report_counts_a_loops_stacked_outputs():
    steps, batch, units = 6, 3, 4
    x, h0 = fc.input("x", (None, batch, 2)), fc.input("h0", (batch, units))
    W = fc.param("W", np.full((2, units), 0.1))
    last, hs = fc.scan(lambda h, xt: (fc.tanh(xt @ W + h),) * 2, h0, x)
    f = fc.function([x, h0], [last, fc.sum(hs * hs)])
    for n in (steps, 2 * steps):
        f(np.ones((n, batch, 2)), np.zeros((batch, units)))
        # The stack of hs (steps, batch, units) float64; the final carry is not a stack.
        assert f.memory()["loop_stacks"] == n * batch * units * 8
    assert memory.loop_stacks(f.program, {}) == 0
