"""Checked mode (fc.function(..., mode="check")): NaN/inf stops that name the op, the forward op
and the user's line; optimized programs and executables compared with the O0 reference."""
import numpy as np
import pytest

import flowc as fc
import flowc_runtime as runtime
import flowc.checked
import flowc_runtime.cpu.gemm as gemm_kernels
from flowc_runtime.cpu.kernels import KERNELS, Kernel

LEVELS = ("O0", "O1", "O2")


def _line(marker):
    """The line number in this file of the source line that ends with `# <marker>`."""
    with open(__file__) as f:
        for i, text in enumerate(f, 1):
            if text.rstrip().endswith(f"# {marker}"):
                return f"test_checked_mode.py:{i}"
    raise AssertionError(marker)


def _mlp(level, mode, seed=0):
    """A small MLP training step: (step, params, args), with updates and two outputs."""
    rng = np.random.default_rng(seed)
    x = fc.input("x", (None, 5))
    y = fc.input("y", (None, 3))
    W1, b1 = fc.param("W1", rng.standard_normal((5, 8))), fc.param("b1", np.zeros(8))
    W2, b2 = fc.param("W2", rng.standard_normal((8, 3))), fc.param("b2", np.zeros(3))
    h = fc.tanh(x @ W1 + b1)
    p = fc.softmax(h @ W2 + b2, axis=1)
    cost = -fc.mean(fc.sum(y * fc.log(p), axis=1))
    ps = [W1, b1, W2, b2]
    grads = fc.grad(cost, ps)
    step = fc.function([x, y], [cost, p], updates=[(q, q - 0.1 * g) for q, g in zip(ps, grads)],
                       optimize=level, mode=mode)
    X = rng.standard_normal((16, 5))
    Y = np.eye(3)[rng.integers(0, 3, 16)]
    return step, ps, (X, Y)


@pytest.mark.parametrize("level", LEVELS)
def test_checked_mode_gives_the_same_results_and_updates_as_fast_mode(level):
    with fc.Graph():
        fast, pf, args = _mlp(level, None)
        outs_fast = [fast(*args) for _ in range(3)]
    with fc.Graph():
        checked, pc, _ = _mlp(level, "check")
        outs_checked = [checked(*args) for _ in range(3)]  # first, second and third call
    for a, b in zip(outs_fast, outs_checked):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    for p, q in zip(pf, pc):  # updates applied exactly once per call
        np.testing.assert_array_equal(p.get_value(), q.get_value())


@pytest.mark.parametrize("level", LEVELS)
def test_checked_mode_with_givens_and_outputs_that_are_leaves(level):
    x = fc.input("x", (None,))
    s = fc.input("s", ())
    w = fc.param("w", np.arange(4.0))
    scale = fc.param("scale", 2.0)
    out = fc.sum(fc.exp(-x * scale) * w)
    kw = dict(givens={scale: s * 0.5}, updates=[(w, w + out)], optimize=level)
    fast = fc.function([x, s], [out, w, x], **kw)
    w0 = w.get_value().copy()
    want = [fast(np.linspace(0, 1, 4), 3.0) for _ in range(3)]
    w.set_value(w0)
    checked = fc.function([x, s], [out, w, x], mode="check", **kw)
    got = [checked(np.linspace(0, 1, 4), 3.0) for _ in range(3)]
    for a, b in zip(want, got):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("level", LEVELS)
def test_backward_nan_names_the_forward_op_and_the_users_lines(level):
    x = fc.input("x", (None,))
    w = fc.param("w", np.array([1.0, 0.0, 4.0]))
    y = fc.sqrt(w)  # forward sqrt
    cost = fc.sum(y * x)
    g = fc.grad(cost, w)  # grad call
    f = fc.function([x], [cost, g], updates=[(w, w - 0.1 * g)], optimize=level, mode="check")
    with pytest.raises(fc.CheckError) as e:
        f(np.ones(3))
    msg = str(e.value)
    assert "backward pass" in msg and "sqrt" in msg
    assert _line("forward sqrt") in msg and _line("grad call") in msg
    assert "inf" in msg
    np.testing.assert_array_equal(w.get_value(), [1.0, 0.0, 4.0])  # no update applied


@pytest.mark.parametrize("level", LEVELS)
def test_backward_nan_of_log_at_zero(level):
    w = fc.param("w", np.array([0.5, 0.0]))
    c = fc.param("c", np.array([1.0, 0.0]))
    cost = fc.sum(c * fc.log(w + 0.0 * w))  # forward log
    g = fc.grad(cost, w)
    f = fc.function([], g, updates=[(w, w - g)], optimize=level, mode="check")
    with pytest.raises(fc.CheckError) as e:
        f()
    msg = str(e.value)
    assert "log" in msg and _line("forward log") in msg
    np.testing.assert_array_equal(w.get_value(), [0.5, 0.0])


