"""Loop groups (runtime/cpu/loop_groups.py): consecutive elementwise instructions over one large
shape run chunk by chunk. Results must equal plain NumPy and the unfused pipeline, for
large shapes (chunked) and small ones (one by one), and values that die inside a group
must never be materialized."""
import numpy as np
import pytest

import flowc as fc
import flowc_runtime.cpu.loop_groups as lg
from flowc_runtime import ProgramError


def chunked_calls(f):
    """How many calls of f's loop groups ran chunked (summed over its groups)."""
    return sum(f.exe._env[f"_grp{g}"].chunked_calls for g in range(len(f.exe.loop_groups)))

N = 3 * lg.GROUP_MIN + 7  # chunked, with a short last chunk


def w3_function(optimize="O2"):
    x = fc.input("x", shape=(None,), dtype="float32")
    a, b = fc.param("a", np.float32(0.5)), fc.param("b", np.float32(0.1))
    v = fc.sum(fc.tanh(a * x + b) * fc.sigmoid(x) + fc.exp(-x * x))
    return fc.function([x], [v, fc.grad(v, x)], optimize=optimize)


def w3_numpy(x):
    x = x.astype(np.float64)
    t, s, e = np.tanh(0.5 * x + 0.1), 1 / (1 + np.exp(-x)), np.exp(-x * x)
    return (t * s + e).sum(), 0.5 * (1 - t * t) * s + t * s * (1 - s) - 2 * x * e


@pytest.mark.parametrize("n", [N, 1000])
def test_w3_matches_numpy_and_unfused(n):
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    with fc.Graph():
        f = w3_function()
    with fc.Graph():
        ref = w3_function("O0")
    assert f.exe.loop_groups, "the W3 step should form a loop group"
    for _ in range(2):  # the allocating call, then the buffered one
        v, g = f(x)
        v0, g0 = ref(x)
        want_v, want_g = w3_numpy(x)
        assert v.dtype == np.float32 and g.dtype == np.float32 and g.shape == (n,)
        np.testing.assert_allclose(v, want_v, rtol=2e-5)
        np.testing.assert_allclose(g, want_g, rtol=2e-4, atol=2e-6)
        np.testing.assert_allclose(v, v0, rtol=2e-5)
        np.testing.assert_allclose(g, g0, rtol=2e-5, atol=1e-6)
    assert chunked_calls(f) == (2 if n == N else 0)


def test_dead_values_are_not_materialized_and_sums_are_deterministic():
    x = np.random.default_rng(1).standard_normal(N).astype(np.float32)
    with fc.Graph():
        f = w3_function()
    first = f(x)
    mem = f.memory()
    # The gradient is an output (fresh each call) and no intermediate is full size.
    assert mem["plan"] < x.nbytes, mem
    for _ in range(3):
        v, g = f(x)
        assert v.tobytes() == first[0].tobytes() and g.tobytes() == first[1].tobytes()
    assert not np.shares_memory(f(x)[1], f(x)[1])  # outputs are fresh arrays


