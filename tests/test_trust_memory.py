"""Issue 10 (trust), memory plan: outputs that view temporaries (B1), loans to values read
inside a loop group (B2), buffers laid out like the first call's arrays (B4), in-place
hand-over onto a buffer another operand views. Every case checks the first, second and
third call against NumPy at O0, O1 and O2."""
import os

import numpy as np
import pytest

import flowc as fc
import flowc_runtime as runtime
from flowc_runtime.memory import arena
from flowc_runtime.memory import verify as plan_verify

LEVELS = ["O0", "O1", "O2"]


def three_calls(f, args, want):
    """Call f three times (allocating call, then planned buffers) and compare with want."""
    for call in range(3):
        got = f(*args)
        got = got if isinstance(got, list) else [got]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"call {call + 1}")


VIEWS = {  # an output that is a view of a temporary
    "transpose": (lambda t: t.T, lambda a: a.T),
    "slice": (lambda t: t[1:, ::2], lambda a: a[1:, ::2]),
    "reshape": (lambda t: fc.reshape(t, (-1,)), lambda a: a.reshape(-1)),
    "int index": (lambda t: t[1], lambda a: a[1]),
}


@pytest.mark.parametrize("opt", LEVELS)
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_an_output_viewing_a_temporary_survives_later_values(opt, view):
    make, ref = VIEWS[view]
    x, y = fc.input("x", (None, None)), fc.input("y", (None, None))
    t = make(fc.tanh(x))
    z = fc.exp(y) * 2.0 + fc.sin(y)
    f = fc.function([x, y], [z, t], optimize=opt)
    X = np.array([[.1, .2, .3], [.4, .5, .6]])
    Y = np.ones((3, 2))
    three_calls(f, (X, Y), [np.exp(Y) * 2 + np.sin(Y), ref(np.tanh(X))])


@pytest.mark.parametrize("opt", LEVELS)
def test_an_output_viewing_a_reduction_survives_a_matmul(opt):
    x, y = fc.input("x", (None, None)), fc.input("y", (None, None))
    t = fc.max(x, axis=1, keepdims=True).T
    z = fc.exp(y) @ fc.constant(np.ones((2, 2)))
    f = fc.function([x, y], [z, t], optimize=opt)
    X, Y = np.arange(6.).reshape(3, 2), np.ones((3, 2))
    three_calls(f, (X, Y), [np.exp(Y) @ np.ones((2, 2)), X.max(axis=1, keepdims=True).T])


@pytest.mark.parametrize("opt", LEVELS)
def test_training_a_large_parameter_through_a_transposed_slice(opt):
    p = fc.param("p", np.ones((512, 256)))  # 2**17 elements: loop groups run chunked
    cost = fc.sum(p.T[1:])
    f = fc.function([], cost, updates=[(p, p - 0.5 * fc.grad(cost, p))], optimize=opt)
    P, want = np.ones((512, 256)), []
    for _ in range(3):
        want.append(P.T[1:].sum())
        G = np.zeros_like(P)
        G[:, 1:] = 1
        P = P - 0.5 * G
    got = [float(f()) for _ in range(3)]
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(p.get_value(), P)


