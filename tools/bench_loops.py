"""Loops, measured against baselines in the same run (ratios, best of the repeats):

1. per-step overhead: a scalar recurrence of 10^5 steps (fc.fori_loop) against the same
   loop by hand with NumPy ufuncs on 0-d arrays and with Python floats;
2. an RNN training step (T=28, B=64, I=28, H=128, float32: h = tanh(x_t W + h U + b), loss
   on the last h, SGD on W, U, V) with fc.scan against hand-written NumPy BPTT with the
   same hoisting, and against the same model unrolled in Python into one flowc graph;
3. an LSTM training step (same sizes; the cell of flowc/nn/recurrent.py, loss
   mean((h_T V - y)^2), SGD on W, U, b, V) with fc.scan against hand-written NumPy BPTT with
   the same hoisting (x_t W for all steps as one GEMM before the loop, dW as one after, dU
   summed per step), checked first to give the same loss, gradients and parameters, against
   the unrolled graph, and torch.nn.LSTM on the CPU beside when torch is installed;
4. compile time against the number of steps: the scan compiles one body whatever T is;
5. peak memory (tracemalloc) of a scan's forward and backward call under each save policy,
   against the bytes the policy's rules promise.

    python tools/bench_loops.py [--repeats 5] [--quick] [--only scalar|rnn|lstm|compile|memory]
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import flowc as fc  # noqa: E402

T, B, I, H = 28, 64, 28, 128


def best_interleaved(fns, repeats):
    """The best wall time of each of fns, timed round-robin (after one warm call each):
    timed one after the other, whichever ran second looked up to 15 % faster."""
    for fn in fns:
        fn()
    out = [float("inf")] * len(fns)
    for r in range(repeats):
        order = range(len(fns)) if r % 2 else reversed(range(len(fns)))
        for k in order:
            t = time.perf_counter()
            fns[k]()
            out[k] = min(out[k], time.perf_counter() - t)
    return out


def best(fn, repeats):
    """The best wall time of `repeats` calls of fn (after one warm call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def scalar_recurrence(steps, repeats):
    with fc.Graph():
        x, n = fc.input("x", ()), fc.scalar("n", "int64")
        f = fc.function([x, n], fc.fori_loop(0, n, lambda i, c: c * 0.999 + 0.5, x))
        a, k = np.float64(1.0), np.int64(steps)
        t_flowc = best(lambda: f(a, k), repeats)

    def ufuncs():
        c = np.array(1.0)
        for _ in range(steps):
            c = np.add(np.multiply(c, 0.999), 0.5)
        return c

    def floats():
        c = 1.0
        for _ in range(steps):
            c = c * 0.999 + 0.5
        return c
    return t_flowc, best(ufuncs, repeats), best(floats, repeats)


def rnn_params(rng):
    return [(rng.standard_normal(s) * 0.1).astype(np.float32)
            for s in ((I, H), (H, H), (H,), (H, 1))]


def rnn_step_flowc(values, unrolled, save="carries"):
    """A compiled SGD step of the RNN (scan, or unrolled in Python)."""
    x, y = fc.input("x", (T, B, I), "float32"), fc.input("y", (B, 1), "float32")
    W, U, b, V = [fc.param(n, v.copy()) for n, v in zip("WUbV", values)]
    h0 = fc.zeros((B, H), "float32")
    if unrolled:
        h = h0
        for t in range(T):
            h = fc.tanh(x[t] @ W + h @ U + b)
    else:
        h, _ = fc.scan(lambda h, xt: (fc.tanh(xt @ W + h @ U + b), None), h0, x, save=save)
    loss = fc.mean((h @ V - y) ** 2)
    grads = fc.grad(loss, [W, U, b, V])
    return fc.function([x, y], loss, updates=[(p, p - 0.01 * g)
                                              for p, g in zip((W, U, b, V), grads)])


def rnn_step_numpy(values):
    """The same SGD step by hand: forward keeping every h, backward through time, with
    the input projection x_t W done as one GEMM for all steps and dW as one after."""
    W, U, b, V = [v.copy() for v in values]

    def step(x, y):
        nonlocal W, U, b, V
        xw = (x.reshape(T * B, I) @ W).reshape(T, B, H) + b
        hs = np.empty((T + 1, B, H), np.float32)
        hs[0] = 0
        for t in range(T):
            hs[t + 1] = np.tanh(xw[t] + hs[t] @ U)
        out = hs[T] @ V - y
        loss = np.mean(out ** 2)
        g_out = (2.0 / out.size) * out
        dV = hs[T].T @ g_out
        dh = g_out @ V.T
        dU = np.zeros_like(U)
        da = np.empty((T, B, H), np.float32)
        for t in range(T - 1, -1, -1):
            da[t] = dh * (1 - hs[t + 1] ** 2)
            dU += hs[t].T @ da[t]
            dh = da[t] @ U.T
        dW = x.reshape(T * B, I).T @ da.reshape(T * B, H)
        db = da.sum(axis=(0, 1))
        W, U, b, V = W - 0.01 * dW, U - 0.01 * dU, b - 0.01 * db, V - 0.01 * dV
        return loss
    return step


def compile_time(steps):
    """Seconds to build, differentiate and compile a scan of `steps` steps (no call)."""
    with fc.Graph():
        x = fc.input("x", (steps, 4, 8))
        W = fc.param("W", np.zeros((8, 8)))
        t = time.perf_counter()
        h, _ = fc.scan(lambda h, xt: (fc.tanh(xt @ W + h), None), fc.zeros((4, 8)), x)
        fc.function([x], [h, fc.grad(fc.sum(h), W)])
        return time.perf_counter() - t


# -- LSTM training step -------------------------------------------------------------------------

def lstm_params(rng, dims, dtype=np.float32):
    """W (I, 4H), U (H, 4H), b (4H,), V (H, 1): gates i, f, g, o side by side, as
    flowc/nn/recurrent.py lays them out."""
    _, _, n_in, h = dims
    return [(rng.standard_normal(s) * 0.1).astype(dtype)
            for s in ((n_in, 4 * h), (h, 4 * h), (4 * h,), (h, 1))]


def lstm_cell(W, U, b, h_units):
    """The step of flowc/nn/recurrent.py's LSTM with the input product inside (the scan
    hoists x_t @ W for all steps): ((h, c), x_t) -> ((h', c'), None)."""
    def step(carry, xt):
        h, c = carry
        z = xt @ W + h @ U + b
        i, f, g, o = (z[:, k * h_units:(k + 1) * h_units] for k in range(4))
        c = fc.sigmoid(f) * c + fc.sigmoid(i) * fc.tanh(g)
        return (fc.sigmoid(o) * fc.tanh(c), c), None
    return step


def lstm_step_flowc(values, dims, unrolled=False, save="products", grads_out=False, lr=0.01):
    """(a compiled SGD step of the LSTM, its params W, U, b, V): the loss on the last h
    (mean((h_T V - y)^2)), with fc.scan or unrolled in Python; grads_out=True also
    returns the gradients (to check the hand BPTT against)."""
    T_, B_, I_, H_ = dims
    dtype = values[0].dtype.name
    x, y = fc.input("x", (T_, B_, I_), dtype), fc.input("y", (B_, 1), dtype)
    params = [fc.param(n, v.copy()) for n, v in zip("WUbV", values)]
    W, U, b, V = params
    step = lstm_cell(W, U, b, H_)
    carry = (fc.zeros((B_, H_), dtype), fc.zeros((B_, H_), dtype))
    if unrolled:
        for t in range(T_):
            carry, _ = step(carry, x[t])
    else:
        carry, _ = fc.scan(step, carry, x, save=save)
    loss = fc.mean((carry[0] @ V - y) ** 2)
    grads = fc.grad(loss, params)
    f = fc.function([x, y], [loss] + grads if grads_out else loss,
                    updates=[(p, p - lr * g) for p, g in zip(params, grads)])
    return f, params


def _sigmoid(z):
    """1 / (1 + e^-z)."""
    return 1.0 / (1.0 + np.exp(-z))


def lstm_grads_numpy(params, x, y):
    """(loss, [dW, dU, db, dV]) of the LSTM by hand: the input projection x_t W + b for all
    steps as one GEMM before the loop, forward keeping every h, c and gate activation,
    backward through time accumulating dU per step, dW as one GEMM after the loop."""
    W, U, b, V = params
    steps, batch, n_in = x.shape
    h_units = U.shape[0]
    xw = (x.reshape(steps * batch, n_in) @ W).reshape(steps, batch, 4 * h_units) + b
    hs = np.zeros((steps + 1, batch, h_units), x.dtype)
    cs = np.zeros_like(hs)
    acts = np.empty((steps, batch, 4 * h_units), x.dtype)  # sigmoid i, f; tanh g; sigmoid o
    tcs = np.empty((steps, batch, h_units), x.dtype)         # tanh(c_{t+1})
    s1, s2, s3 = h_units, 2 * h_units, 3 * h_units
    for t in range(steps):
        z, a = xw[t] + hs[t] @ U, acts[t]
        a[:, :s2], a[:, s2:s3], a[:, s3:] = _sigmoid(z[:, :s2]), np.tanh(z[:, s2:s3]), \
            _sigmoid(z[:, s3:])
        cs[t + 1] = a[:, s1:s2] * cs[t] + a[:, :s1] * a[:, s2:s3]
        tcs[t] = np.tanh(cs[t + 1])
        hs[t + 1] = a[:, s3:] * tcs[t]
    out = hs[steps] @ V - y
    loss = np.mean(out ** 2)
    g_out = (2.0 / out.size) * out
    dV = hs[steps].T @ g_out
    dh, dc = g_out @ V.T, np.zeros_like(hs[0])
    dz, dU = np.empty_like(acts), np.zeros_like(U)
    for t in range(steps - 1, -1, -1):
        i, f, g, o = acts[t, :, :s1], acts[t, :, s1:s2], acts[t, :, s2:s3], acts[t, :, s3:]
        dc = dc + dh * o * (1 - tcs[t] ** 2)
        d = dz[t]
        d[:, :s1] = dc * g * i * (1 - i)
        d[:, s1:s2] = dc * cs[t] * f * (1 - f)
        d[:, s2:s3] = dc * i * (1 - g ** 2)
        d[:, s3:] = dh * tcs[t] * o * (1 - o)
        dU += hs[t].T @ d
        dh, dc = d @ U.T, dc * f
    dW = x.reshape(steps * batch, n_in).T @ dz.reshape(steps * batch, 4 * h_units)
    return loss, [dW, dU, dz.sum(axis=(0, 1)), dV]


def lstm_step_numpy(values, lr=0.01):
    """The hand SGD step: lstm_grads_numpy, then p - lr * g for W, U, b, V (kept here)."""
    params = [v.copy() for v in values]

    def step(x, y):
        loss, grads = lstm_grads_numpy(params, x, y)
        params[:] = [p - lr * g for p, g in zip(params, grads)]
        return loss
    step.params = params
    return step


def check_lstm_numpy(values, x, y, rtol):
    """Assert that the hand BPTT's loss, gradients and updated params match flowc's (scan and
    unrolled) to rtol (relative to each array's largest entry); returns the worst error."""
    loss, grads = lstm_grads_numpy([v.copy() for v in values], x, y)
    hand = lstm_step_numpy(values)
    hand(x, y)
    worst = 0.0
    for unrolled in (False, True):
        with fc.Graph():
            f, params = lstm_step_flowc(values, x.shape + (values[1].shape[0],), unrolled,
                                        grads_out=True)
            got = f(x, y)
            pairs = list(zip(got, [loss] + grads))
            pairs += [(p.get_value(), q) for p, q in zip(params, hand.params)]
        for name, (a, b) in zip(["loss", "dW", "dU", "db", "dV", "W", "U", "b", "V"], pairs):
            err = float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-30))
            worst = max(worst, err)
            if not err <= rtol:
                raise AssertionError(f"hand LSTM BPTT {name} differs from flowc "
                                     f"({'unrolled' if unrolled else 'scan'}) by {err:.2e} "
                                     f"relative (tolerance {rtol:g})")
    return worst


