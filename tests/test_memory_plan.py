"""The runtime memory plan (runtime/memory/plan.py): arena offsets by liveness, shape-only reads,
and results that do not depend on how buffers are shared."""
import numpy as np

import flowc as fc
import flowc_runtime.memory.arena as arena
import flowc_runtime.memory.liveness as liveness


def mlp(optimize):
    rng = np.random.default_rng(0)
    x = fc.input("x", shape=(None, 12), dtype="float32")
    y = fc.input("y", shape=(None, 4), dtype="float32")
    sizes = [12, 9, 7, 4]
    ps, h = [], x
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = fc.param(f"W{i}", (rng.standard_normal((a, b)) / np.sqrt(a)).astype("float32"))
        c = fc.param(f"b{i}", np.zeros(b, "float32"))
        ps += [W, c]
        h = h @ W + c
        h = fc.relu(h) if i < 2 else h
    cost = fc.mean(fc.sum((h - y) ** 2, axis=1))
    return fc.function([x, y], cost, updates=fc.optim.momentum(cost, ps, lr=0.05),
                       optimize=optimize), ps


def buffer_range(a):
    base = a
    while base.base is not None:
        base = base.base
    start = a.__array_interface__["data"][0]
    return id(base), start, start + a.nbytes


def test_arena_values_that_live_together_never_share_bytes():
    with fc.Graph():
        f, _ = mlp("O2")
    X = np.ones((16, 12), "float32")
    f(X, np.zeros((16, 4), "float32"))
    exe = f.exe
    arrays, B = exe._last
    ends = liveness.live_ends(exe.program, exe._kinds)
    start = {ins.out: i for i, ins in enumerate(exe.program.instrs)}
    slots = [s for s in B if s not in exe._exclusive]
    assert slots
    for s in slots:
        assert B[s].__array_interface__["data"][0] % arena.ALIGN == 0
    for i, s in enumerate(slots):
        for t in slots[i + 1:]:
            a, b = (s, t) if start[s] <= start[t] else (t, s)
            if ends.get(a, start[a]) < start[b]:
                continue  # disjoint lives may share
            ra, rb = buffer_range(B[a]), buffer_range(B[b])
            overlap = ra[0] == rb[0] and ra[1] < rb[2] and rb[1] < ra[2]
            in_place = ra == rb and ends.get(a) == start[b]
            assert not overlap or in_place, (a, b)


def test_plan_stays_near_the_liveness_bound_and_results_match_unoptimized():
    with fc.Graph():
        f, p2 = mlp("O2")
    with fc.Graph():
        g, p0 = mlp("O0")
    rng = np.random.default_rng(1)
    for n in (5, 256, 256):  # two shape signatures; memory() reports the last new one
        X = rng.standard_normal((n, 12)).astype("float32")
        Y = rng.standard_normal((n, 4)).astype("float32")
        np.testing.assert_allclose(f(X, Y), g(X, Y), rtol=2e-5)
    for a, b in zip(p2, p0):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=2e-4, atol=1e-6)
    mem = f.memory()
    # The plan holds the arena plus one spare array per parameter (updates are swapped in).
    spare = sum(p.get_value().nbytes for p in p2)
    assert mem["plan"] - spare <= 1.3 * mem["lower_bound"], mem


def test_shape_only_reads_do_not_extend_a_life():
    x = fc.input("x", shape=(None, 3))
    y = fc.exp(x) * 2.0  # its gradient reads y only for its shape (broadcast, sum_like)
    f = fc.function([x], fc.grad(fc.sum(y), x), optimize="O0")
    prog, kinds = f.program, f.exe._kinds
    made = {ins.out: i for i, ins in enumerate(prog.instrs)}
    y_slot = next(ins.out for ins in prog.instrs if ins.kernel == "mul")
    shape_reads = [i for i, ins in enumerate(prog.instrs)
                   if y_slot in ins.args and y_slot not in liveness.value_args(ins)]
    assert shape_reads and all(prog.instrs[i].kernel in liveness.SHAPE_ONLY for i in shape_reads)
    ends = liveness.live_ends(prog, kinds)
    assert ends.get(y_slot, made[y_slot]) == made[y_slot]  # dead once made


def wide_mlp(optimize, seed=0):
    """A step whose first weight matrix (128 KiB) is updated last: its spare lends bytes."""
    rng = np.random.default_rng(seed)
    x = fc.input("x", shape=(None, 256), dtype="float32")
    y = fc.input("y", shape=(None,), dtype="int64")
    W1 = fc.param("W1", (rng.standard_normal((256, 128)) / 16).astype("float32"))
    b1 = fc.param("b1", np.zeros(128, "float32"))
    W2 = fc.param("W2", (rng.standard_normal((128, 10)) / 11).astype("float32"))
    h = fc.relu(x @ W1 + b1)
    logp = fc.log_softmax(h @ W2, axis=1)
    cost = -fc.mean(fc.take_along_axis(logp, fc.expand_dims(y, 1), axis=1))
    ps = [W1, b1, W2]
    return fc.function([x, y], cost, updates=fc.optim.sgd(cost, ps, lr=0.2),
                       optimize=optimize), ps


def wide_batch(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((64, 256)).astype("float32"), rng.integers(0, 10, 64)


def test_values_borrowing_an_update_spare_give_the_same_training():
    X, Y = wide_batch(4)
    with fc.Graph():
        f, p2 = wide_mlp("O2")
    with fc.Graph():
        g, p0 = wide_mlp("O0")
    for step in range(5):
        np.testing.assert_allclose(f(X, Y), g(X, Y), rtol=1e-5)
        if step == 0:
            assert f.exe._last[1].lent, "the plan should lend W1's spare"
        if step == 2:  # a parameter set from a Fortran-ordered array: no loan that call
            for a, b in zip(p2, p0):
                v = np.asfortranarray(np.atleast_2d(a.get_value())).reshape(a.get_value().shape)
                a.set_value(v)
                b.set_value(v)
    for a, b in zip(p2, p0):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-4, atol=1e-6)
    mem = f.memory()
    assert mem["plan"] <= 1.25 * mem["lower_bound"], mem


def test_a_failed_call_with_lent_buffers_changes_no_parameter():
    X, Y = wide_batch(5)
    with fc.Graph():
        f, ps = wide_mlp("O2")
    f(X, Y)
    f(X, Y)
    before = [p.get_value() for p in ps]
    bad = Y.copy()
    bad[3] = 99  # an index out of range: take_along_axis fails inside the call
    try:
        f(X, bad)
    except Exception:
        pass
    else:
        raise AssertionError("an out-of-range label should fail")
    for p, v in zip(ps, before):
        np.testing.assert_array_equal(p.get_value(), v)
    with fc.Graph():
        g, q = wide_mlp("O0")
    for p, v in zip(q, before):
        p.set_value(v)
    np.testing.assert_allclose(f(X, Y), g(X, Y), rtol=1e-5)
