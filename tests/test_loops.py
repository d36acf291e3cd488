"""Loops (fc.scan, fc.fori_loop) against the same computation unrolled in Python: values and
gradients to 1e-12 in float64 at O0, O1 and O2 on calls 1-3, finite differences, grad of
grad, nesting, saved Programs, and the errors."""
import numpy as np
import pytest

import flowc as fc
import flowc_runtime as runtime

LEVELS = ("O0", "O1", "O2")
rng = np.random.default_rng(11)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def rnn_ref(xv, hv, Wv, Uv):
    h, hs = hv, []
    for t in range(len(xv)):
        h = np.tanh(xv[t] @ Wv + h @ Uv)
        hs.append(h)
    return h, np.array(hs).reshape((len(xv),) + hv.shape)


def test_an_rnn_and_its_gradients_match_the_unrolled_loop():
    x = fc.input("x", (None, 2, 3))  # (steps, batch, features)
    h0 = fc.input("h0", (2, 4))
    W = fc.param("W", rng.standard_normal((3, 4)) * 0.5)
    U = fc.param("U", rng.standard_normal((4, 4)) * 0.5)
    final, hs = fc.scan(lambda h, xt: (fc.tanh(xt @ W + h @ U),) * 2, h0, x)
    assert final.type.shape == (2, 4) and hs.type.shape == (None, 2, 4)
    cost = fc.sum(hs ** 2) + fc.sum(final)
    grads = fc.grad(cost, [W, U, x, h0])
    Wv, Uv = W.get_value(), U.get_value()

    def cost_of(xv, hv, Wv, Uv):
        h, hs_ = rnn_ref(xv, hv, Wv, Uv)
        return (hs_ ** 2).sum() + h.sum()

    def ref(xv, hv):
        h, hs_ = rnn_ref(xv, hv, Wv, Uv)
        num = fc.numerical_grad(lambda a, b, c, d: cost_of(c, d, a, b), [Wv, Uv, xv, hv])
        return h, hs_, num

    for level in LEVELS:
        f = fc.function([x, h0], [final, hs] + grads, optimize=level)
        for steps in (5, 3, 5):
            xv, hv = rng.standard_normal((steps, 2, 3)), rng.standard_normal((2, 4))
            got = f(xv, hv)
            h, hs_, num = ref(xv, hv)
            close(got[0], h)
            close(got[1], hs_)
            for g, n in zip(got[2:], num):
                np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("level", LEVELS)
def test_several_carries_and_ys_reverse_and_integer_carries(level):
    xs = fc.input("xs", (None,))
    a0 = fc.input("a0", ())

    def step(c, x):
        s, p, n = c
        return (s + x, p * x, n + 1), (s * x, fc.cast(n, "float64") * x)
    for reverse in (False, True):
        (s, p, n), (y1, y2) = fc.scan(step, (a0, a0 + 1.0, fc.constant(np.int64(0))), xs,
                                      reverse=reverse)
        cost = fc.sum(y1) + s * p
        gx, ga = fc.grad(cost, [xs, a0])
        f = fc.function([xs, a0], [s, p, n, y1, y2, gx, ga], optimize=level)
        for steps in (4, 1, 4):
            xv, av = rng.uniform(0.5, 1.5, steps), float(rng.uniform(-1, 1))
            order = range(steps - 1, -1, -1) if reverse else range(steps)
            sv, pv, nv, y1v, y2v = av, av + 1.0, 0, np.zeros(steps), np.zeros(steps)
            for t in order:
                y1v[t], y2v[t] = sv * xv[t], nv * xv[t]
                sv, pv, nv = sv + xv[t], pv * xv[t], nv + 1
            got = f(xv, av)
            for g, w in zip(got[:5], (sv, pv, nv, y1v, y2v)):
                close(g, w)
            assert got[2].dtype == np.int64
            num = fc.numerical_grad(lambda xx: _cost(step, xx, av, reverse), [xv])
            np.testing.assert_allclose(got[5], num[0], rtol=1e-6, atol=1e-8)