def torch_lstm_step(values, x, y, lr=0.01):
    """The same SGD step with torch.nn.LSTM on the CPU (its weights copied in), or None when
    torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    W, U, b, V = values
    lstm = torch.nn.LSTM(W.shape[0], U.shape[0])  # torch's gate order is i, f, g, o too
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(W.T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(U.T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(b))
        lstm.bias_hh_l0.zero_()
    Vt = torch.nn.Parameter(torch.from_numpy(V.copy()))
    opt = torch.optim.SGD(list(lstm.parameters()) + [Vt], lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        _, (h, _) = lstm(xt)
        loss = torch.mean((h[0] @ Vt - yt) ** 2)
        loss.backward()
        opt.step()
        return loss
    return step


# -- peak memory per save policy ----------------------------------------------------------------
# The model: h = tanh(x_t + h U) over x (T, B, 1), the carry h (B, H) float64, and the gradient
# of sum(h_T) with respect to x and h0 only (no weight gradient). Its memory is the loop's:
# with x_t @ W instead, the hoisted x W and its cotangent are (T, B, H) stacks under every
# policy (and ("every", k) keeps x W for the recompute), which hides what the policies save.
# Sizes: C = B H 8 bytes (one carry), S = T C (one carry per step), X = T B 8 (x or dx),
# Uw = H H 8 (U, the unrequested dU). Measured peaks count from before the first call, so
# what the function keeps between calls (its memory plan's arena) counts.

def memory_model(dims, save):
    """(compiled x, h0 -> [dx, dh0] of the loop-dominated model above, its inputs)."""
    steps, batch, h_units = dims
    rng = np.random.default_rng(5)
    x, h0 = fc.input("x", (steps, batch, 1)), fc.input("h0", (batch, h_units))
    U = fc.param("U", rng.standard_normal((h_units, h_units)) / (2 * np.sqrt(h_units)))
    h, _ = fc.scan(lambda h, xt: (fc.tanh(xt + h @ U), None), h0, x, save=save)
    f = fc.function([x, h0], fc.grad(fc.sum(h), [x, h0]))
    return f, (rng.standard_normal((steps, batch, 1)), rng.standard_normal((batch, h_units)))


def peak_bytes(f, args, calls=3):
    """Per call of f(*args), the most bytes tracemalloc saw traced (NumPy reports its data
    to it), counted from just before the first call."""
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base, peaks = tracemalloc.get_traced_memory()[0], []
        for _ in range(calls):
            tracemalloc.reset_peak()
            out = f(*args)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
            del out
        return peaks
    finally:
        if started:
            tracemalloc.stop()


def _sizes(dims):
    """(T, C, S, X, Uw) of the memory model in bytes (see above)."""
    steps, batch, h_units = dims
    C = batch * h_units * 8
    return steps, C, steps * C, steps * batch * 8, h_units * h_units * 8


def design_bytes(save, dims):
    """The peak the policy's rules promise, each value freed after its last reader and only
    the memory plan kept between calls:
    carries (= products here: the vjp of tanh reads its output, the next carry): the forward
    loop stacks the carry each step starts from (S) and the backward reads the next carries,
    that stack concatenated with the final carry (S + C), a copy: both live at the concat;
    residuals: the forward stacks what the vjp of the requested cotangents reads, 1 - h'^2
    per step (S), alive with the backward's dx rows (X), a step's values and the carries;
    ("every", k): one checkpoint per chunk (S / k) and one chunk recomputed at a time: its
    k start carries and their concatenation with its last (2k + 2 carries), dx rows, carries."""
    steps, C, S, X, _ = _sizes(dims)
    if save in ("carries", "products"):
        return 2 * S + 2 * C
    if save == "residuals":
        return S + X + 4 * C
    k = save[1]
    return S // k + (2 * k + 4) * C + X


def memory_policies(dims):
    """[(policy, [peak bytes of calls 1-3], design bytes)] of the model."""
    steps = dims[0]
    root = int(round(steps ** 0.5))
    rows = []
    for save in ("carries", "products", "residuals", ("every", 4), ("every", root)):
        with fc.Graph():
            f, args = memory_model(dims, save)
            rows.append((save, peak_bytes(f, args), design_bytes(save, dims)))
    return rows


def run_scalar(reps, quick):
    """Section 1: per-step overhead."""
    steps = 10 ** 4 if quick else 10 ** 5
    fl, uf, py = scalar_recurrence(steps, reps)
    print(f"scalar recurrence, {steps} steps: flowc {fl:.3f} s ({fl / steps * 1e6:.2f} us/step); "
          f"NumPy ufuncs on 0-d arrays {uf:.3f} s (flowc/NumPy {fl / uf:.2f}); Python floats "
          f"{py:.3f} s (flowc/Python {fl / py:.1f})")


def run_rnn(reps, quick):
    """Section 2: the RNN training step."""
    rng = np.random.default_rng(0)
    values = rnn_params(rng)
    xv = rng.standard_normal((T, B, I)).astype(np.float32)
    yv = rng.standard_normal((B, 1)).astype(np.float32)
    with fc.Graph():
        t0 = time.perf_counter()
        loop = rnn_step_flowc(values, unrolled=False)
        c_loop = time.perf_counter() - t0
    with fc.Graph():
        other = rnn_step_flowc(values, unrolled=False, save="residuals")
    with fc.Graph():
        t0 = time.perf_counter()
        flat = rnn_step_flowc(values, unrolled=True)
        c_flat = time.perf_counter() - t0
    hand = rnn_step_numpy(values)
    t_loop, t_other, t_flat, t_hand = best_interleaved(
        [lambda: loop(xv, yv), lambda: other(xv, yv), lambda: flat(xv, yv),
         lambda: hand(xv, yv)], 3 * reps)
    print(f"RNN training step (T={T}, B={B}, I={I}, H={H}, float32): scan {t_loop * 1e3:.2f} ms, "
          f"unrolled {t_flat * 1e3:.2f} ms, hand NumPy BPTT {t_hand * 1e3:.2f} ms; "
          f"scan/hand {t_loop / t_hand:.2f}, scan/unrolled {t_loop / t_flat:.2f}; "
          f"save='residuals' {t_other * 1e3:.2f} ms ({t_other / t_loop:.2f} x carries); "
          f"compile: scan {c_loop:.2f} s, unrolled {c_flat:.2f} s")


def run_lstm(reps, quick):
    """Section 3: the LSTM training step, after checking the hand BPTT against flowc."""
    rng = np.random.default_rng(0)
    dims = (T, B, I, H)
    values = lstm_params(rng, dims)
    xv = rng.standard_normal((T, B, I)).astype(np.float32)
    yv = rng.standard_normal((B, 1)).astype(np.float32)
    worst = check_lstm_numpy(values, xv, yv, rtol=1e-4)  # the baseline must be right first
    steps = {}
    for name, unrolled, save in (("products", False, "products"), ("carries", False, "carries"),
                                 ("residuals", False, "residuals"), ("unrolled", True, None)):
        with fc.Graph():
            t0 = time.perf_counter()
            f, _ = lstm_step_flowc(values, dims, unrolled, save=save or "products")
            steps[name] = (f, time.perf_counter() - t0)
    hand = lstm_step_numpy(values)
    fns = [(lambda f=f: f(xv, yv)) for f, _ in steps.values()] + [lambda: hand(xv, yv)]
    torch_step = torch_lstm_step(values, xv, yv)
    if torch_step is not None:
        fns.append(torch_step)
    times = best_interleaved(fns, 3 * reps)
    t = dict(zip(list(steps) + ["hand", "torch"], times))
    scan = t["products"]
    print(f"LSTM training step (T={T}, B={B}, I={I}, H={H}, float32; hand BPTT matches flowc "
          f"to {worst:.1e} relative): scan {scan * 1e3:.2f} ms, unrolled "
          f"{t['unrolled'] * 1e3:.2f} ms, hand NumPy BPTT {t['hand'] * 1e3:.2f} ms; "
          f"lstm-scan/hand {scan / t['hand']:.2f} (target <= 1.2), lstm-scan/unrolled "
          f"{scan / t['unrolled']:.2f} (target <= 1.1); save='carries' "
          f"{t['carries'] / t['hand']:.2f} x hand, save='residuals' "
          f"{t['residuals'] / t['hand']:.2f} x hand; compile: scan {steps['products'][1]:.2f} s, "
          f"unrolled {steps['unrolled'][1]:.2f} s")
    if torch_step is None:
        print("torch.nn.LSTM: torch not installed")
    else:
        print(f"torch.nn.LSTM (CPU) step {t['torch'] * 1e3:.2f} ms: lstm-scan/torch "
              f"{scan / t['torch']:.2f}")


def run_compile(reps, quick):
    """Section 4: compile time against the number of steps."""
    short = min(compile_time(28) for _ in range(reps))
    long_ = min(compile_time(1000) for _ in range(reps))
    print(f"build + grad + compile of a scan: T=28 {short:.3f} s, T=1000 {long_:.3f} s "
          f"(ratio {long_ / short:.2f})")


def run_memory(reps, quick):
    """Section 5 (bodies stay inlined at both sizes: steps under the loop kernel's BIG)."""
    dims = (144, 16, 64) if quick else (576, 16, 128)
    S = dims[0] * dims[1] * dims[2] * 8
    print(f"peak memory of h = tanh(x_t + h U), grad w.r.t. x and h0 (T={dims[0]}, B={dims[1]}, "
          f"H={dims[2]}, float64; one carry per step S = {S / 1e6:.2f} MB), tracemalloc peak "
          "of calls 2 and 3 against the policy's formula:")
    for save, peaks, design in memory_policies(dims):
        got = max(peaks[1:])
        print(f"  save={save!r}: {peaks[1] / 1e6:.2f} / {peaks[2] / 1e6:.2f} MB (first call, "
              f"which allocates before the memory plan exists: {peaks[0] / 1e6:.2f}); formula "
              f"{design / 1e6:.2f} MB, measured/formula {got / design:.2f}")


SECTIONS = {"scalar": run_scalar, "rnn": run_rnn, "lstm": run_lstm, "compile": run_compile,
            "memory": run_memory}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true",
                    help="10^4 scalar steps, 2 repeats, a smaller memory model")
    ap.add_argument("--only", choices=sorted(SECTIONS), help="run one section")
    a = ap.parse_args(argv)
    reps = 2 if a.quick else a.repeats
    for name, run in SECTIONS.items():
        if a.only in (None, name):
            run(reps, a.quick)


if __name__ == "__main__":
    main()
