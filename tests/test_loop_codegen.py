"""The inlined loop (runtime/cpu/loops.py): one generated function holds the step loop and
the body's statements. Every case links the same graph twice, inlined and with the
reference path (INLINE = False: the linked body called once per step), and compares calls
1, 2 and 3 (the third with other shapes) on random inputs; some also against NumPy by hand.
"""
import copy
import json
import os
import random

import numpy as np
import pytest

import flowc as fc
import flowc_runtime as runtime
from flowc_runtime.cpu import loops as rloops
from flowc_runtime.program.format import Program

LEVELS = ["O0", "O1", "O2"]


def loop_runs(env):
    """The prepared loop kernels of a linked namespace (an Executable's or an inlined loop's)."""
    return [v for k, v in env.items() if k.startswith("loop_") and hasattr(v, "inlined")]


def all_loop_runs(f):
    """Every prepared loop kernel of a compiled function, nested ones included."""
    todo, out = loop_runs(f.exe._env), []
    while todo:
        r = todo.pop()
        out.append(r)
        if r.inlined is not None:
            todo += loop_runs(r.inlined.env)
    return out


def both(inputs, outputs, level="O1", inlined=True):
    """The graph linked with the inlined loop and with the per-step reference."""
    f = fc.function(inputs, outputs, optimize=level)
    old = rloops.INLINE
    rloops.INLINE = False
    try:
        g = fc.function(inputs, outputs, optimize=level)
    finally:
        rloops.INLINE = old
    assert all_loop_runs(f) and all(r.inlined is None for r in all_loop_runs(g))
    if inlined:
        assert all(r.inlined is not None for r in all_loop_runs(f))
    return f, g


def as_list(out):
    return out if isinstance(out, list) else [out]


def same(f, g, calls):
    """f and g agree exactly (values, dtypes, shapes) on every call; f's outputs returned."""
    got = []
    for args in calls:
        a, b = as_list(f(*args)), as_list(g(*args))
        assert len(a) == len(b)
        for u, v in zip(a, b):
            u, v = np.asarray(u), np.asarray(v)
            assert u.dtype == v.dtype and u.shape == v.shape
            np.testing.assert_array_equal(u, v)
        got.append(a)
    return got


FEATURES = [(), (3,), (2, 3)]


