"""The loop fast paths against the plain computation: sequence work hoisted out of a scan
(flowc/ops/loop_hoist.py), the backward loop reading the saved next carry instead of
recomputing the step (flowc/autodiff/loops.py), weight-gradient sums moved after the loop
(accumulate_after) and unread loop inputs dropped (dead_inputs). Each compiled scan is
checked against the same step unrolled in Python and compiled at O0, on calls 1-4 with
several lengths (0 steps included), to 1e-12 in float64."""
import numpy as np
import pytest

import flowc as fc

B, I, H = 3, 2, 4
rng = np.random.default_rng(5)
VALUES = {"W": rng.standard_normal((I, H)) * 0.5, "U": rng.standard_normal((H, H)) * 0.5,
          "b": rng.standard_normal(H) * 0.1, "V": rng.standard_normal((H, 2)) * 0.5}


def rnn(h, xt, p):
    h = fc.tanh(xt @ p["W"] + h @ p["U"] + p["b"])
    return h, h @ p["V"]


def lstm_like(c, xt, p):  # two carries, the cell state not squashed, a y of both
    h, s = c
    z = xt @ p["W"] + p["b"] + h @ p["U"]
    s = fc.sigmoid(z) * s + fc.tanh(z)
    h = fc.tanh(s) * fc.sigmoid(xt @ p["W"])
    return (h, s), fc.sum(h * s, axis=1)


def plain_sum(h, xt, p):  # a carry summing a term of no moved kind (an outer product)
    return h + fc.exp(xt @ p["W"]) * 0.1, fc.sum(h, axis=0)


STEPS = {"rnn": rnn, "lstm_like": lstm_like, "plain_sum": plain_sum}
YSHAPE = {"rnn": (B, 2), "lstm_like": (B,), "plain_sum": (H,)}


def build(step_name, steps, reverse, save, level, truncate=-1):
    """(function of x and h0 giving the outputs and every gradient) for a scan (steps None)
    or the same step unrolled over `steps` steps."""
    step = STEPS[step_name]
    with fc.Graph():
        x = fc.input("x", (steps, B, I))
        h0 = fc.input("h0", (B, H))
        p = {k: fc.param(k, v.copy()) for k, v in VALUES.items()}
        init = (h0, h0 * 0.5) if step_name == "lstm_like" else h0
        if steps is None:
            final, ys = fc.scan(lambda c, xt: step(c, xt, p), init, x, reverse=reverse,
                                save=save, truncate=truncate)
        else:
            c, rows = init, []
            order = range(steps - 1, -1, -1) if reverse else range(steps)
            for t in order:
                c, y = step(c, x[t], p)
                rows.append(y)
            if reverse:
                rows = rows[::-1]
            final = c
            ys = fc.stack(rows, 0) if rows else fc.zeros((0,) + YSHAPE[step_name])
        last = final[0] if isinstance(final, tuple) else final
        cost = fc.sum(last ** 2) + fc.sum(fc.sin(ys))
        wrt = [p[k] for k in sorted(p)] + [x, h0]
        grads = fc.grad(cost, wrt)
        return fc.function([x, h0], [last, ys, cost] + grads, optimize=level)


@pytest.mark.parametrize("step_name", sorted(STEPS))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("save", ["carries", "products", "residuals"])
def test_scan_fast_paths_match_the_unrolled_step(step_name, reverse, save):
    fast = {lv: build(step_name, None, reverse, save, lv) for lv in ("O1", "O2")}
    for call, steps in enumerate((4, 1, 0, 4)):
        xv = rng.standard_normal((steps, B, I))
        hv = rng.standard_normal((B, H))
        ref = build(step_name, steps, reverse, save, "O0")(xv, hv)
        for lv, f in fast.items():
            got = f(xv, hv)
            for k, (g, r) in enumerate(zip(got, ref)):
                np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12,
                                           err_msg=f"{lv}, call {call + 1}, output {k}")


def test_truncated_scan_with_hoisting_matches_the_unhoisted_gradient():
    """truncate=k with the input projection hoisted: the gradient flows through the last
    k steps only, exactly as for the same step whose product cannot be hoisted."""
    def unhoisted(h, xt, p):  # the product reads the carry (times 0), so it stays inside
        return rnn(h, xt + h[:, :I] * 0, p)
    STEPS["unhoisted"], YSHAPE["unhoisted"] = unhoisted, YSHAPE["rnn"]
    try:
        for steps in (5, 2, 5):
            xv, hv = rng.standard_normal((steps, B, I)), rng.standard_normal((B, H))
            a = build("rnn", None, False, "carries", "O2", truncate=2)(xv, hv)
            b = build("unhoisted", None, False, "carries", "O0", truncate=2)(xv, hv)
            for k, (g, r) in enumerate(zip(a, b)):
                np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12, err_msg=f"output {k}")
    finally:
        del STEPS["unhoisted"], YSHAPE["unhoisted"]


def test_the_rnn_step_compiles_to_one_gemm_per_step_and_sums_after_the_loop():
    """What the passes promise, read off the compiled graph: the input projection is one
    product before the loop, the backward body recomputes nothing (no tanh in it), and
    the weight gradients dU, db are products and sums after the backward loop."""
    f = build("rnn", None, False, "carries", "O2")
    G = f.graph
    fired = {r[0] for r in G.graph["log"]}
    assert {"accumulate_after", "dead_inputs"} <= fired, fired
    loops = [d for _, d in G.nodes(data=True) if d["op"] == "loop"]
    back = [d for d in loops if d["attrs"]["reverse"]]
    fwd = [d for d in loops if not d["attrs"]["reverse"]]
    assert len(back) == 1 and len(fwd) == 1
    ops = [n[0] for n in back[0]["attrs"]["body"][1]]
    assert "tanh" not in ops, ops
    assert back[0]["attrs"]["n_carry"] == 1, ops  # only dh: dU, dV and db moved out
    # x_t @ W is one product before the loop: the forward step's only slice is its row
    a = fwd[0]["attrs"]
    assert a["n_seq"] == 1 and a["body"][0][0] == ("float64", (B, H)), a["body"][0]


def test_a_step_whose_sequence_work_cannot_be_batched_keeps_it():
    """Theano's loop tutorial: a Jacobian row per step, T.grad(y[i], v) with i the slice.
    The step reads no carry and holds a product, but take_grad has no batching rule over
    its indices: the hoisting leaves the step as it was, and the rows are right."""
    import flowc.theano as theano
    import flowc.theano.tensor as T
    v, A = T.vector(), T.matrix()
    y = T.tanh(T.dot(v, A))
    rows, _ = theano.scan(lambda i: T.grad(y[i], v), sequences=[T.arange(y.shape[0])])
    f = theano.function([A, v], rows)
    for _ in range(3):
        Av, vv = rng.standard_normal((4, 3)), rng.standard_normal(4)
        want = (1 - np.tanh(vv @ Av) ** 2)[:, None] * Av.T
        np.testing.assert_allclose(f(Av, vv), want, rtol=1e-12, atol=1e-12)
