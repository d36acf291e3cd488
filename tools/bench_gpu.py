"""GPU benchmarks: flowc's CuPy backend against hand-written CuPy and PyTorch, in one run.

  W1  one logistic-regression training step (400 x 784, the example's data and cost), per
      step: flowc, flowc with CUDA graphs, hand-written CuPy, PyTorch, PyTorch + CUDA graph.
      Target: flowc with CUDA graphs within 1.5x of PyTorch with CUDA graphs.
  W2  one training step of an MLP, batch 4096, width 4096 (4096-4096-4096-10, relu, softmax
      cross-entropy, SGD), float32: flowc, flowc with CUDA graphs (graphs between the GEMMs),
      hand-written CuPy, PyTorch. Target: within 1.2x of PyTorch.
  W3  10**8 float32 elements: cost = sum(tanh(a*x + b) * sigmoid(x) + exp(-x*x)), and its
      gradient d cost / d x. Reports GB/s for the minimal traffic (read x; for the gradient
      also write dx) and the share of the GPU's peak memory bandwidth. Target: >= 70%.

Every workload first checks that all implementations give the same numbers, then times them
(after warm-up; calls are queued back to back and the device is synchronized at the end of
each timed batch; the median batch is reported). Ratios are against baselines measured in
the same run. Needs an NVIDIA GPU with CuPy (pip install 'flowc[gpu]'); PyTorch is used where
it is importable.

    python tools/bench_gpu.py [--only W1,W2,W3] [--quick] [--repeats 7] [--peak-gbs 3350]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flowc as fc  # noqa: E402
import flowc_runtime as runtime  # noqa: E402
from flowc_runtime.storage import Cell  # noqa: E402


def gpu_link(f, **options):
    """f's Program linked for the GPU with its own parameter cells (initial values)."""
    values = [f.program.values[f"param{i}"] for i in range(len(f.program.params))]
    return runtime.link(f.program, device="gpu", cells=[Cell(np.array(v)) for v in values],
                        single=len(f.outputs) == 1, **options)


def timed(step, sync, calls, repeats):
    """Median seconds per call: `calls` queued calls, then a device synchronize, `repeats` x."""
    for _ in range(3):
        step()
    sync()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            step()
        sync()
        runs.append((time.perf_counter() - t) / calls)
    return statistics.median(runs)


def close(name, got, want, rtol, atol=0.0):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        raise AssertionError(f"{name}: results differ (max |diff| "
                             f"{np.max(np.abs(got - want)):.3g}, rtol {rtol})")


def report(title, rows, base=None, extra=None):
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    ref = dict(rows).get(base)
    for name, sec in rows:
        ratio = f"   {sec / ref:6.2f}x {base}" if ref and name != base else ""
        more = f"   {extra(sec)}" if extra else ""
        print(f"  {name:<{width}}  {sec * 1e6:12.1f} us{ratio}{more}")


class Env:
    """CuPy, PyTorch (or None), and synchronization for both."""

    def __init__(self):
        import cupy
        self.cp = cupy
        try:
            import torch
            self.torch = torch if torch.cuda.is_available() else None
        except Exception:
            self.torch = None

    def sync(self):
        self.cp.cuda.Device().synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()


# -- W1: logistic-regression step -----------------------------------------------------------------
N, FEATS, LR, L2 = 400, 784, 0.1, 0.01