def draw(rng, shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("seed", range(3))
def test_scalar_recurrence(seed):
    rng = np.random.default_rng(seed)
    x, n = fc.input("x", ()), fc.scalar("n", "int64")
    out = fc.fori_loop(0, n, lambda i, c: c * 0.999 + fc.cast(i, "float64") * 0.5, x)
    plain = fc.fori_loop(0, n, lambda i, c: c * 0.999 + 0.5, x)  # the index unread
    f, g = both([x, n], [out, plain])
    steps = [int(rng.integers(1, 20)), 7, int(rng.integers(20, 40))]
    xvs = draw(rng, 3)
    got = same(f, g, [(np.float64(v), np.int64(k)) for v, k in zip(xvs, steps)])
    for (o, p), k, v in zip(got, steps, xvs):
        c, d = v, v
        for i in range(k):
            c, d = c * 0.999 + float(i) * 0.5, d * 0.999 + 0.5
        assert o.shape == () == p.shape
        np.testing.assert_allclose([o, p], [c, d], rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("level", LEVELS)
def test_scan_with_several_carries_and_ys(seed, level):
    rng = np.random.default_rng(seed)
    F = FEATURES[seed % 3]
    xs = fc.input("xs", (None,) + F)
    w = fc.input("w", F)

    def step(c, xt):
        h, k, s = c
        h2 = fc.tanh(h * 0.5 + xt * w)
        return (h2, k + 1, s + fc.sum(h2)), (h2 * xt, k, fc.sum(xt), h)
    reverse = bool(seed % 2)
    (h, k, s), ys = fc.scan(step, (fc.zeros(F), fc.constant(np.int64(3)), fc.constant(0.0)),
                            xs, reverse=reverse)
    f, g = both([xs, w], [h, k, s, *ys], level)
    wv = draw(rng, F)
    calls = [(draw(rng, (T,) + F), wv) for T in (5, 5, int(rng.integers(1, 9)))]
    for (xv, _), got in zip(calls, same(f, g, calls)):
        hv, kv, sv, rows = np.zeros(F), 3, 0.0, [None] * len(xv)
        for t in (range(len(xv) - 1, -1, -1) if reverse else range(len(xv))):
            h2 = np.tanh(hv * 0.5 + xv[t] * wv)
            rows[t] = (h2 * xv[t], kv, xv[t].sum(), hv)
            hv, kv, sv = h2, kv + 1, sv + h2.sum()
        np.testing.assert_allclose(got[0], hv, rtol=1e-12)
        assert got[1] == kv and got[1].dtype == np.int64
        np.testing.assert_allclose(got[2], sv, rtol=1e-12)
        for j in range(4):
            np.testing.assert_allclose(got[3 + j], np.array([r[j] for r in rows]), rtol=1e-12)


@pytest.mark.parametrize("level", LEVELS)
def test_carries_and_ys_that_are_views_or_pass_throughs(level):
    """Swapped carries, a carry passed along unchanged, a carry that is a transposed
    sequence row, ys that are the old carry and reshaped views: right on every step."""
    rng = np.random.default_rng(1)
    xs = fc.input("xs", (None, 3, 3))

    def step(c, xt):
        a, b, p, q = c
        return (b, a + xt, p, xt.T), (a, xt.T, p.reshape((9,)), q[1:, ::-1], b * 1.0)
    (a, b, p, q), ys = fc.scan(step, (fc.zeros((3, 3)), fc.ones((3, 3)),
                                      fc.constant(np.arange(9.0).reshape(3, 3)),
                                      fc.zeros((3, 3))), xs)
    f, g = both([xs], [a, b, p, q, *ys], level)
    calls = [(draw(rng, (T, 3, 3)),) for T in (4, 4, 7)]
    for (xv,), got in zip(calls, same(f, g, calls)):
        av, bv, pv, qv = np.zeros((3, 3)), np.ones((3, 3)), np.arange(9.0).reshape(3, 3), \
            np.zeros((3, 3))
        rows = []
        for t in range(len(xv)):
            rows.append((av, xv[t].T, pv.reshape(9), qv[1:, ::-1], bv))
            av, bv, qv = bv, av + xv[t], xv[t].T
        for u, v in zip(got, [av, bv, pv, qv] + [np.array([r[j] for r in rows])
                                                 for j in range(5)]):
            np.testing.assert_array_equal(u, v)
    # Nothing returned shares bytes with another output or the caller's input.
    out = f(*calls[0])
    for i, u in enumerate(out):
        assert not np.shares_memory(u, calls[0][0])
        assert not any(np.shares_memory(u, v) for v in out[i + 1:])


def test_reverse_and_stack_axis_1():
    """Batching a scan stacks its ys along axis 1 (the batch axis first)."""
    rng = np.random.default_rng(2)
    xs = fc.input("xs", (5, 3))

    def step(c, xt):
        c2 = fc.sin(c) * 0.5 + xt
        return c2, (c2 * 2.0, fc.sum(c2))
    c, (y1, y2) = fc.scan(step, fc.zeros((3,)), xs, reverse=True)
    xb = fc.input("xb", (4, 5, 3))
    outs = fc.batch([c, y1, y2], {xs: xb})
    f, g = both([xb], outs)
    axes = [ins.attrs["stack_axis"] for ins in f.program.instrs if ins.kernel == "loop"]
    assert axes == [1]
    calls = [(draw(rng, (4, 5, 3)),) for _ in range(3)]
    for (xv,), got in zip(calls, same(f, g, calls)):
        assert got[1].shape == (4, 5, 3) and got[2].shape == (4, 5)
        cv = np.zeros((4, 3))
        for t in range(4, -1, -1):
            cv = np.sin(cv) * 0.5 + xv[:, t]
            np.testing.assert_allclose(got[1][:, t], cv * 2.0, rtol=1e-12)
        np.testing.assert_allclose(got[0], cv, rtol=1e-12)


def test_a_body_with_a_fused_kernel():
    rng = np.random.default_rng(3)
    xs = fc.input("xs", (None, 6))
    c, ys = fc.scan(lambda c, xt: (fc.tanh(c * 0.5 + xt) * 2.0 - c,
                                   fc.exp(-c * c) + xt * 3.0), fc.zeros((6,)), xs)
    f, g = both([xs], [c, ys], "O2")
    assert any("fused" in r.inlined.source for r in all_loop_runs(f))
    same(f, g, [(draw(rng, (T, 6)),) for T in (3, 3, 8)])


@pytest.mark.parametrize("level", LEVELS)
def test_nested_loops(level):
    """A loop inside a body (reading the outer carry) is inlined in its turn."""
    rng = np.random.default_rng(4)
    xs = fc.input("xs", (None, 4, 2))

    def outer(c, xt):
        d, ys = fc.scan(lambda d, r: (d * 0.5 + r * c, d + c), c, xt, reverse=True)
        return d + 1.0, fc.sum(ys, axis=0)
    c, ys = fc.scan(outer, fc.ones((2,)), xs)
    f, g = both([xs], [c, ys], level)
    assert len(all_loop_runs(f)) == 2
    calls = [(draw(rng, (T, 4, 2)),) for T in (3, 3, 5)]
    for (xv,), got in zip(calls, same(f, g, calls)):
        cv, rows = np.ones(2), []
        for t in range(len(xv)):
            d, inner = cv, [None] * 4
            for s in range(3, -1, -1):
                inner[s] = d + cv
                d = d * 0.5 + xv[t, s] * cv
            rows.append(np.sum(inner, axis=0))
            cv = d + 1.0
        np.testing.assert_allclose(got[0], cv, rtol=1e-12)
        np.testing.assert_allclose(got[1], np.array(rows), rtol=1e-12)


@pytest.mark.parametrize("level", LEVELS)
def test_zero_steps(level):
    xs = fc.input("xs", (None, 3))
    n = fc.scalar("n", "int64")
    c, (y1, y2) = fc.scan(lambda c, xt: (c + xt, (c * xt, fc.sum(xt))), fc.ones((3,)), xs)
    k = fc.fori_loop(0, n, lambda i, c: c * 2.0, fc.ones((2,)))
    f, g = both([xs, n], [c, y1, y2, k], level)
    rng = np.random.default_rng(5)
    calls = [(np.zeros((0, 3)), np.int64(0)), (draw(rng, (2, 3)), np.int64(3)),
             (np.zeros((0, 3)), np.int64(-2))]
    got = same(f, g, calls)
    for cv, y1v, y2v, kv in (got[0], got[2]):
        np.testing.assert_array_equal(cv, np.ones(3))
        assert y1v.shape == (0, 3) and y2v.shape == (0,)
        np.testing.assert_array_equal(kv, np.ones(2))
    np.testing.assert_array_equal(got[1][3], np.full(2, 8.0))


@pytest.mark.parametrize("level", LEVELS)
def test_the_while_form(level):
    x = fc.input("x", (2,))
    r = fc.while_loop(lambda c: fc.sum(c) < 10.0, lambda c: c * 1.5 + 0.1, x, max_steps=30)
    u = fc.while_loop(lambda c: fc.sum(c) < 10.0, lambda c: c * 1.5 + 0.1, x)
    f, g = both([x], [r, u], level, inlined=False)
    for (xv,), got in zip([(np.full(2, 0.5),)] * 2 + [(np.full(2, 20.0),)],
                          same(f, g, [(np.full(2, 0.5),)] * 2 + [(np.full(2, 20.0),)])):
        c = xv
        while c.sum() < 10.0:
            c = c * 1.5 + 0.1
        np.testing.assert_allclose(got[0], c, rtol=1e-12)
        np.testing.assert_allclose(got[1], c, rtol=1e-12)


def messages(f, g, args):
    """The error each of f and g raises on args (they must be the same kind and text)."""
    out = []
    for h in (f, g):
        with pytest.raises(runtime.ProgramError) as info:
            h(*args)
        out.append((type(info.value), str(info.value)))
    assert out[0] == out[1]
    return out[0][1]


@pytest.mark.parametrize("k", [0, 1, 3])
def test_an_error_at_step_k_names_the_step_the_instruction_and_the_line(k):
    x = fc.input("x", (None,), "int64")
    table = fc.constant(np.arange(3.0))
    s, ys = fc.scan(lambda c, i: (c + table[i], c * 2.0), fc.constant(0.0), x)
    f, g = both([x], [s, ys])
    good = np.array([0, 2, 1, 1, 2])
    bad = good.copy()
    bad[k] = 7
    same(f, g, [(good,)])
    msg = messages(f, g, (bad,))
    assert f"at step {k} of the loop: instruction" in msg and "(take)" in msg
    assert "test_loop_codegen.py" in msg and "index 7 is out of bounds" in msg
    same(f, g, [(good,), (good[:2],)])  # and both still run after the failure


def test_an_error_in_a_nested_loop_names_both_steps():
    xs = fc.input("xs", (None, 3), "int64")
    table = fc.constant(np.arange(4.0))

    def outer(c, row):
        d, _ = fc.scan(lambda d, i: (d + table[i], None), c, row)
        return d, d
    c, ys = fc.scan(outer, fc.constant(0.0), xs)
    f, g = both([xs], [c, ys])
    good = np.array([[0, 1, 2], [3, 2, 1]])
    same(f, g, [(good,)])
    bad = good.copy()
    bad[1, 2] = 9
    msg = messages(f, g, (bad,))
    assert msg.count("at step") == 2 and "at step 1 of the loop" in msg
    assert "at step 2 of the loop" in msg


def test_large_steps_run_the_linked_body(monkeypatch):
    """Steps over BIG elements keep the per-step path (buffers, loop groups): same values."""
    monkeypatch.setattr(rloops, "BIG", 8)
    xs = fc.input("xs", (None, None))
    c, ys = fc.scan(lambda c, xt: (fc.tanh(c + xt), c * xt), fc.zeros((1,)) * xs[0], xs)
    f, g = both([xs], [c, ys])
    [run] = all_loop_runs(f)
    used = []
    inner = run.inlined.run
    run.inlined.run = lambda *a: used.append(1) or inner(*a)
    rng = np.random.default_rng(6)
    same(f, g, [(draw(rng, (3, 4)),), (draw(rng, (3, 16)),), (draw(rng, (5, 4)),)])
    assert len(used) == 2  # the (3, 16) call's carry has 16 elements


def test_the_stepper_runs_a_loop():
    """The checked mode's one-instruction-at-a-time runner keeps a loop's tuple value."""
    from flowc_runtime.link.stepper import Stepper
    xs = fc.input("xs", (None, 2))
    c, ys = fc.scan(lambda c, xt: (c * 0.5 + xt, c), fc.zeros((2,)), xs)
    f = fc.function([xs], [c, ys])
    st = Stepper(f.program)
    xv = np.random.default_rng(7).standard_normal((4, 2))
    for _ in st.run([xv], []):
        pass
    for u, v in zip(st.results()[0], f(xv)):
        np.testing.assert_array_equal(u, v)


# -- a tampered loop body never adds code ------------------------------------------------------
@pytest.fixture
def canary(tmp_path):
    path = str(tmp_path / "canary")
    yield path
    assert not os.path.exists(path), "a payload from the file ran"


def payload(path):
    return f"__import__('builtins').open({path!r}, 'w').close()"


def saved_loop(tmp_path):
    """(path, compiled function, its input) of a saved Program with a loop (fused body)."""
    xs = fc.input("xs", (None, 3))
    c, ys = fc.scan(lambda c, xt: (fc.tanh(c * 0.5 + xt) - c, c * xt), fc.zeros((3,)), xs)
    f = fc.function([xs], [c, ys], optimize="O2")
    base = str(tmp_path / "loop")
    f.save(base)
    return base, f, np.random.default_rng(8).standard_normal((4, 3))


def loop_instr(prog):
    return next(ins for ins in prog.instrs if ins.kernel == "loop")


def test_a_saved_loop_loads_and_runs_like_the_original(tmp_path):
    base, f, xv = saved_loop(tmp_path)
    h = runtime.load(base)
    for _ in range(3):
        for u, v in zip(h(xv), f(xv)):
            np.testing.assert_array_equal(u, v)


def test_body_where_text_never_reaches_the_generated_loop(tmp_path, canary):
    base, f, xv = saved_loop(tmp_path)
    prog = Program.load(base)
    body = loop_instr(prog).attrs["body"]
    evil = f"made at a.py:1\r{payload(canary)}\n{payload(canary)}\u2028{payload(canary)}"
    for ins in body["instrs"]:
        ins["where"] = evil
    h = runtime.link(prog)
    [run] = loop_runs(h._env)
    assert "open(" not in run.inlined.source and "made at" not in run.inlined.source
    for _ in range(3):
        for u, v in zip(h(xv), f(xv)):
            np.testing.assert_array_equal(u, v)


def test_the_loop_codegen_refuses_what_is_not_an_int_or_an_identifier(tmp_path, canary):
    base, _, _ = saved_loop(tmp_path)
    evil = payload(canary)

    def tampered(change):
        prog = Program.load(base)
        ins = loop_instr(prog)
        ins.attrs = json.loads(json.dumps(ins.attrs))  # lists, to edit in place
        change(ins.attrs)
        return prog

    def text_slot(a):  # an input slot and its reads as text: in-memory checks pass
        body = a["body"]
        slot = body["inputs"][0]["slot"]
        body["inputs"][0]["slot"] = f"0 + {evil}"
        for ins in body["instrs"]:
            ins["args"] = [f"0 + {evil}" if s == slot else s for s in ins["args"]]
    cases = [
        text_slot,
        lambda a: a.update(stack_axis=f"0] = 1; {evil}; y0[0"),
        lambda a: a["body"]["instrs"][0].update(kernel=f"add; {evil}"),
        lambda a: a["body"]["outputs"].__setitem__(0, f"1; {evil}"),
    ]
    for change in cases:
        with pytest.raises((runtime.ProgramError, ValueError)):
            runtime.link(tampered(change))


def leaves(v, path=()):
    """Every (path, value) in a JSON object, containers included."""
    stack, out = [(v, path)], []
    while stack:
        x, p = stack.pop()
        out.append((p, x))
        if isinstance(x, dict):
            stack.extend((c, p + (k,)) for k, c in x.items())
        elif isinstance(x, list):
            stack.extend((c, p + (i,)) for i, c in enumerate(x))
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_random_changes_to_a_saved_loop_body_load_and_run_or_raise(tmp_path, canary):
    base, _, xv = saved_loop(tmp_path)
    with open(base + ".json") as fh:
        d = json.load(fh)
    with np.load(base + ".npz") as z:
        arrays = {k: z[k] for k in z.files}
    k = next(i for i, ins in enumerate(d["instrs"]) if ins["kernel"] == "loop")
    spots = [p for p, _ in leaves(d["instrs"][k]["attrs"]) if p]
    evil = payload(canary)
    values = [None, True, 0, 1, 2, -1, 3.0, 2 ** 70, "", "x", f"0; {evil}", f"\n{evil}",
              "add", "fused", "loop", "float64", [], [0], ["arg", 0], {}, {"slot": 0}]
    rng = random.Random(13)
    outcomes = {"refused": 0, "ran": 0, "failed at call": 0}
    for trial in range(150):
        d2 = copy.deepcopy(d)
        path = rng.choice(spots)
        parent = d2["instrs"][k]["attrs"]
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = copy.deepcopy(rng.choice(values))
        b2 = str(tmp_path / f"fuzz{trial % 4}")
        with open(b2 + ".json", "w") as fh:
            json.dump(d2, fh)
        np.savez(b2 + ".npz", **arrays)
        try:
            h = runtime.load(b2)
        except runtime.ProgramFileError:
            outcomes["refused"] += 1
            continue
        try:
            for _ in range(3):
                h(xv)
            outcomes["ran"] += 1
        except (runtime.ProgramError, runtime.CallError):
            outcomes["failed at call"] += 1
        assert not os.path.exists(canary), path
    assert outcomes["refused"] > 50 and outcomes["ran"] > 0, outcomes


# -- the GPU backend keeps the per-step path -------------------------------------------------
def test_a_scan_on_the_fake_device_matches_the_cpu(monkeypatch):
    from tests import fake_cupy
    from tests import gpu_emulator as emu
    if not emu.available():
        pytest.skip("no C++ compiler (g++) for the host emulator")
    cp = fake_cupy.install(monkeypatch)
    try:
        xs = fc.input("xs", (None, 3))

        def step(c, xt):
            a, b = c
            return (b, a * 0.5 + xt), (a * 2.0, xt.T)
        (a, b), (y1, y2) = fc.scan(step, (fc.zeros(3), fc.ones(3)), xs, reverse=True)
        dev = fc.function([xs], [a, b, y1, y2], device="gpu")
        cpu = fc.function([xs], [a, b, y1, y2])
        rng = np.random.default_rng(9)
        for T in (4, 4, 0):
            xv = rng.standard_normal((T, 3))
            got = dev(xv)
            assert all(type(u) is cp.ndarray for u in got)
            for u, v in zip(got, cpu(xv)):
                np.testing.assert_allclose(u.get(), v, rtol=1e-13)
    finally:
        fake_cupy.uninstall()