@pytest.mark.parametrize("level", LEVELS)
def test_forward_nan_names_the_op_and_line(level):
    x = fc.input("x", (None,))
    out = fc.log(x - 1.0) * 2.0 + 1.0  # forward nan
    f = fc.function([x], out, optimize=level, mode="check")
    np.testing.assert_allclose(f(np.array([2.0, 3.0])), 2 * np.log([1.0, 2.0]) + 1)
    with pytest.raises(fc.CheckError) as e:
        f(np.array([2.0, 0.5]))
    msg = str(e.value)
    assert "NaN" in msg and "(log)" in msg and _line("forward nan") in msg
    assert "backward" not in msg
    assert "index (1,)" in msg and "call 2" in msg


def test_nan_input_is_named_as_the_source():
    x = fc.input("x", (None,))
    f = fc.function([x], fc.exp(x), mode="check")
    with pytest.raises(fc.CheckError, match=r"input 'x' \(argument 1\) holds NaN.*caller"):
        f(np.array([1.0, np.nan]))
    p = fc.param("p", np.array([np.inf]))
    g = fc.function([x], x + p, mode="check")
    with pytest.raises(fc.CheckError, match=r"parameter 'p' holds inf"):
        g(np.ones(1))


def test_stabilized_values_are_not_errors_where_the_optimized_program_is_finite():
    z = fc.input("z", (None,))
    out = fc.log(fc.sigmoid(z))  # O0: log(0) = -inf at z = -800; O1/O2: -softplus(-z)
    np.testing.assert_allclose(fc.function([z], out, mode="check")(np.array([-800.0, 0.0])),
                               [-800.0, -np.log(2)])
    with pytest.raises(fc.CheckError, match="-inf"):  # at O0 the program that runs makes it
        fc.function([z], out, optimize="O0", mode="check")(np.array([-800.0, 0.0]))


def _broken_gemm(only_buffered):
    """The NumPy gemm kernel, 1 % off (only when given an out= buffer, if only_buffered)."""
    real = gemm_kernels.gemm

    def gemm(a, b, c, alpha=1.0, beta=1.0, out=None):
        r = real(a, b, c, alpha=alpha, beta=beta, out=out)
        if out is not None or not only_buffered:
            r *= 1.01
        return r
    return Kernel(gemm, "out", inplace=KERNELS["gemm"].inplace)


def test_a_broken_fast_kernel_is_caught_on_every_call(monkeypatch):
    monkeypatch.setitem(KERNELS, "gemm", _broken_gemm(only_buffered=False))
    step, ps, args = _mlp("O2", "check")
    assert any(i.kernel == "gemm" for i in step.program.instrs)
    before = [p.get_value().copy() for p in ps]
    for call in (1, 2):
        with pytest.raises(fc.CheckError, match=f"call {call}: the O2 program differs from the "
                                                f"O0 reference first at") as e:
            step(*args)
        assert "gemm" in str(e.value) and "max abs error" in str(e.value)
        for p, b in zip(ps, before):  # a failing check changes no parameter
            np.testing.assert_array_equal(p.get_value(), b)


def test_a_broken_buffered_executable_is_caught_from_the_second_call(monkeypatch):
    # Wrong only with out= buffers: the first call allocates, later calls reuse the plan.
    monkeypatch.setitem(KERNELS, "gemm", _broken_gemm(only_buffered=True))
    step, ps, args = _mlp("O2", "check")
    step(*args)
    after_one = [p.get_value().copy() for p in ps]
    for call in (2, 3):
        with pytest.raises(fc.CheckError, match=f"call {call}: .* of the compiled function "
                                                f"differs .* memory plan"):
            step(*args)
        for p, b in zip(ps, after_one):
            np.testing.assert_array_equal(p.get_value(), b)


def test_a_failing_plan_verifier_fails_the_call_and_changes_no_parameter(monkeypatch):
    def verifier(exe):
        raise runtime.PlanError("slot 7 overlaps slot 9")
    monkeypatch.setattr(flowc.checked.runtime, "verify_plan", verifier)
    step, ps, args = _mlp("O2", "check")
    before = [p.get_value().copy() for p in ps]
    with pytest.raises(fc.CheckError, match="memory plan failed verification.*slot 7"):
        step(*args)
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.get_value(), b)


