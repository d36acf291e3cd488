"""Convolution training steps, measured against baselines in the same run (ratios, best of
the repeats, timed round-robin), one BLAS thread (threadpoolctl when installed, else the
thread env vars set before NumPy is imported):

1. LeNet-5 (batch 64, float32, 28x28x1: conv5x5x6, relu, maxpool2, conv5x5x16, relu,
   maxpool2, dense 120, 84, 10, softmax cross-entropy, SGD) with flowc's automatic conv
   algorithm against each forced one (FLOWC_CONV_ALGO), the same step by hand in NumPy
   (tools/hand_conv.py: the same algorithms), and PyTorch eager and torch.compile when
   torch imports (flowc auto: the rule's algorithms and, at O2, each forward conv's im2col
   columns reused by its weight gradient; forced: every conv runs one algorithm);
2. a small digits CNN (batch 32, 8x8x1: conv3x3x8 pad 1, relu, maxpool2, conv3x3x16 pad 1,
   relu, maxpool2, dense 10), the same comparisons;
3. per conv signature of each step (forward, input and weight gradients), the rule's
   algorithm against each forced one on the kernel alone;
4. peak memory of flowc's step: its memory plan plus the largest allocation the kernels
   make outside it during a call (tracemalloc), against the liveness bound of the step's
   values (f.memory()), and the hand step's peak (everything it allocates) against the
   same bound.

    python tools/bench_conv.py [--repeats 20] [--no-compile]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # before NumPy loads BLAS: one thread for every contender

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import flowc as fc  # noqa: E402
import flowc_runtime.cpu.conv as kconv  # noqa: E402  (flowc loads runtime/ under this name)
from tools.hand_conv import hand_step  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
except ImportError:
    pass

LENET = dict(batch=64, size=28, convs=[(6, 5, 0), (16, 5, 0)], dense=[120, 84, 10])
DIGITS = dict(batch=32, size=8, convs=[(8, 3, 1), (16, 3, 1)], dense=[10])


def init(spec, seed=0):
    """Float32 parameters: conv (w, b) pairs then dense (W, b) pairs, He-scaled."""
    r = np.random.default_rng(seed)
    ps, c, s = [], 1, spec["size"]
    for o, k, p in spec["convs"]:
        ps += [r.standard_normal((o, c, k, k)) * np.sqrt(2 / (c * k * k)), np.zeros(o)]
        c, s = o, (s + 2 * p - k + 1) // 2
    n = c * s * s
    for m in spec["dense"]:
        ps += [r.standard_normal((n, m)) * np.sqrt(2 / n), np.zeros(m)]
        n = m
    return [p.astype(np.float32) for p in ps]


def flowc_step(spec, values, lr=0.01):
    """One SGD step as a flowc function of (x, one-hot y) returning the loss."""
    ps = [fc.param(f"p{i}", v.copy()) for i, v in enumerate(values)]
    x = fc.input("x", (spec["batch"], 1, spec["size"], spec["size"]), "float32")
    y = fc.input("y", (spec["batch"], spec["dense"][-1]), "float32")
    h, k = x, 0
    for _, _, p in spec["convs"]:
        w, b = ps[k], ps[k + 1]
        h = fc.max_pool(fc.relu(fc.conv2d(h, w, padding=p) + fc.reshape(b, (1, -1, 1, 1))), 2)
        k += 2
    h = fc.reshape(h, (spec["batch"], -1))
    for i in range(len(spec["dense"])):
        h = fc.matmul(h, ps[k]) + ps[k + 1]
        k += 2
        if i < len(spec["dense"]) - 1:
            h = fc.relu(h)
    loss = -fc.sum(y * fc.log_softmax(h, axis=1)) / spec["batch"]
    gs = fc.grad(loss, ps)
    return fc.function([x, y], loss, updates=[(p, p - lr * g) for p, g in zip(ps, gs)])


def torch_step(spec, values, compiled, lr=0.01):
    """The same step in PyTorch (eager, or torch.compile'd), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    ps = [torch.tensor(v, requires_grad=True) for v in values]
    F = torch.nn.functional

    def step(x, y):
        h, k = x, 0
        for _, _, p in spec["convs"]:
            h = F.max_pool2d(F.relu(F.conv2d(h, ps[k], ps[k + 1], padding=p)), 2)
            k += 2
        h = h.reshape(h.shape[0], -1)
        for i in range(len(spec["dense"])):
            h = h @ ps[k] + ps[k + 1]
            k += 2
            if i < len(spec["dense"]) - 1:
                h = F.relu(h)
        loss = -(y * F.log_softmax(h, dim=1)).sum() / h.shape[0]
        gs = torch.autograd.grad(loss, ps)
        with torch.no_grad():
            for p, g in zip(ps, gs):
                p -= lr * g
        return loss
    fn = torch.compile(step) if compiled else step
    return lambda x, y: fn(x, y)


def best_interleaved(fns, repeats):
    """Best wall time of each fn, timed round-robin after one warm call each."""
    for fn in fns:
        fn()
    out = [float("inf")] * len(fns)
    for r in range(repeats):
        for k in (range(len(fns)) if r % 2 else reversed(range(len(fns)))):
            t = time.perf_counter()
            fns[k]()
            out[k] = min(out[k], time.perf_counter() - t)
    return out


def run(name, spec, repeats, compile_torch):
    """Time one model's step for every contender and print ratios to flowc auto."""
    values = init(spec)
    r = np.random.default_rng(1)
    x = r.standard_normal((spec["batch"], 1, spec["size"], spec["size"])).astype(np.float32)
    y = np.eye(spec["dense"][-1], dtype=np.float32)[r.integers(0, spec["dense"][-1],
                                                                spec["batch"])]
    f = flowc_step(spec, values)

    def forced(algo):
        # Compiled and called with the algorithm forced: every conv runs it (the O2 pass
        # that shares the forward's im2col columns with the weight gradient stays off).
        os.environ["FLOWC_CONV_ALGO"] = algo
        try:
            g = flowc_step(spec, values)
        finally:
            os.environ.pop("FLOWC_CONV_ALGO", None)

        def go():
            os.environ["FLOWC_CONV_ALGO"] = algo
            try:
                g(x, y)
            finally:
                os.environ.pop("FLOWC_CONV_ALGO", None)
        return go
    names, fns = ["flowc auto"], [lambda: f(x, y)]
    for algo in kconv.ALGORITHMS + ("tune",):
        names.append(f"flowc {algo}")
        fns.append(forced(algo))
    hand = hand_step(spec, values)
    names.append("hand NumPy")
    fns.append(lambda: hand(x, y))
    import_ok = torch_step(spec, values, False)
    if import_ok is not None:
        import torch
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        names.append("torch eager")
        fns.append(lambda: import_ok(tx, ty))
        if compile_torch:
            tc = torch_step(spec, values, True)
            names.append("torch.compile")
            fns.append(lambda: tc(tx, ty))
    times = best_interleaved(fns, repeats)
    chosen = sorted({v for k, v in kconv.CHOICES.items()})
    print(f"\n{name}: auto shares the forward's im2col columns with the weight gradients; "
          f"its other convs ran {chosen}")
    for n, t in zip(names, times):
        print(f"  {n:15s} {t * 1e3:8.2f} ms   {t / times[0]:5.2f}x flowc auto")
    best_forced = min(times[1:1 + len(kconv.ALGORITHMS)])
    print(f"  auto / best forced: {times[0] / best_forced:.2f}   tune / best forced: "
          f"{times[1 + len(kconv.ALGORITHMS)] / best_forced:.2f}   flowc auto / hand NumPy: "
          f"{times[0] / times[names.index('hand NumPy')]:.2f}")
    mem = f.memory()
    flowc_peak = mem["plan"] + transient_peak(lambda: f(x, y))
    hand_peak = transient_peak(lambda: hand(x, y))
    print(f"  peak memory: flowc {flowc_peak / 1e6:.2f} MB = plan {mem['plan'] / 1e6:.2f} + "
          f"outside it {(flowc_peak - mem['plan']) / 1e6:.2f}; liveness bound "
          f"{mem['lower_bound'] / 1e6:.2f} MB; flowc / bound "
          f"{flowc_peak / mem['lower_bound']:.2f}, hand NumPy / bound "
          f"{hand_peak / mem['lower_bound']:.2f}")
    # Every conv signature the step has without the column sharing (the tune run's).
    per_signature({sig: kconv.modelled(sig[0], sig[1], sig[7], sig[6], kconv.out_sizes(
        sig[0][2:], sig[1][2:], sig[3], sig[4], sig[5], sig[6]), np.dtype(sig[2]).itemsize)
        for sig in kconv.TUNED}, repeats)
    kconv.CHOICES.clear()
    kconv.TUNED.clear()


def transient_peak(fn):
    """The most bytes fn's call holds at once beyond what was allocated before it (NumPy
    reports its allocations to tracemalloc)."""
    fn()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def per_signature(choices, repeats):
    """Time the conv kernel alone for each signature the step ran, every algorithm forced,
    and print the rule's choice against the fastest."""
    conv, r = kconv.make_conv(np), np.random.default_rng(2)
    rule_total = best_total = 0.0
    print("  per conv signature (x, w, pad; ms per algorithm; * the rule's choice):")
    for (xs, ws, dt, st, pad, dil, lhs, g), chosen in choices.items():
        x, w = r.standard_normal(xs).astype(dt), r.standard_normal(ws).astype(dt)
        a = dict(stride=st, pad=pad, dilation=dil, lhs_dilation=lhs, groups=g)
        fns = [lambda n=n: conv(x, w, algorithm=n, **a) for n in kconv.ALGORITHMS]
        ts = dict(zip(kconv.ALGORITHMS, best_interleaved(fns, repeats)))
        rule_total += ts[chosen]
        best_total += min(ts.values())
        cells = "  ".join(f"{n} {t * 1e3:6.3f}{'*' if n == chosen else ' '}"
                          for n, t in ts.items())
        print(f"    {str(xs):17s} {str(ws):17s} pad {pad[0][0]}  {cells}")
    print(f"  rule / best per signature, summed: {rule_total / best_total:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    print("one BLAS thread (threadpoolctl, env vars); torch.set_num_threads(1)")
    run("LeNet-5, batch 64, 28x28", LENET, a.repeats, not a.no_compile)
    run("digits CNN, batch 32, 8x8", DIGITS, a.repeats, not a.no_compile)


if __name__ == "__main__":
    main()