@pytest.mark.parametrize("opt", LEVELS)
def test_sgd_on_a_large_column_parameter(opt):
    rng = np.random.default_rng(0)
    C = rng.standard_normal(2 ** 17) * 0.01
    P0 = rng.standard_normal((2 ** 17, 1)) * 0.01
    c, p = fc.constant(C), fc.param("p", P0.copy())
    cost = fc.sum(fc.sigmoid(c @ p))
    f = fc.function([], cost, updates=[(p, p - 0.05 * fc.grad(cost, p))], optimize=opt)
    P, want = P0.copy(), []
    for _ in range(3):
        s = 1 / (1 + np.exp(-(C @ P)))
        want.append(s.sum())
        P = P - 0.05 * np.outer(C, s * (1 - s))
    got = [float(f()) for _ in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    np.testing.assert_allclose(p.get_value(), P, rtol=1e-12)


@pytest.mark.parametrize("opt", LEVELS)
def test_fortran_ordered_inputs_give_the_same_bits_on_every_call(opt):
    x = fc.input("x", (3, 7, 5), dtype="float32")
    f = fc.function([x], fc.sum(fc.tanh(x) * 3.0), optimize=opt)
    X = np.asfortranarray(np.random.default_rng(1).standard_normal((3, 7, 5)).astype("float32"))
    got = [f(X) for _ in range(3)]
    assert got[0].tobytes() == got[1].tobytes() == got[2].tobytes(), got
    np.testing.assert_allclose(got[0], np.sum(np.tanh(X) * 3.0), rtol=1e-5)


@pytest.mark.parametrize("opt", LEVELS)
@pytest.mark.parametrize("n", [5, 400])  # 400**2 elements: loop groups run chunked
def test_no_in_place_write_over_a_buffer_another_operand_views(opt, n):
    x = fc.input("x", (None, None))
    t = fc.exp(x)
    y = t + t.T
    w = fc.constant(np.linspace(-1, 1, n * 3).reshape(n, 3))
    f = fc.function([x], [y @ w, fc.sum(y * 0.5)], optimize=opt)
    X = np.random.default_rng(2).standard_normal((n, n)) * 0.1
    Yn = np.exp(X) + np.exp(X).T
    three_calls(f, (X,), [Yn @ np.linspace(-1, 1, n * 3).reshape(n, 3), np.sum(Yn * 0.5)])


def test_the_verifier_is_on_for_the_suite_and_checks_every_plan():
    if os.environ.get("FLOWC_VERIFY_PLAN") != "0":  # tests/conftest.py turns it on
        assert plan_verify.ENABLED
    x = fc.input("x", (None, None))
    f = fc.function([x], [fc.tanh(x).T, fc.exp(x) * 2.0], optimize="O0")
    f.exe.verify_calls()
    for _ in range(2):
        f(np.ones((3, 2)))
    assert f.exe._verify
    assert runtime.verify_plan(f.exe) == 1  # plans checked (one shape signature)


def test_the_verifier_rejects_a_buffer_in_another_memory_order():
    a = np.asfortranarray(np.ones((3, 4)))
    plan_verify.check_layouts({5: a}, {5: np.ones((4, 3)).T})
    with pytest.raises(runtime.PlanError, match="slot 5"):
        plan_verify.check_layouts({5: a}, {5: np.ones((3, 4))})


@pytest.mark.parametrize("opt", LEVELS)
def test_a_group_planned_one_by_one_never_interleaves(opt):
    # The first call's Fortran-ordered input runs the loop group member by member, and the
    # plan shares bytes accordingly; a C-ordered input of the same shape must not then run
    # the members interleaved over that plan.
    x = fc.input("x", (None, None))
    e = fc.exp(x)
    f = fc.function([x], [fc.sum(e * fc.tanh(x)), e * 2.0], optimize=opt)
    X = np.random.default_rng(3).standard_normal((512, 512)) * 0.1
    want = [np.sum(np.exp(X) * np.tanh(X)), np.exp(X) * 2.0]
    for order in "FCF":
        three_calls(f, (np.asarray(X, order=order),), want)


def test_a_long_chain_plans_one_buffer():
    x = fc.input("x", (8, 8))
    h = x
    for i in range(3000):
        h = fc.tanh(h) if i % 2 else h * 0.5
    f = fc.function([x], h, optimize="O0")
    X = np.ones((8, 8))
    want = X
    for i in range(3000):
        want = np.tanh(want) if i % 2 else want * 0.5
    three_calls(f, (X,), [want])
    plan, _ = f.exe.memory()
    assert plan <= 8 * 8 * 8 + arena.ALIGN  # each step writes over the value it reads


# -- the verifier on plans made wrong by hand -------------------------------------------------
def planned(opt="O0"):
    x, y = fc.input("x", (None, None)), fc.input("y", (None, None))
    f = fc.function([x, y], [fc.exp(y) * 2.0 + fc.sin(y), fc.tanh(x).T], optimize=opt)
    f(np.ones((2, 3)), np.ones((3, 2)))
    return f.exe, next(iter(f.exe._bufs.values()))


def test_the_verifier_rejects_a_plan_that_shares_bytes_between_live_values():
    exe, B = planned()
    made = {ins.kernel: ins.out for ins in exe.program.instrs}
    runtime.verify_plan(exe)  # the real plan is fine
    B[made["sin"]] = B[made["mul"]]  # exp(y) * 2 is still to be read when sin(y) is written
    with pytest.raises(runtime.PlanError, match="writes slot"):
        runtime.verify_plan(exe)


def test_the_verifier_rejects_an_in_place_write_over_a_viewed_operand():
    x = fc.input("x", (None, None))
    t = fc.exp(x)
    f = fc.function([x], (t + t.T) @ fc.constant(np.ones((3, 1))), optimize="O0")
    f(np.ones((3, 3)))
    exe, B = f.exe, next(iter(f.exe._bufs.values()))
    k = next(i for i, ins in enumerate(exe.program.instrs) if ins.kernel == "add")
    add = exe.program.instrs[k]
    t_slot = next(a for a in add.args if a in B)
    runtime.verify_plan(exe)
    B[add.out] = B[t_slot]  # hand t's buffer to t + t.T
    with pytest.raises(runtime.PlanError, match=f"instruction {k} \\(add\\)"):
        runtime.verify_plan(exe)


def test_the_verifier_rejects_an_output_that_shares_a_buffer():
    buf = np.zeros(4)
    plan_verify.check_outputs([np.zeros(4)], [("the buffer of slot 3", buf)])
    with pytest.raises(runtime.PlanError, match="slot 3"):
        plan_verify.check_outputs([buf[1:]], [("the buffer of slot 3", buf)])


# -- arena placement -------------------------------------------------------------------------
def test_skyline_matches_a_plain_list():
    rng = np.random.default_rng(7)
    sky, plain = arena._Skyline(37), [0] * 37
    for _ in range(400):
        a, b = sorted(rng.integers(0, 37, 2))
        if rng.random() < 0.5:
            v = int(rng.integers(1, 1000))
            sky.raise_to(a, b, v)
            plain[a:b + 1] = [max(p, v) for p in plain[a:b + 1]]
        else:
            assert sky.highest(a, b) == max(plain[a:b + 1])


@pytest.mark.parametrize("wide", [False, True])
def test_placed_blocks_never_meet_in_time_and_bytes(wide):
    # Short lives (first fit into gaps) and many lives at once (stacked on the skyline).
    rng = np.random.default_rng(8)
    placed, blocks = arena._Placed(300), []
    for _ in range(300):
        first = int(rng.integers(0, 250))
        last = min(299, first + int(rng.integers(0, 200 if wide else 6)))
        n = int(rng.integers(1, 5000))
        at = placed.lowest_free(first, last, n)
        assert at % arena.ALIGN == 0
        for f, l, o, m in blocks:
            assert l < first or last < f or o + m <= at or at + n <= o
        placed.add(first, last, n, at)
        blocks.append((first, last, at, n))