def test_readers_of_a_reduction_start_a_new_group():
    x = fc.input("x", shape=(None, 4))
    e = fc.exp(x)
    m = fc.mean(e * 2.0)
    y = fc.sum(fc.tanh(e - m) * 3.0)
    f = fc.function([x], [y, m, e])
    assert f.exe.loop_groups
    for k in f.exe.loop_groups:
        ins = [f.program.instrs[i] for i in k]
        made = {i.out for i in ins if lg._is_reduction(i)}
        assert not any(made & set(i.args) for i in ins)
    X = np.random.default_rng(2).standard_normal((N // 4, 4))
    want_m = (np.exp(X) * 2).mean()
    got_y, got_m, got_e = f(X)
    np.testing.assert_allclose(got_m, want_m, rtol=1e-12)
    np.testing.assert_allclose(got_y, (np.tanh(np.exp(X) - want_m) * 3).sum(), rtol=1e-10)
    np.testing.assert_allclose(got_e, np.exp(X), rtol=1e-15)
    assert chunked_calls(f) >= 1


def test_broadcast_operands_two_dims_and_updates():
    x = fc.input("x", shape=(None, 3))
    col = fc.input("c", shape=(None, 1))
    w = fc.param("w", np.zeros((1, 3)))
    big = fc.param("big", np.ones((N // 3, 3)))
    h = fc.tanh(x * w + col)
    new_big = big * 0.5 + h * fc.sigmoid(x)
    f = fc.function([x, col], [fc.sum(h), fc.max(new_big)], updates=[(big, new_big)])
    assert [len(k) for k in f.exe.loop_groups] == [4]  # (None, 3) and (N // 3, 3) unify
    rng = np.random.default_rng(3)
    X, C = rng.standard_normal((N // 3, 3)), rng.standard_normal((N // 3, 1))
    ref = np.ones((N // 3, 3))
    for _ in range(3):
        s, mx = f(X, C)
        hh = np.tanh(C + 0 * X)
        ref = ref * 0.5 + hh / (1 + np.exp(-X))
        np.testing.assert_allclose(s, hh.sum(), rtol=1e-12)
        np.testing.assert_allclose(mx, ref.max(), rtol=1e-12)
        np.testing.assert_allclose(big.get_value(), ref, rtol=1e-12, atol=1e-14)
    assert chunked_calls(f) == 3


def test_sizes_that_differ_at_run_time_fall_back_and_errors_name_the_member():
    x, y = fc.input("x", shape=(None,)), fc.input("y", shape=(None,))
    z = fc.exp(x) * 2.0
    out = z + y  # line named in the error below
    f = fc.function([x, y], [fc.sum(out), fc.sum(z)])
    X = np.random.default_rng(4).standard_normal(N)
    s, sz = f(X, np.array([1.5]))  # y really has size 1: broadcasts
    np.testing.assert_allclose(s, (np.exp(X) * 2 + 1.5).sum(), rtol=1e-12)
    np.testing.assert_allclose(sz, (np.exp(X) * 2).sum(), rtol=1e-12)
    with pytest.raises(ProgramError) as e:
        f(X, np.ones(N - 1))
    assert "test_loop_groups.py" in str(e.value) and "broadcast" in str(e.value)


def test_transposed_operand_runs_one_by_one():
    x = fc.input("x", shape=(None, None))
    t = fc.tanh(x)  # kept once for its two readers, dies inside the group
    f = fc.function([x], [fc.sum(t * x), t + 1.0])
    X = np.random.default_rng(5).standard_normal((3, N // 3)).T  # F-ordered
    s, t = f(X)
    np.testing.assert_allclose(s, (np.tanh(X) * X).sum(), rtol=1e-12)
    np.testing.assert_allclose(t, np.tanh(X) + 1, rtol=1e-15)
    assert f.exe.loop_groups and chunked_calls(f) == 0


def test_groups_form_only_where_they_pay():
    z = fc.input("z", shape=(None, 8))
    h = z + fc.param("b", np.zeros(8))
    f = fc.function([z], [h, fc.relu(h)], optimize="O1")  # both values escape
    assert f.exe.loop_groups == []


def test_find_groups_needs_one_static_shape():
    x, y = fc.input("x", shape=(None,)), fc.input("y", shape=(5, None))
    f = fc.function([x, y], [fc.exp(x) + 1.0, fc.sum(fc.tanh(y) * 2.0)], optimize="O1")
    for k in f.exe.loop_groups:
        shapes = {tuple(f.program.instrs[i].shape) for i in k
                  if not lg._is_reduction(f.program.instrs[i])}
        assert len(shapes) == 1



def test_profile_names_a_chunked_loop():
    x = np.random.default_rng(6).standard_normal(N).astype(np.float32)
    with fc.Graph():
        f = w3_function()
    p = f.profile(x)
    kinds = [r[1] for r in p.rows]
    assert kinds[0] == f"loop 0-{len(kinds) - 1}" and p.rows[0][3] > 0
    assert "loop 0-" in p.table()