def _cost(step, xv, av, reverse):
    order = range(len(xv) - 1, -1, -1) if reverse else range(len(xv))
    s, p, total = av, av + 1.0, 0.0
    for t in order:
        total += s * xv[t]
        s, p = s + xv[t], p * xv[t]
    return total + s * p


@pytest.mark.parametrize("level", LEVELS)
def test_fori_loop_with_bounds_read_at_run_time_and_captured_params(level):
    w = fc.param("w", 0.9)
    n = fc.scalar("n", "int64")
    c0 = fc.input("c0", ())
    out = fc.fori_loop(0, n, lambda i, c: c * w + fc.cast(i, "float64"), c0)
    gw = fc.grad(out, w)
    f = fc.function([n, c0], [out, gw], optimize=level)
    for steps in (5, 0, 3):
        c, dc = 2.0, 0.0
        for i in range(steps):
            c, dc = c * 0.9 + i, dc * 0.9 + c
        got = f(np.int64(steps), 2.0)
        close(got[0], c)
        close(got[1], dc)


@pytest.mark.parametrize("level", LEVELS)
def test_nested_loops_and_grad_of_grad(level):
    x = fc.input("x", ())

    def outer(c, _):
        inner, _ = fc.scan(lambda d, __: (fc.sin(d) + c, None), c * 0.5, None, length=3)
        return inner, None
    y, _ = fc.scan(outer, x, None, length=2)
    g = fc.grad(y, x)
    gg = fc.grad(g, x)
    f = fc.function([x], [y, g, gg], optimize=level)

    def ref(v):
        c = v
        for _ in range(2):
            d = c * 0.5
            for _ in range(3):
                d = np.sin(d) + c
            c = d
        return c
    for v in (0.3, -1.2, 0.3):
        got = f(v)
        close(got[0], ref(v))
        e = 1e-5
        np.testing.assert_allclose(got[1], (ref(v + e) - ref(v - e)) / (2 * e), rtol=1e-7)
        np.testing.assert_allclose(got[2], (ref(v + e) - 2 * ref(v) + ref(v - e)) / e ** 2,
                                   rtol=1e-4)


def test_a_saved_program_with_a_loop_runs_without_flowc(tmp_path):
    x = fc.input("x", (None, 3))
    W = fc.param("W", np.eye(3) * 0.3)
    final, hs = fc.scan(lambda h, xt: (fc.tanh(xt + h @ W),) * 2, fc.zeros((3,)), x)
    cost = fc.sum(hs)
    f = fc.function([x], [cost, fc.grad(cost, W)])
    f.save(str(tmp_path / "rnn"))
    g = runtime.load(str(tmp_path / "rnn"))
    xv = rng.standard_normal((4, 3))
    for _ in range(3):
        for a, b in zip(g(xv), f(xv)):
            np.testing.assert_array_equal(a, b)


def test_a_tampered_loop_body_is_refused(tmp_path):
    import json
    x = fc.input("x", (None,))
    s, _ = fc.scan(lambda c, xt: (c + xt, None), fc.constant(0.0), x)
    fc.function([x], s).save(str(tmp_path / "m"))
    path = tmp_path / "m.json"
    d = json.loads(path.read_text())
    loop = next(i for i in d["instrs"] if i["kernel"] == "loop")
    loop["attrs"]["body"]["instrs"][0]["kernel"] = "__import__"
    path.write_text(json.dumps(d))
    with pytest.raises(runtime.ProgramFileError, match="attrs.body: instrs"):
        runtime.load(str(tmp_path / "m"))


def test_bad_steps_are_errors_that_name_the_mismatch():
    x = fc.input("x", (None,))
    with pytest.raises(fc.ShapeError, match="carry 0"):
        fc.scan(lambda c, xt: (fc.cast(c, "float32"), None), fc.constant(0.0), x)
    with pytest.raises(fc.ShapeError, match="returns 1 carries, it was given 2"):
        fc.scan(lambda c, xt: ((c[0],), None), (fc.constant(0.0), fc.constant(1.0)), x)
    with pytest.raises(fc.ShapeError, match="must return \\(new_carry, y\\)"):
        fc.scan(lambda c, xt: c, fc.constant(0.0), x)
    with pytest.raises(fc.ShapeError, match="steps"):
        fc.scan(lambda c, xt: (c + xt[0] + xt[1], None), fc.constant(0.0),
                (fc.constant(np.ones(3)), fc.constant(np.ones(4))))
    n0 = len(x.graph)
    with pytest.raises(ZeroDivisionError):
        fc.scan(lambda c, xt: 1 / 0, fc.constant(0.0), x)
    assert len(x.graph) <= n0 + 1  # nothing half-built is left (the init constant at most)