def test_input_errors_and_options():
    x = fc.input("x", (None,))
    f = fc.function([x], x * 2.0, mode="check")
    with pytest.raises(fc.InputError, match="expected dtype float64"):
        f(np.ones(2, dtype=np.complex128))
    with pytest.raises(fc.InputError, match="expected 1 input"):
        f(np.ones(2), np.ones(2))
    with pytest.raises(fc.FlowcError, match="mode must be None, 'fast' or 'check'"):
        fc.function([x], x, mode="debug")
    with pytest.raises(fc.FlowcError, match="check_tol applies to mode='check' only"):
        fc.function([x], x, check_tol=1e-3)
    with pytest.raises(fc.FlowcError, match="mode='check' runs on device='cpu' only"):
        fc.function([x], x, mode="check", device="gpu")
    with pytest.raises(fc.FlowcError, match="check_tol must be"):
        fc.function([x], x, mode="check", check_tol="tight")
    with pytest.raises(fc.FlowcError, match="check_tol: expected"):
        fc.function([x], x, mode="check", check_tol={"floaty": 1e-3})
    np.testing.assert_array_equal(fc.function([x], x + 1.0, mode="fast")(np.ones(2)), [2.0, 2.0])
    g = fc.function([x], fc.exp(x), mode="check", check_tol={"float64": 1e-3})
    assert g.checker.tol["float64"] == 1e-3 and g.checker.tol["float32"] == 1e-3


def test_theano_debug_modes_map_to_checked_mode():
    import flowc.theano as theano
    from flowc.theano import tensor as T
    x = T.dvector("x")
    for mode in ("DebugMode", "NanGuardMode"):
        f = theano.function([x], T.log(x), mode=mode)
        assert f.mode == "check"
        with pytest.raises(fc.CheckError, match="NaN"):
            f(np.array([1.0, -1.0]))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", ["log1p", "tanh", "sigmoid", "softplus", "sin"])
def test_second_derivatives_whose_pass_made_nodes_reuse_pruned_ids(name, level):
    # Fusion numbers its node from the largest id left, which can be the id of an O0 node
    # the passes pruned: ids alone do not say two nodes are the same.
    y = fc.scalar("y")
    g = fc.grad(getattr(fc, name)(y), y)
    outs = [getattr(fc, name)(y), g, fc.grad(g, y)]
    want = fc.function([y], outs, optimize=level)(0.7)
    for _ in range(3):
        got = fc.function([y], outs, optimize=level, mode="check")(0.7)
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)


def test_same_nodes_skips_a_reused_id():
    y = fc.scalar("y")
    g = fc.grad(fc.log1p(y), y)
    f = fc.function([y], [g, fc.grad(g, y)], mode="check")
    c = f.checker
    by_id = {i.node: i.kernel for i in c.ref_program.instrs}
    reused = [i for i in f.program.instrs if i.node in by_id and by_id[i.node] != i.kernel]
    assert not {i.node for i in reused} & c.shared  # (none, once passes stop reusing ids)


def test_rounding_at_relus_kink_is_not_a_difference():
    # u is exactly 0 at O0 and a rounding error at O1 (log(sigmoid) -> -softplus(-z)), so
    # relu's derivative (u > 0) flips between levels. Each instruction, given agreeing
    # operands, agrees: the check confirms a difference with the reference's values.
    rng = np.random.default_rng(0)
    Z = rng.standard_normal(1000) * 3
    z = fc.input("z", (None,))
    c = fc.param("c", -np.log(KERNELS["sigmoid"].fn(Z)))   # what O0 computes, negated
    wv = fc.param("wv", rng.standard_normal(1000))
    u = fc.log(fc.sigmoid(z)) + c
    cost = fc.sum(fc.relu(u) * wv)
    outs = [cost, fc.grad(cost, z)]
    fast = fc.function([z], outs, optimize="O1")
    checked = fc.function([z], outs, optimize="O1", mode="check")
    assert any(i.kernel == "relu" for i in checked.program.instrs)
    for _ in range(3):
        for a, b in zip(fast(Z), checked(Z)):
            np.testing.assert_array_equal(a, b)


def test_check_mode_runs_a_loop_and_checks_its_parts():
    """A loop's value is a tuple: the checker compares the parts read from it (a crash on
    the tuple before)."""
    x = fc.input("x", (None, 3))
    W = fc.param("W", np.eye(3) * 0.5)
    h, hs = fc.scan(lambda h, xt: (fc.tanh(xt @ W + h),) * 2, fc.zeros((3,)), x)
    outs = [h, fc.grad(fc.sum(hs), W)]
    f, ref = fc.function([x], outs, mode="check"), fc.function([x], outs, optimize="O0")
    for n in (4, 2, 4):
        xv = np.random.default_rng(n).standard_normal((n, 3))
        for a, b in zip(f(xv), ref(xv)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