def w1(env, args):
    cp, torch = env.cp, env.torch
    dt = args.w1_dtype
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((N, FEATS)).astype(dt), rng.integers(0, 2, N).astype(dt)
    x = fc.input("x", (None, FEATS), dtype=dt)
    y = fc.input("y", (None,), dtype=dt)
    w = fc.param("w", np.zeros(FEATS, dt))
    b = fc.param("b", np.zeros((), dt))
    p = fc.sigmoid(x @ w + b)
    cost = fc.mean(-y * fc.log(p) - (1 - y) * fc.log(1 - p)) + L2 * fc.sum(w ** 2)
    gw, gb = fc.grad(cost, [w, b])
    f = fc.function([x, y], cost, updates=[(w, w - LR * gw), (b, b - LR * gb)])
    Xd, Yd = cp.asarray(X), cp.asarray(Y)
    impls = {"flowc": gpu_link(f), "flowc + CUDA graph": gpu_link(f, cuda_graph=True)}

    class CupyStep:
        def __init__(self):
            self.w, self.b = cp.zeros(FEATS, dt), cp.zeros((), dt)

        def __call__(self, X, Y):
            z = X @ self.w + self.b
            p = 1 / (1 + cp.exp(-z))
            cost = cp.mean(-Y * cp.log(p) - (1 - Y) * cp.log(1 - p)) + L2 * cp.sum(self.w ** 2)
            g = (p - Y) / len(Y)
            gw = X.T @ g + 2 * L2 * self.w
            gb = cp.sum(g)
            self.w -= LR * gw
            self.b -= LR * gb
            return cost
    impls["hand-written CuPy"] = CupyStep()
    if torch is not None:
        tX, tY = torch.as_tensor(X, device="cuda"), torch.as_tensor(Y, device="cuda")

        class TorchStep:
            def __init__(self):
                self.w = torch.zeros(FEATS, dtype=tX.dtype, device="cuda")
                self.b = torch.zeros((), dtype=tX.dtype, device="cuda")

            def __call__(self, X, Y):
                p = torch.sigmoid(X @ self.w + self.b)
                cost = torch.mean(-Y * torch.log(p) - (1 - Y) * torch.log(1 - p)) \
                    + L2 * torch.sum(self.w ** 2)
                g = (p - Y) / Y.shape[0]
                self.w.sub_(LR * (X.T @ g + 2 * L2 * self.w))
                self.b.sub_(LR * torch.sum(g))
                return cost
        impls["PyTorch"] = TorchStep()
        graphed = TorchStep()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):  # warm up on a side stream, as PyTorch's docs do
            for _ in range(3):
                graphed(tX, tY)
        torch.cuda.current_stream().wait_stream(s)
        graphed.w.zero_()
        graphed.b.zero_()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static_cost = graphed(tX, tY)
        impls["PyTorch + CUDA graph"] = lambda X, Y: (g.replay(), static_cost)[1]
        inputs = {"PyTorch": (tX, tY), "PyTorch + CUDA graph": (tX, tY)}
    else:
        inputs = {}
    # Same numbers first: three steps from zero parameters.
    costs = {}
    for name, step in impls.items():
        a = inputs.get(name, (Xd, Yd))
        costs[name] = [float(step(*a)) for _ in range(3)]
    ref = costs["hand-written CuPy"]
    for name, c in costs.items():
        close(f"W1 {name} vs hand-written CuPy", c, ref, rtol=1e-4 if dt == "float32" else 1e-9)
    print(f"\nW1 costs after 3 steps agree: {ref[-1]:.6f}")
    print_graphs(impls["flowc + CUDA graph"])
    rows = [(name, timed(lambda s=step, a=inputs.get(name, (Xd, Yd)): s(*a), env.sync,
                         args.w1_calls, args.repeats)) for name, step in impls.items()]
    report(f"W1: logistic-regression step ({N} x {FEATS}, {dt}), time per step", rows,
           base="PyTorch + CUDA graph" if torch is not None else "hand-written CuPy")


def print_graphs(exe):
    """How a CUDA-graph executable runs each signature: captured (graphs + library calls)?"""
    parts = exe.graph_parts()
    for key, status in exe.graph_status().items():
        how = f" as {parts[key][0]} graphs + {parts[key][1]} cuBLAS/cuSOLVER calls" \
            if key in parts else ""
        print(f"  flowc CUDA graph: {status}{how}")