def test_a_failing_step_names_the_step():
    x = fc.input("x", (None,), "int64")
    table = fc.constant(np.arange(3.0))
    s, _ = fc.scan(lambda c, i: (c + table[i], None), fc.constant(0.0), x)
    f = fc.function([x], s)
    assert f(np.array([0, 2])) == 2.0
    with pytest.raises(IndexError, match="step 1 of the loop"):
        f(np.array([0, 7, 1]))


@pytest.mark.parametrize("level", LEVELS)
def test_jvp_batching_jacobian_and_hessian_through_a_loop(level):
    x = fc.input("x", (4,))
    W = fc.param("W", rng.standard_normal((2, 2)) * 0.5)

    def run(xv):
        final, ys = fc.scan(lambda h, xt: ((fc.tanh(h @ W + xt),) * 2), fc.zeros((2,)),
                            fc.reshape(xv, (2, 2)))
        return fc.sum(ys * ys) + fc.sum(final)
    cost = run(x)
    t = fc.input("t", (4,))
    jv = fc.jvp(cost, x, t)
    J = fc.jacobian(fc.reshape(cost, (1,)) * x, x)
    H = fc.hessian(cost, x)
    f = fc.function([x, t], [cost, jv, J, H], optimize=level)
    grad_f = fc.function([x], fc.grad(cost, x), optimize="O0")  # checked against FD above
    Wv = W.get_value()

    def ref(xv):
        h, s = np.zeros(2), 0.0
        for row in xv.reshape(2, 2):
            h = np.tanh(h @ Wv + row)
            s += (h * h).sum()
        return s + h.sum()
    for _ in range(3):
        xv, tv = rng.standard_normal(4), rng.standard_normal(4)
        c, j, Jm, Hm = f(xv, tv)
        close(c, ref(xv))
        e = 1e-6
        np.testing.assert_allclose(j, (ref(xv + e * tv) - ref(xv - e * tv)) / (2 * e), rtol=1e-6)
        g = fc.numerical_grad(ref, [xv])[0]
        np.testing.assert_allclose(Jm, np.diag(np.full(4, ref(xv))) + np.outer(xv, g),
                                   rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(grad_f(xv), g, rtol=1e-6, atol=1e-8)
        e = 1e-5
        num_h = np.array([(grad_f(xv + e * np.eye(4)[i]) - grad_f(xv - e * np.eye(4)[i]))
                          / (2 * e) for i in range(4)])
        np.testing.assert_allclose(Hm, num_h, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("level", LEVELS)
def test_random_draws_in_a_step_are_new_every_step_and_every_call(level):
    s = fc.random.Stream(3)
    x = fc.input("x", (None,))
    fin, ys = fc.scan(lambda c, xt: (c + s.uniform(()), s.normal((2,)) + xt),
                      fc.constant(0.0), x)
    nested, _ = fc.scan(lambda c, xt: (fc.scan(lambda d, _: (d + s.uniform(()), None), c, None,
                                               length=3)[0], None), fc.constant(0.0), x)
    f = fc.function([x], [fin, ys, nested], optimize=level)
    calls = [f(np.zeros(50)) for _ in range(3)]
    for fin_v, ys_v, nest_v in calls:
        assert len({tuple(r) for r in ys_v}) == 50  # no two steps drew the same numbers
        assert abs(ys_v.mean()) < 0.3 and 0.7 < ys_v.std() < 1.3
        assert 15 < fin_v < 35 and 60 < nest_v < 90  # sums of 50 and 150 uniform numbers
    assert len({float(c[0]) for c in calls}) == 3  # and every call draws afresh
    s.seed(3)
    g = fc.function([x], [fin, ys, nested], optimize=level)
    again = g(np.zeros(50))
    for a, b in zip(again, calls[0]):
        np.testing.assert_array_equal(a, b)  # reproducible from the seed


@pytest.mark.parametrize("level", LEVELS)
def test_while_loop_against_the_python_loop_with_gradients(level):
    x = fc.input("x", ())
    step = lambda c: c - (c * c - x) / (2 * c)  # noqa: E731  Newton's step for sqrt(x)
    r = fc.while_loop(lambda c: fc.abs(c * c - x) > 1e-12, step, x, max_steps=60)
    g = fc.grad(r, x)
    jv = fc.jvp(r, x, fc.constant(1.0))
    n = fc.while_loop(lambda c: c < 100.0, lambda c: c * 2.0, x)  # unbounded
    f = fc.function([x], [r, g, jv, n], optimize=level)
    for v in (2.0, 9.0, 0.5):
        c = v
        while abs(c * c - v) > 1e-12:
            c = c - (c * c - v) / (2 * c)
        m = v
        while m < 100.0:
            m *= 2.0
        got = f(v)
        close(got[0], c)
        np.testing.assert_allclose(got[1], 0.5 / np.sqrt(v), rtol=1e-10)
        np.testing.assert_allclose(got[2], 0.5 / np.sqrt(v), rtol=1e-10)
        close(got[3], m)
    with pytest.raises(fc.GradError, match="max_steps"):
        fc.grad(n, x)
    assert fc.function([x], n, optimize=level)(500.0) == 500.0  # no step at all


def test_theano_scan_until_and_shared_updates():
    import flowc.theano as theano
    import flowc.theano.tensor as T
    top = T.scalar()
    values, _ = theano.scan(lambda p, m: (p * 2, theano.scan_module.until(p * 2 > m)),
                            outputs_info=T.constant(1.0), non_sequences=top, n_steps=1024)
    assert theano.function([top], values)(45).tolist() == [2, 4, 8, 16, 32, 64]
    k = theano.shared(0)
    n = T.iscalar("n")
    _, updates = theano.scan(lambda: {k: k + 1}, n_steps=n)
    count = theano.function([n], [], updates=updates)
    count(5)
    assert int(k.get_value()) == 5
    xs = T.vector("xs")
    out, _ = theano.scan(lambda a, b: a + b, outputs_info=dict(initial=xs, taps=[-2, -1]),
                         n_steps=5)
    assert theano.function([xs], out)(np.array([1.0, 1.0])).tolist() == [2, 3, 5, 8, 13]


@pytest.mark.parametrize("level", LEVELS)
def test_cond_runs_only_the_branch_taken_in_every_mode(level):
    x = fc.input("x", (3,))
    p = fc.input("p", (), "bool")
    W = fc.param("W", rng.standard_normal((3, 3)))
    y = fc.cond(p, lambda a: fc.sin(a) @ W, lambda a: a * a, x)
    gx, gW = fc.grad(fc.sum(y), [x, W])
    jv = fc.jvp(y, x, fc.constant(np.ones(3)))
    J = fc.jacobian(y, x)
    f = fc.function([x, p], [y, gx, gW, jv, J], optimize=level)
    Wv = W.get_value()
    for pv in (True, False, True):
        xv = rng.standard_normal(3)
        got = f(xv, pv)
        if pv:
            close(got[0], np.sin(xv) @ Wv)
            close(got[1], np.cos(xv) * Wv.sum(1))
            close(got[2], np.outer(np.sin(xv), np.ones(3)))
            close(got[4], (np.cos(xv)[:, None] * Wv).T)
        else:
            close(got[0], xv * xv)
            close(got[1], 2 * xv)
            close(got[2], np.zeros((3, 3)))
            close(got[4], np.diag(2 * xv))
        close(got[3], got[4].sum(1))
    i = fc.scalar("i", "int64")
    table = fc.constant(np.arange(3.0))
    z = fc.cond(i < 3, lambda k: table[k], lambda k: fc.constant(-1.0), i)
    h = fc.function([i], z, optimize=level)
    assert h(np.int64(2)) == 2.0 and h(np.int64(7)) == -1.0  # the index is never read
    pb, xb = fc.input("pb", (2,), "bool"), fc.input("xb", (2, 3))
    yb = fc.function([pb, xb], fc.batch(y, {p: pb, x: xb}), optimize=level)
    xv = rng.standard_normal(3)
    close(yb(np.array([True, False]), np.stack([xv, xv])), np.stack([np.sin(xv) @ Wv, xv * xv]))
    with pytest.raises(fc.ShapeError, match="different types"):
        fc.cond(p, lambda a: a, lambda a: a[:2], x)


def test_theano_ifelse_is_lazy_and_differentiable():
    import flowc.theano as theano
    import flowc.theano.tensor as T
    from flowc.theano.ifelse import ifelse
    a, b = T.scalars("a", "b")
    x, y = T.matrices("x", "y")
    z = ifelse(T.lt(a, b), T.mean(x), T.mean(y))
    f = theano.function([a, b, x, y], z, mode=theano.Mode(linker="vm"))
    assert f(0.0, 1.0, np.ones((4, 4)), np.full((4, 4), 2.0)) == 1.0
    assert f(1.0, 0.0, np.ones((4, 4)), np.full((4, 4), 2.0)) == 2.0
    assert {i.kernel for i in f.program.instrs} >= {"cond"}
    assert "mean" not in {i.kernel for i in f.program.instrs}  # inside the branches
    g = theano.function([a, b, x, y], T.grad(z, x))
    assert np.allclose(g(0.0, 1.0, np.ones((2, 2)), np.ones((2, 2))), 0.25)


@pytest.mark.parametrize("save", ["carries", "products", "residuals"])
@pytest.mark.parametrize("level", LEVELS)
def test_both_memory_policies_give_the_same_gradients(save, level):
    x = fc.input("x", (None, 2, 3))
    W = fc.param("W", rng.standard_normal((3, 3)) * 0.5)
    U = fc.param("U", rng.standard_normal((3, 3)) * 0.5)
    h, hs = fc.scan(lambda h, xt: (fc.tanh(xt @ W + fc.sin(h) @ U),) * 2, fc.zeros((2, 3)), x,
                    save=save)
    cost = fc.sum(hs * hs) + fc.sum(h)
    f = fc.function([x], [cost] + fc.grad(cost, [W, U, x]), optimize=level)
    n_loops = sum(i.kernel == "loop" for i in f.program.instrs)
    assert n_loops == (3 if level == "O0" else 2)  # O1 merges the saving loop with the forward
    Wv, Uv = W.get_value(), U.get_value()

    def ref(xv, Wv_, Uv_):
        hv, total = np.zeros((2, 3)), 0.0
        for t in range(len(xv)):
            hv = np.tanh(xv[t] @ Wv_ + np.sin(hv) @ Uv_)
            total += (hv * hv).sum()
        return total + hv.sum()
    for steps in (4, 2, 4):
        xv = rng.standard_normal((steps, 2, 3))
        got = f(xv)
        close(got[0], ref(xv, Wv, Uv))
        num = fc.numerical_grad(lambda a, b, c: ref(c, a, b), [Wv, Uv, xv])
        for g, n in zip(got[1:], num):
            np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8)
    with pytest.raises(fc.ShapeError, match="save must be"):
        fc.scan(lambda c, xt: (c, None), fc.constant(0.0), x, save="everything")


@pytest.mark.parametrize("level", LEVELS)
def test_a_cond_inside_a_loop_and_a_loop_inside_a_cond(level):
    x = fc.input("x", (None,))
    a = fc.input("a", ())

    def step(c, xt):  # a cond in a loop body: halve when positive, square otherwise
        return fc.cond(xt > 0, lambda u, v: u * 0.5 + v, lambda u, v: u * u - v, c, xt), None
    s, _ = fc.scan(step, a, x)
    t = fc.cond(a > 0, lambda u: fc.fori_loop(0, 3, lambda i, c: fc.sin(c) + u, u),
                lambda u: u * 3.0, a)  # a loop in a cond branch
    f = fc.function([x, a], [s, t] + fc.grad(s + t, [a, x]), optimize=level)

    def ref(xv, av):
        c = av
        for v in xv:
            c = c * 0.5 + v if v > 0 else c * c - v
        if av > 0:
            d = av
            for _ in range(3):
                d = np.sin(d) + av
        else:
            d = av * 3.0
        return c, d
    for av in (0.7, -0.4, 0.7):
        xv = rng.standard_normal(5)
        got = f(xv, av)
        close(got[0], ref(xv, av)[0])
        close(got[1], ref(xv, av)[1])
        ga, gx = fc.numerical_grad(lambda p, q: sum(ref(q, float(p))), [np.array(av), xv])
        np.testing.assert_allclose(got[2], ga, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(got[3], gx, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("level", LEVELS)
def test_truncated_backpropagation_through_time(level):
    x = fc.input("x", (None,))
    w, u = fc.param("w", 0.7), fc.param("u", 0.9)
    h, hs = fc.scan(lambda h, xt: (fc.tanh(xt * w + h * u),) * 2, fc.constant(0.1), x,
                    truncate=3)
    cost = fc.sum(hs * hs)
    f = fc.function([x], fc.grad(cost, [w, u, x]), optimize=level)

    def ref(xv, k=3):  # BPTT by hand, the backward pass stopped after k steps
        hv, hs_ = 0.1, [0.1]
        for t in range(len(xv)):
            hv = np.tanh(xv[t] * 0.7 + hv * 0.9)
            hs_.append(hv)
        gw = gu = 0.0
        gx = np.zeros(len(xv))
        dh = 0.0
        for t in range(len(xv) - 1, max(len(xv) - k, 0) - 1, -1):
            dh = dh + 2 * hs_[t + 1]
            da = dh * (1 - hs_[t + 1] ** 2)
            gw += da * xv[t]
            gu += da * hs_[t]
            gx[t] = da * 0.7
            dh = da * 0.9
        return gw, gu, gx
    for steps in (6, 2, 6):
        xv = rng.standard_normal(steps)
        for g, r in zip(f(xv), ref(xv)):
            close(g, r)


def test_theano_scan_refuses_a_sequence_shorter_than_its_taps():
    import flowc.theano as theano
    short = fc.constant(np.ones(2))
    with pytest.raises(ValueError, match="taps \\[-2, 0\\] need at least 3"):
        theano.scan(lambda a, b: a + b, sequences=dict(input=short, taps=[-2, 0]))
    # A length known at run time only: the call fails, naming the sequence and its taps.
    x = fc.input("x", (None,))
    ys, _ = theano.scan(lambda a, b: a + b, sequences=dict(input=x, taps=[-2, 0]))
    f = fc.function([x], ys)
    close(f(np.arange(5.0)), [2.0, 4.0, 6.0])
    with pytest.raises(ValueError, match=r"length of sequence 0 \(its taps \[-2, 0\] need at least 3"):
        f(np.arange(2.0))
    close(f(np.arange(3.0)), [2.0])


@pytest.mark.parametrize("level", LEVELS)
def test_checkpointing_every_k_steps_gives_the_same_values_and_gradients(level):
    x = fc.input("x", (12, 3))
    W = fc.param("W", rng.standard_normal((3, 3)) * 0.5)
    results = []
    for save in ("carries", ("every", 4), ("every", 3)):
        h, hs = fc.scan(lambda h, xt: (fc.tanh(xt + h @ W),) * 2, fc.zeros((3,)), x, save=save)
        cost = fc.sum(hs ** 2) + fc.sum(h)
        results.append(fc.function([x], [cost, hs] + fc.grad(cost, [W, x]), optimize=level))
    for _ in range(3):
        xv = rng.standard_normal((12, 3))
        base = results[0](xv)
        for f in results[1:]:
            for a, b in zip(f(xv), base):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(fc.ShapeError, match="multiple of 5"):
        fc.scan(lambda h, xt: (h + xt, None), fc.zeros((3,)), x, save=("every", 5))


@pytest.mark.parametrize("level", ("O1", "O2"))
def test_a_stack_of_which_only_the_last_row_is_read_is_not_made(level):
    x = fc.input("x", (5, 3))
    W = fc.param("W", rng.standard_normal((3, 3)) * 0.5)
    h, hs = fc.scan(lambda h, xt: (fc.tanh(xt + h @ W),) * 2, fc.zeros((3,)), x)
    f = fc.function([x], hs[-1] * 2.0, optimize=level)
    loop = next(i for i in f.program.instrs if i.kernel == "loop")
    assert len(loop.attrs["body"]["outputs"]) == 1  # the carry only: no stack of hs
    g = fc.function([x], hs[-1] * 2.0, optimize="O0")
    for _ in range(3):
        xv = rng.standard_normal((5, 3))
        close(f(xv), g(xv))
    # With the gradient too: hs[-1]'s gradient reads the stack for its shape alone, so no
    # loop stacks hs as a per-step output (the backward's saved carries are its own).
    outs = [hs[-1] * 2.0] + fc.grad(fc.sum(hs[-1] ** 2), [W, x])
    f = fc.function([x], outs, optimize=level)
    g = fc.function([x], outs, optimize="O0")
    fwd = [i for i in f.program.instrs if i.kernel == "loop" and not i.attrs.get("reverse")]
    assert fwd and all(len(i.attrs["body"]["outputs"]) - i.attrs["n_carry"] <= 1 for i in fwd)
    for _ in range(3):
        xv = rng.standard_normal((5, 3))
        for a, b in zip(f(xv), g(xv)):
            close(a, b)


def test_theano_scan_strict_refuses_a_shared_variable_not_passed_in():
    import flowc.theano as theano
    import flowc.theano.tensor as T
    W = theano.shared(np.eye(2) * 3.0, name="W")
    m = T.dmatrix("m")
    with pytest.raises(fc.MissingInputError, match="not among non_sequences.*W"):
        theano.scan(lambda x: T.dot(x, W), sequences=[m], strict=True)
    out, _ = theano.scan(lambda x, w: T.dot(x, w), sequences=[m], non_sequences=[W],
                         strict=True)
    loose, _ = theano.scan(lambda x: T.dot(x, W), sequences=[m])  # strict=False: read freely
    f = theano.function([m], [out, loose])
    a, b = f(np.ones((3, 2)))
    assert np.array_equal(a, np.full((3, 2), 3.0)) and np.array_equal(a, b)


@pytest.mark.parametrize("level", LEVELS)
def test_batching_a_while_loop_runs_each_entry_to_its_own_end(level):
    x = fc.input("x", ())
    r = fc.while_loop(lambda c: c < 100.0, lambda c: c * 2.0, x)
    xb = fc.input("xb", (4,))
    f = fc.function([xb], fc.batch(r, {x: xb}), optimize=level)
    for xs in ([3.0, 50.0, 200.0, 1.0], [0.5, 99.0, 100.0, 7.0]):
        want = []
        for v in xs:
            while v < 100.0:
                v *= 2.0
            want.append(v)
        close(f(np.array(xs)), want)
    v = fc.input("v", (3,))
    s = fc.while_loop(lambda c: fc.max(fc.abs(c * c - v)) > 1e-12,
                      lambda c: c - (c * c - v) / (2 * c), v, max_steps=50)
    J = fc.function([v], fc.jacobian(s, v), optimize=level)
    np.testing.assert_allclose(J(np.array([2.0, 9.0, 4.0])),
                               np.diag(0.5 / np.sqrt([2.0, 9.0, 4.0])), rtol=1e-9)


def test_pictures_and_debugprint_name_a_body_without_printing_it():
    x = fc.input("x", (None,))
    s, _ = fc.scan(lambda c, xt: (c + fc.sin(xt), None), fc.constant(0.0), x)
    y = fc.cond(s > 0, lambda a: a * 2.0, lambda a: a - 1.0, s)
    dot = fc.to_dot([y])
    assert "body=2 ops" in dot and "branches=1 ops/1 ops" in dot
    assert "'float64'" not in dot  # the frozen tuples stay out of the labels
    text = fc.debugprint(y, file="str")
    assert "branch 0:" in text and "body:" in text and "sin [id" in text