# -- W2: MLP step, batch 4096, width 4096 -----------------------------------------------------------
def w2(env, args):
    cp, torch = env.cp, env.torch
    B = W = args.w2_size or (1024 if args.quick else 4096)
    C, lr, dt = 10, 0.01, "float32"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((B, W)).astype(dt)
    T = np.eye(C, dtype=dt)[rng.integers(0, C, B)]
    init = [(rng.standard_normal((W, W)) / np.sqrt(W)).astype(dt), np.zeros(W, dt),
            (rng.standard_normal((W, W)) / np.sqrt(W)).astype(dt), np.zeros(W, dt),
            (rng.standard_normal((W, C)) / np.sqrt(W)).astype(dt), np.zeros(C, dt)]
    x = fc.input("x", (None, W), dtype=dt)
    t = fc.input("t", (None, C), dtype=dt)
    ps = [fc.param(f"p{i}", v) for i, v in enumerate(init)]
    h = fc.relu(x @ ps[0] + ps[1])
    h = fc.relu(h @ ps[2] + ps[3])
    cost = -fc.mean(fc.sum(t * fc.log_softmax(h @ ps[4] + ps[5], axis=1), axis=1))
    gs = fc.grad(cost, ps)
    f = fc.function([x, t], cost, updates=[(p, p - lr * g) for p, g in zip(ps, gs)])
    Xd, Td = cp.asarray(X), cp.asarray(T)
    impls = {"flowc": gpu_link(f), "flowc + CUDA graph": gpu_link(f, cuda_graph=True)}
    inputs = {}

    class CupyStep:
        def __init__(self):
            self.p = [cp.asarray(v) for v in init]

        def __call__(self, X, T):
            W1, b1, W2, b2, W3, b3 = self.p
            a1 = X @ W1 + b1
            h1 = cp.maximum(a1, 0)
            a2 = h1 @ W2 + b2
            h2 = cp.maximum(a2, 0)
            z = h2 @ W3 + b3
            z = z - z.max(axis=1, keepdims=True)
            lse = cp.log(cp.exp(z).sum(axis=1, keepdims=True))
            cost = -cp.mean(cp.sum(T * (z - lse), axis=1))
            dz = (cp.exp(z - lse) - T) / X.shape[0]
            dh2 = (dz @ W3.T) * (a2 > 0)
            dh1 = (dh2 @ W2.T) * (a1 > 0)
            grads = [X.T @ dh1, dh1.sum(0), h1.T @ dh2, dh2.sum(0), h2.T @ dz, dz.sum(0)]
            for p, g in zip(self.p, grads):
                p -= lr * g
            return cost
    impls["hand-written CuPy"] = CupyStep()
    if torch is not None:
        tX, tT = torch.as_tensor(X, device="cuda"), torch.as_tensor(T, device="cuda")
        tp = [torch.as_tensor(v, device="cuda").requires_grad_() for v in init]

        def torch_step(X, T):
            h = torch.relu(X @ tp[0] + tp[1])
            h = torch.relu(h @ tp[2] + tp[3])
            cost = -torch.mean(torch.sum(T * torch.log_softmax(h @ tp[4] + tp[5], dim=1), 1))
            grads = torch.autograd.grad(cost, tp)
            with torch.no_grad():
                for p, g in zip(tp, grads):
                    p.sub_(lr * g)
            return cost.detach()
        impls["PyTorch"] = torch_step
        inputs["PyTorch"] = (tX, tT)
    costs = {name: [float(step(*inputs.get(name, (Xd, Td)))) for _ in range(2)]
             for name, step in impls.items()}
    for name, c in costs.items():
        close(f"W2 {name} vs hand-written CuPy", c, costs["hand-written CuPy"], rtol=2e-3)
    print(f"\nW2 costs after 2 steps agree: {costs['hand-written CuPy'][-1]:.6f}")
    print_graphs(impls["flowc + CUDA graph"])
    flops = 3 * 2 * B * (W * W * 2 + W * C)
    rows = [(name, timed(lambda s=step, a=inputs.get(name, (Xd, Td)): s(*a), env.sync,
                         args.w2_calls, args.repeats)) for name, step in impls.items()]
    report(f"W2: MLP step, batch {B}, width {W} ({B}x{W}-{W}-{W}-{C}, float32), time per step",
           rows, base="PyTorch" if torch is not None else "hand-written CuPy",
           extra=lambda s: f"{flops / s / 1e12:6.1f} TFLOP/s")


# -- W3: a memory-bound expression over 10**8 elements, and its gradient ----------------------------
def peak_bandwidth(cp, override):
    if override:
        return override * 1e9, "given with --peak-gbs"
    attrs = cp.cuda.Device().attributes
    clock_khz, bus_bits = attrs.get("MemoryClockRate"), attrs.get("GlobalMemoryBusWidth")
    if not clock_khz or not bus_bits:
        return None, "unknown (give --peak-gbs)"
    return 2.0 * clock_khz * 1e3 * bus_bits / 8, \
        f"2 x {clock_khz / 1e3:.0f} MHz x {bus_bits}-bit bus (device attributes)"


def w3(env, args):
    cp, torch = env.cp, env.torch
    n = args.w3_size or (10 ** 7 if args.quick else 10 ** 8)
    a0, b0 = np.float32(0.7), np.float32(-0.2)
    xh = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    xd = cp.asarray(xh)
    x = fc.input("x", (None,), dtype="float32")
    a, b = fc.param("a", a0), fc.param("b", b0)
    cost = fc.sum(fc.tanh(a * x + b) * fc.sigmoid(x) + fc.exp(-x * x))
    f_cost = gpu_link(fc.function([x], cost))
    f_grad = gpu_link(fc.function([x], fc.grad(cost, x)))

    def cupy_cost(x):
        return cp.sum(cp.tanh(a0 * x + b0) / (1 + cp.exp(-x)) + cp.exp(-x * x))

    @cp.fuse()
    def fused_terms(x, a, b):
        return cp.tanh(a * x + b) / (1 + cp.exp(-x)) + cp.exp(-x * x)

    @cp.fuse()
    def fused_grad(x, a, b):
        t = cp.tanh(a * x + b)
        s = 1 / (1 + cp.exp(-x))
        return (1 - t * t) * a * s + t * s * (1 - s) - 2 * x * cp.exp(-x * x)

    costs = {"flowc": f_cost, "hand-written CuPy": cupy_cost,
             "CuPy fuse": lambda x: cp.sum(fused_terms(x, a0, b0))}
    grads = {"flowc": f_grad, "CuPy fuse": lambda x: fused_grad(x, a0, b0)}
    inputs = {}
    if torch is not None:
        tx = torch.as_tensor(xh, device="cuda")
        ta, tb = torch.tensor(a0, device="cuda"), torch.tensor(b0, device="cuda")
        costs["PyTorch"] = lambda x: torch.sum(torch.tanh(ta * x + tb) * torch.sigmoid(x)
                                               + torch.exp(-x * x))

        def torch_grad(x):
            x = x.detach().requires_grad_()
            c = torch.sum(torch.tanh(ta * x + tb) * torch.sigmoid(x) + torch.exp(-x * x))
            return torch.autograd.grad(c, x)[0]
        grads["PyTorch"] = torch_grad
        inputs["PyTorch"] = tx
    ref = float(np.sum(np.tanh(a0 * xh[:10 ** 6].astype(float) + b0) /
                       (1 + np.exp(-xh[:10 ** 6].astype(float)))
                       + np.exp(-xh[:10 ** 6].astype(float) ** 2)))
    got = float(f_cost(xd[:10 ** 6]))
    close("W3 flowc cost vs float64 NumPy (first 10**6)", got, ref, rtol=1e-5)
    want = float(cupy_cost(xd))
    for name, fn in costs.items():
        close(f"W3 {name} cost vs hand-written CuPy", float(fn(inputs.get(name, xd))), want,
              rtol=1e-4)
    gref = grads["CuPy fuse"](xd)
    for name, fn in grads.items():
        g = fn(inputs.get(name, xd))
        g = g.get() if hasattr(g, "get") else g.cpu().numpy()
        close(f"W3 {name} gradient vs CuPy fuse", g[:: max(1, n // 10 ** 6)],
              gref.get()[:: max(1, n // 10 ** 6)], rtol=1e-4, atol=1e-5)
    print(f"\nW3 ({n:.0e} float32) cost and gradient agree: cost {want:.6g}")
    peak, how = peak_bandwidth(cp, args.peak_gbs)
    print(f"  peak memory bandwidth: {peak / 1e9:.0f} GB/s, {how}" if peak else
          f"  peak memory bandwidth: {how}")
    copy_dst = cp.empty_like(xd)
    copy_s = timed(lambda: cp.copyto(copy_dst, xd), env.sync, args.w3_calls, args.repeats)
    print(f"  device copy of x (read + write 2 x {4 * n / 1e9:.1f} GB): "
          f"{2 * 4 * n / copy_s / 1e9:.0f} GB/s" + (f", {2 * 4 * n / copy_s / peak:.0%} of peak"
                                                    if peak else ""))

    def bw(nbytes):
        def text(sec):
            gbs = nbytes / sec / 1e9
            return f"{gbs:7.0f} GB/s" + (f"  {nbytes / sec / peak:5.0%} of peak" if peak else "")
        return text
    for label, table, nbytes, base in (("cost", costs, 4 * n, "hand-written CuPy"),
                                       ("gradient d cost/dx", grads, 8 * n, "CuPy fuse")):
        rows = [(name, timed(lambda fn=fn, a=inputs.get(name, xd): fn(a), env.sync,
                             args.w3_calls, args.repeats)) for name, fn in table.items()]
        report(f"W3 {label}: minimal traffic {nbytes / 1e9:.2f} GB, time per call", rows,
               base="PyTorch" if torch is not None else base, extra=bw(nbytes))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="W1,W2,W3", help="comma-separated workloads to run")
    ap.add_argument("--quick", action="store_true", help="smaller W2/W3 (a smoke test)")
    ap.add_argument("--repeats", type=int, default=7, help="timed batches per measurement")
    ap.add_argument("--w1-calls", type=int, default=500, help="W1 steps per timed batch")
    ap.add_argument("--w1-dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--w2-calls", type=int, default=5, help="W2 steps per timed batch")
    ap.add_argument("--w3-calls", type=int, default=10, help="W3 calls per timed batch")
    ap.add_argument("--w2-size", type=int, default=None, help="W2 batch and width (4096)")
    ap.add_argument("--w3-size", type=int, default=None, help="W3 elements (10**8)")
    ap.add_argument("--peak-gbs", type=float, default=None,
                    help="the GPU's peak memory bandwidth in GB/s (default: from its clocks)")
    args = ap.parse_args(argv)
    try:
        from flowc_runtime.gpu.backend import load_backend
        load_backend()  # says what is missing: CuPy, or a CUDA device
        env = Env()
    except Exception as e:
        print(f"bench_gpu: cannot use the GPU: {e}")
        return 2
    cp = env.cp
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"device: {name}, {props['totalGlobalMem'] / 2 ** 30:.0f} GiB, "
          f"{cp.cuda.Device().attributes['MultiProcessorCount']} SMs; CUDA runtime "
          f"{cp.cuda.runtime.runtimeGetVersion()}, CuPy {cp.__version__}, PyTorch "
          f"{env.torch.__version__ if env.torch is not None else 'not available'}; "
          f"{platform.python_implementation()} {platform.python_version()}")
    failed = 0
    for w, fn in (("W1", w1), ("W2", w2), ("W3", w3)):
        if w not in args.only.split(","):
            continue
        try:
            with fc.Graph():
                fn(env, args)
        except Exception:
            failed += 1
            print(f"\n{w} FAILED:")
            traceback.print_exc(file=sys.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
