"""Benchmark suite W1-W5 (issue 4): flowc against hand-written NumPy and, when installed, JAX
(jit, CPU), PyTensor (C backend) and PyTorch (eager, torch.compile), all in one process.

  W1  logistic-regression training step, 400 x 784 float64, full batch (cost, p > 0.5,
      w and b updated with lr 0.1, L2 0.01)
  W2  MLP 784-512-256-10, ReLU, softmax cross-entropy, batch 256, float32, one SGD step
  W3  sum(tanh(a*x + b) * sigmoid(x) + exp(-x*x)) and its gradient w.r.t. x, 10^7 float32
  W4  build + grad + compile of a 100-layer and a 400-layer MLP (width 64, tanh, MSE)
  W5  Hessian of the W1 cost w.r.t. w (784 x 784) against its closed form in NumPy

Every implementation is first checked against the NumPy one (costs, gradients, updated
parameters, within a tolerance per dtype); one that disagrees is not timed. Then the calls
are timed in interleaved repeats (each repeat times every implementation once, so load from
other processes falls on all alike) and ONE table of medians and ratios to hand NumPy is
printed, with the machine, the load average, and the targets of issue 4 (section 5).
W4 runs each (implementation, depth) in a child process, stopped past a time or memory limit.

    python tools/bench_suite.py [--only W1,W3] [--repeats 7] [--quick] [--optimize O2]
                                [--peers jax,pytensor,torch,torch.compile] [--markdown]
                                [--profile]
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import flowc as fc  # noqa: E402
import bench_hessian  # noqa: E402
import bench_logreg  # noqa: E402

PEERS = ("jax", "pytensor", "torch", "torch.compile")
GEMM_KERNELS = ("matmul", "gemm", "gemv", "dot")    # what counts as flowc's GEMM calls (W2)
TOL = {"float64": 1e-9, "float32": 2e-4}          # max |a - b| / max |numpy| per array


# ---------------------------------------------------------------------------------- harness

@dataclass
class Impl:
    """One implementation of a workload: `step()` is the timed unit of work; `read()` gives
    the NumPy arrays to compare (outputs of the last step, parameters now)."""
    name: str
    step: object
    read: object
    fn: object = None          # the flowc Function (profile, memory)
    args: tuple = ()
    note: str = ""
    compiles: bool = False     # the first call compiles: its time goes into the note


@dataclass
class Row:
    workload: str
    impl: str
    median: float = None
    best: float = None
    spread: float = None       # interquartile range / median of the repeats
    ratio: float = None        # median / hand NumPy's median
    note: str = ""


@dataclass
class Run:
    rows: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)   # figures for the targets
    profiles: list = field(default_factory=list)  # (label, flowc Function, args)


def rel_diff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-30))


def check(label, impls, steps, dtype, run):
    """Run `steps` steps of each implementation from the same start and compare with NumPy's
    (the first); return the implementations that agree."""
    ran = []
    for im in impls:
        try:
            t = time.perf_counter()
            im.step()
            if im.compiles:
                first = f"first call {time.perf_counter() - t:.1f} s"
                im.note = "; ".join(x for x in [first, im.note] if x)
            for _ in range(steps - 1):
                im.step()
            ran.append(im)
        except Exception as e:  # a peer that fails to run is reported, not fatal
            if im is impls[0] or im.name == "flowc":
                raise
            run.skipped.append(f"{label} {im.name}: failed to run: {type(e).__name__}: "
                               f"{(str(e).splitlines() or [''])[0][:160]}")
    ref = impls[0].read()
    tol = TOL[dtype]
    good, parts = [impls[0]], []
    for im in ran[1:]:
        got = im.read()
        errs = {k: rel_diff(got[k], ref[k]) for k in ref}
        worst = max(errs, key=errs.get)
        ok = errs[worst] <= tol
        parts.append(f"{im.name} {'ok' if ok else 'MISMATCH'} ({errs[worst]:.1e} on {worst})")
        if ok:
            good.append(im)
        else:
            run.skipped.append(f"{label} {im.name}: differs from NumPy by {errs[worst]:.2e} on "
                               f"{worst} (tolerance {tol:g}); not timed")
    run.checks.append(f"{label}: {steps} step(s), compared {', '.join(ref)} "
                      f"(tol {tol:g} of max|numpy|): " + "; ".join(parts))
    return good


def time_interleaved(impls, repeats, block_s, cooldown_s):
    """Per implementation: (median, best, IQR/median) of seconds per step over `repeats`
    interleaved blocks of about `block_s` seconds each. Each block starts with one untimed
    step and is followed by an untimed pause: the BLAS and OpenMP worker threads of the
    library just timed spin for a while after their last call (OpenBLAS about 0.1 s) and
    would otherwise take a core from the next library's block."""
    inner = []
    for im in impls:
        im.step()
        t = time.perf_counter()
        im.step()
        one = time.perf_counter() - t
        inner.append(max(1, min(10000, int(block_s / max(one, 1e-7)))))
    times = [[] for _ in impls]
    for _ in range(repeats):
        for im, n, ts in zip(impls, inner, times):
            time.sleep(cooldown_s)
            im.step()
            t = time.perf_counter()
            for _ in range(n):
                im.step()
            ts.append((time.perf_counter() - t) / n)
    return [(statistics.median(ts), min(ts), iqr(ts)) for ts in times]


def iqr(ts):
    """Interquartile range over the median: how noisy the repeats were."""
    if len(ts) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(ts, n=4)
    return (q3 - q1) / statistics.median(ts)


def measure(label, impls, dtype, steps, a, run):
    """Check, time, and add one row per implementation (NumPy first)."""
    good = check(label, impls, steps, dtype, run)
    run.profiles += [(label, im.fn, im.args) for im in good if im.fn is not None]
    res = time_interleaved(good, a.repeats, a.block, a.cooldown)
    base = res[0][0]
    for im, (med, best, spread) in zip(good, res):
        run.rows.append(Row(label, im.name, med, best, spread, med / base, im.note))
    return {im.name: r for im, r in zip(good, res)}


def build(label, name, maker, run):
    """Call a peer's builder; on failure record why and return None."""
    try:
        return maker()
    except ImportError as e:
        run.skipped.append(f"{label} {name}: not installed ({e})")
    except Exception as e:  # a peer that cannot run the workload is skipped, not fatal
        run.skipped.append(f"{label} {name}: failed to build: {type(e).__name__}: "
                           f"{str(e).splitlines()[0][:160] if str(e) else ''}")
    return None


def flowc_kwargs(a):
    return {} if a.optimize is None else {"optimize": a.optimize}


def default_level():
    return inspect.signature(fc.function).parameters["optimize"].default


# ----------------------------------------------------------------------------- peer set-up

def jax_mod():
    import jax
    jax.config.update("jax_enable_x64", True)      # W1/W5 are float64; float32 stays float32
    jax.config.update("jax_platforms", "cpu")
    return jax


def pytensor_mod():
    """PyTensor with its C backend (PyTensor 3 defaults to Numba). Unless PYTENSOR_FLAGS says
    otherwise, link the C code to a system OpenBLAS when there is one, as its docs advise."""
    import ctypes.util
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "blas__ldflags" not in flags and ctypes.util.find_library("openblas"):
        os.environ["PYTENSOR_FLAGS"] = ",".join(x for x in [flags, "blas__ldflags=-lopenblas"] if x)
    import warnings
    warnings.filterwarnings("ignore", module="pytensor")
    import pytensor
    from pytensor.compile.mode import get_mode
    return pytensor, get_mode("FAST_RUN").clone(linker="cvm")


def torch_mod():
    import torch
    return torch


def jax_train(loss, params, data, lr):
    """A jitted SGD step on a list of arrays: loss(params, *data) -> (cost, aux)."""
    jax = jax_mod()
    import jax.numpy as jnp

    @jax.jit
    def step(ps, *d):
        (c, aux), gs = jax.value_and_grad(loss, has_aux=True)(ps, *d)
        return c, aux, [p - lr * g for p, g in zip(ps, gs)]
    st = {"p": [jnp.asarray(p) for p in params]}
    d = [jnp.asarray(x) for x in data]

    def run():
        st["c"], st["aux"], st["p"] = step(st["p"], *d)
        jax.block_until_ready(st["p"])
    return st, run


def torch_train(loss, params, data, lr, compiled):
    """An SGD step with autograd (loss compiled by torch.compile when `compiled`)."""
    torch = torch_mod()
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    d = [torch.from_numpy(np.ascontiguousarray(x)) for x in data]
    f = torch.compile(loss) if compiled else loss
    st = {"p": ps}

    def run():
        c, aux = f(ps, *d)
        gs = torch.autograd.grad(c, ps)
        with torch.no_grad():
            for p, g in zip(ps, gs):
                p.sub_(lr * g)
        st["c"], st["aux"] = c.detach(), aux.detach()
    return st, run


# ------------------------------------------------------------------------------------- W1

def w1(a, run):
    label = "W1 logreg step 400x784 f64"
    F, LR, L2 = bench_logreg.FEATS, bench_logreg.LR, bench_logreg.L2
    X, Y = bench_logreg.data()
    ref = bench_logreg.NumpyStep()
    out = {}
    impls = [Impl("numpy", lambda: out.__setitem__("np", ref(X, Y)),
                  lambda: {"cost": out["np"][0], "pred": out["np"][1], "w": ref.w, "b": ref.b})]
    g = fc.Graph()
    with g:
        train, w, b = bench_logreg.flowc_step(a.optimize or default_level())
    impls.append(Impl("flowc", lambda: out.__setitem__("fc", train(X, Y)),
                      lambda: {"cost": out["fc"][0], "pred": out["fc"][1], "w": w.get_value(),
                               "b": b.get_value()}, fn=train, args=(X, Y)))

    def loss_np(xp, sig, log, sum_, mean):
        def loss(ps, x, y):
            wv, bv = ps
            p = sig(x @ wv + bv)
            return mean(-y * log(p) - (1 - y) * log(1 - p)) + L2 * sum_(wv ** 2), p > 0.5
        return loss

    def read_peer(st):
        return lambda: {"cost": np.asarray(st["c"]), "pred": np.asarray(st["aux"]),
                        "w": np.asarray(st["p"][0].detach() if hasattr(st["p"][0], "detach")
                                        else st["p"][0]),
                        "b": np.asarray(st["p"][1].detach() if hasattr(st["p"][1], "detach")
                                        else st["p"][1])}
    w0 = [np.zeros(F), np.array(0.0)]
    if "jax" in a.peers:
        def mk():
            jax = jax_mod()
            import jax.numpy as jnp
            st, r = jax_train(loss_np(jnp, jax.nn.sigmoid, jnp.log, jnp.sum, jnp.mean), w0,
                              [X, Y], LR)
            return Impl("jax", r, read_peer(st), compiles=True)
        im = build(label, "jax", mk, run)
        impls += [im] if im else []
    if "pytensor" in a.peers:
        def mk():
            pytensor, mode = pytensor_mod()
            import pytensor.tensor as pt
            x, y = pt.dmatrix("x"), pt.dvector("y")
            wv, bv = pytensor.shared(np.zeros(F), "w"), pytensor.shared(0.0, "b")
            p = pt.sigmoid(x @ wv + bv)
            cost = pt.mean(-y * pt.log(p) - (1 - y) * pt.log(1 - p)) + L2 * pt.sum(wv ** 2)
            gw, gb = pytensor.grad(cost, [wv, bv])
            f = pytensor.function([x, y], [cost, p > 0.5], mode=mode,
                                  updates=[(wv, wv - LR * gw), (bv, bv - LR * gb)])
            st = {}
            return Impl("pytensor", lambda: st.__setitem__("o", f(X, Y)),
                        lambda: {"cost": st["o"][0], "pred": st["o"][1], "w": wv.get_value(),
                                 "b": bv.get_value()})
        im = build(label, "pytensor", mk, run)
        impls += [im] if im else []
    for name in ("torch", "torch.compile"):
        if name in a.peers:
            def mk(name=name):
                torch = torch_mod()
                loss = loss_np(torch, torch.sigmoid, torch.log, torch.sum, torch.mean)
                st, r = torch_train(loss, w0, [X, Y], LR, name == "torch.compile")
                return Impl(name, r, read_peer(st), compiles=name == "torch.compile")
            im = build(label, name, mk, run)
            impls += [im] if im else []
    res = measure(label, impls, "float64", 3, a, run)
    run.extra["W1"] = res


# ------------------------------------------------------------------------------------- W2

W2_SIZES = (784, 512, 256, 10)


def w2_data(batch):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((batch, W2_SIZES[0])).astype(np.float32)
    labels = rng.integers(0, W2_SIZES[-1], batch)
    params = []
    for n_in, n_out in zip(W2_SIZES[:-1], W2_SIZES[1:]):
        params += [(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32),
                   np.zeros(n_out, np.float32)]
    return X, labels, params


class MlpNumpy:
    """The W2 step by hand, as a careful NumPy user writes it (in-place where it is free)."""

    def __init__(self, params, lr):
        self.p, self.lr = [p.copy() for p in params], lr

    def __call__(self, X, labels):
        W1, b1, W2, b2, W3, b3 = self.p
        rows = np.arange(len(X))
        z1 = X @ W1
        z1 += b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2
        z2 += b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ W3
        z3 += b3
        z3 -= z3.max(axis=1, keepdims=True)
        e = np.exp(z3)
        s = e.sum(axis=1, keepdims=True)
        cost = np.log(s[:, 0]).mean() - z3[rows, labels].mean()
        d3 = e / s
        d3[rows, labels] -= 1
        d3 /= len(X)
        d2 = d3 @ W3.T
        d2 *= z2 > 0
        d1 = d2 @ W2.T
        d1 *= z1 > 0
        grads = [X.T @ d1, d1.sum(0), h1.T @ d2, d2.sum(0), h2.T @ d3, d3.sum(0)]
        for p, g in zip(self.p, grads):
            g *= self.lr
            p -= g
        return cost


def w2(a, run):
    batch = 64 if a.quick else 256
    label = f"W2 MLP 784-512-256-10 b{batch} f32"
    LR = 0.1
    X, labels, params0 = w2_data(batch)
    onehot = np.eye(W2_SIZES[-1], dtype=np.float32)[labels]
    ref = MlpNumpy(params0, LR)
    out = {}
    impls = [Impl("numpy", lambda: out.__setitem__("np", ref(X, labels)),
                  lambda: dict(cost=out["np"], **{f"p{i}": p for i, p in enumerate(ref.p)}))]
    with fc.Graph():
        x = fc.input("x", shape=(None, W2_SIZES[0]), dtype="float32")
        ps = [fc.param(f"p{i}", p) for i, p in enumerate(params0)]
        h = x
        for i in range(0, 6, 2):
            h = h @ ps[i] + ps[i + 1]
            h = fc.relu(h) if i < 4 else h
        logp = fc.log_softmax(h, axis=1)
        try:   # integer labels, as the peers use; one-hot targets if take_along_axis fails
            y = fc.input("y", shape=(None, 1), dtype="int64")
            cost = -fc.mean(fc.take_along_axis(logp, y, axis=1))
            train = fc.function([x, y], cost, updates=fc.optim.sgd(cost, ps, lr=LR),
                                **flowc_kwargs(a))
            fargs, how = (X, labels[:, None]), "take_along_axis"
        except Exception as e:
            y = fc.input("y1h", shape=(None, W2_SIZES[-1]), dtype="float32")
            cost = -fc.mean(fc.sum(y * logp, axis=1))
            train = fc.function([x, y], cost, updates=fc.optim.sgd(cost, ps, lr=LR),
                                **flowc_kwargs(a))
            fargs, how = (X, onehot), f"one-hot targets (take_along_axis: {type(e).__name__})"
    impls.append(Impl("flowc", lambda: out.__setitem__("fc", train(*fargs)),
                      lambda: dict(cost=out["fc"], **{f"p{i}": p.get_value()
                                                      for i, p in enumerate(ps)}),
                      fn=train, args=fargs, note=how))

    def mlp_loss(relu, log_softmax, take):
        def loss(ps, x, lab):
            h = x
            for i in range(0, 6, 2):
                h = h @ ps[i] + ps[i + 1]
                h = relu(h) if i < 4 else h
            c = -take(log_softmax(h), lab).mean()
            return c, c
        return loss

    def read_peer(st):
        return lambda: dict(cost=np.asarray(st["c"].detach() if hasattr(st["c"], "detach")
                                            else st["c"]),
                            **{f"p{i}": np.asarray(p.detach() if hasattr(p, "detach") else p)
                               for i, p in enumerate(st["p"])})
    if "jax" in a.peers:
        def mk():
            jax = jax_mod()
            import jax.numpy as jnp
            take = lambda lp, lab: jnp.take_along_axis(lp, lab[:, None], axis=1)  # noqa: E731
            st, r = jax_train(mlp_loss(jax.nn.relu, lambda z: jax.nn.log_softmax(z, axis=1),
                                       take), params0, [X, labels], LR)
            return Impl("jax", r, read_peer(st), compiles=True)
        im = build(label, "jax", mk, run)
        impls += [im] if im else []
    if "pytensor" in a.peers:
        def mk():
            pytensor, mode = pytensor_mod()
            import pytensor.tensor as pt
            from pytensor.tensor.special import log_softmax
            x, lab = pt.matrix("x", dtype="float32"), pt.vector("lab", dtype="int64")
            sp = [pytensor.shared(p.copy(), f"p{i}") for i, p in enumerate(params0)]
            h = x
            for i in range(0, 6, 2):
                h = h @ sp[i] + sp[i + 1]
                h = pt.maximum(h, 0) if i < 4 else h
            cost = -log_softmax(h, axis=1)[pt.arange(x.shape[0]), lab].mean()
            gs = pytensor.grad(cost, sp)
            f = pytensor.function([x, lab], cost, mode=mode,
                                  updates=[(p, p - np.float32(LR) * g) for p, g in zip(sp, gs)])
            st = {}
            return Impl("pytensor", lambda: st.__setitem__("c", f(X, labels)),
                        lambda: dict(cost=st["c"], **{f"p{i}": p.get_value()
                                                      for i, p in enumerate(sp)}))
        im = build(label, "pytensor", mk, run)
        impls += [im] if im else []
    for name in ("torch", "torch.compile"):
        if name in a.peers:
            def mk(name=name):
                torch = torch_mod()
                take = lambda lp, lab: lp.gather(1, lab[:, None])  # noqa: E731
                st, r = torch_train(mlp_loss(torch.relu, lambda z: torch.log_softmax(z, 1),
                                             take), params0, [X, labels], LR,
                                    name == "torch.compile")
                return Impl(name, r, read_peer(st), compiles=name == "torch.compile")
            im = build(label, name, mk, run)
            impls += [im] if im else []
    res = measure(label, impls, "float32", 3, a, run)
    if "flowc" in res:
        prof = best_profile(train, fargs)
        gemm = sum(s for k, s, _ in prof.by_op() if any(g in k for g in GEMM_KERNELS))
        mem = train.memory()
        run.extra["W2"] = dict(res=res, gemm=gemm, prof=prof, mem=mem)
        run.rows[-len(res) + list(res).index("flowc")].note += (
            f"; profile: GEMM {fmt_t(gemm)} of {fmt_t(prof.total)} "
            f"(x{prof.total / gemm:.2f}); mem plan/bound {mem_ratio(mem):.2f}")
    run.extra.setdefault("W2", {})["res"] = res


# ------------------------------------------------------------------------------------- W3

W3_A, W3_B = 0.5, 0.1


def w3_numpy(x, a, b):
    """Value and gradient by hand, with the temporaries a careful NumPy user would reuse."""
    t = a * x
    t += b
    np.tanh(t, out=t)                              # t = tanh(a x + b)
    s = np.negative(x)
    np.exp(s, out=s)
    s += 1
    np.reciprocal(s, out=s)                        # s = sigmoid(x)
    e = np.square(x)
    np.negative(e, out=e)
    np.exp(e, out=e)                               # e = exp(-x^2)
    ts = t * s
    value = ts.sum() + e.sum()
    # d/dx = a (1 - t^2) s + t s (1 - s) - 2 x e
    g = np.square(t)
    np.subtract(1, g, out=g)
    g *= a
    g *= s
    ts *= 1 - s
    g += ts
    e *= x
    e *= 2
    g -= e
    return value, g


def w3(a, run):
    n = 10 ** 6 if a.quick else 10 ** 7
    label = f"W3 tanh/sigmoid/exp + grad 1e{int(np.log10(n))} f32"
    x = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    A, B = np.float32(W3_A), np.float32(W3_B)
    out = {}
    impls = [Impl("numpy", lambda: out.__setitem__("np", w3_numpy(x, A, B)),
                  lambda: {"value": out["np"][0], "grad": out["np"][1]})]
    with fc.Graph():
        xv = fc.input("x", shape=(None,), dtype="float32")
        av, bv = fc.param("a", A), fc.param("b", B)
        v = fc.sum(fc.tanh(av * xv + bv) * fc.sigmoid(xv) + fc.exp(-xv * xv))
        f = fc.function([xv], [v, fc.grad(v, xv)], **flowc_kwargs(a))
    impls.append(Impl("flowc", lambda: out.__setitem__("fc", f(x)),
                      lambda: {"value": out["fc"][0], "grad": out["fc"][1]}, fn=f, args=(x,)))
    if "jax" in a.peers:
        def mk():
            jax = jax_mod()
            import jax.numpy as jnp

            def fn(xx, aa, bb):
                return jnp.sum(jnp.tanh(aa * xx + bb) * jax.nn.sigmoid(xx) + jnp.exp(-xx * xx))
            vg = jax.jit(jax.value_and_grad(fn))
            xj, st = jnp.asarray(x), {}

            def r():
                st["o"] = jax.block_until_ready(vg(xj, A, B))
            return Impl("jax", r, lambda: {"value": np.asarray(st["o"][0]),
                                           "grad": np.asarray(st["o"][1])},
                        compiles=True)
        im = build(label, "jax", mk, run)
        impls += [im] if im else []
    if "pytensor" in a.peers:
        def mk():
            pytensor, mode = pytensor_mod()
            import pytensor.tensor as pt
            xs = pt.vector("x", dtype="float32")
            sa, sb = pytensor.shared(A, "a"), pytensor.shared(B, "b")
            val = pt.sum(pt.tanh(sa * xs + sb) * pt.sigmoid(xs) + pt.exp(-xs * xs))
            g = pytensor.function([xs], [val, pytensor.grad(val, xs)], mode=mode)
            st = {}
            return Impl("pytensor", lambda: st.__setitem__("o", g(x)),
                        lambda: {"value": st["o"][0], "grad": st["o"][1]})
        im = build(label, "pytensor", mk, run)
        impls += [im] if im else []
    for name in ("torch", "torch.compile"):
        if name in a.peers:
            def mk(name=name):
                torch = torch_mod()

                def fn(xx):
                    return torch.sum(torch.tanh(float(A) * xx + float(B)) * torch.sigmoid(xx)
                                     + torch.exp(-xx * xx))
                fcomp = torch.compile(fn) if name == "torch.compile" else fn
                xt, st = torch.from_numpy(x).requires_grad_(True), {}

                def r():
                    val = fcomp(xt)
                    st["o"] = (val.detach(), torch.autograd.grad(val, xt)[0])
                return Impl(name, r, lambda: {"value": st["o"][0].numpy(),
                                              "grad": st["o"][1].numpy()},
                            compiles=name == "torch.compile")
            im = build(label, name, mk, run)
            impls += [im] if im else []
    res = measure(label, impls, "float32", 1, a, run)
    if "flowc" in res:
        mem = f.memory()
        run.extra["W3"] = dict(res=res, mem=mem)
        idx = len(run.rows) - len(res) + list(res).index("flowc")
        run.rows[idx].note = f"mem plan/bound {mem_ratio(mem):.2f}"
    else:
        run.extra["W3"] = dict(res=res)


# ------------------------------------------------------------------------------------- W4

W4_WIDTH, W4_BATCH, W4_LR = 64, 32, 0.01


def w4_data(layers):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((W4_BATCH, W4_WIDTH)).astype(np.float32)
    Y = rng.standard_normal((W4_BATCH, W4_WIDTH)).astype(np.float32)
    params = []
    for _ in range(layers):
        params += [(rng.standard_normal((W4_WIDTH, W4_WIDTH)) / np.sqrt(W4_WIDTH))
                   .astype(np.float32), np.zeros(W4_WIDTH, np.float32)]
    return X, Y, params


def w4_numpy_cost(X, Y, params):
    h = X
    for i in range(0, len(params), 2):
        h = np.tanh(h @ params[i] + params[i + 1])
    return float(np.mean((h - Y) ** 2))


def w4_once(impl, X, Y, params, optimize):
    """Seconds from graph construction to a compiled training step (JAX: jit + first call),
    and the cost that step returns on (X, Y)."""
    if impl == "flowc":
        t = time.perf_counter()
        with fc.Graph():
            x = fc.input("x", shape=(None, W4_WIDTH), dtype="float32")
            y = fc.input("y", shape=(None, W4_WIDTH), dtype="float32")
            ps = [fc.param(f"p{i}", p) for i, p in enumerate(params)]
            h = x
            for i in range(0, len(ps), 2):
                h = fc.tanh(h @ ps[i] + ps[i + 1])
            cost = fc.mean((h - y) ** 2)
            f = fc.function([x, y], cost, updates=fc.optim.sgd(cost, ps, lr=W4_LR),
                            **({} if optimize is None else {"optimize": optimize}))
        return time.perf_counter() - t, float(f(X, Y))
    if impl == "jax":
        jax = jax_mod()
        import jax.numpy as jnp
        t = time.perf_counter()

        def loss(ps, x, y):
            h = x
            for i in range(0, len(ps), 2):
                h = jnp.tanh(h @ ps[i] + ps[i + 1])
            return jnp.mean((h - y) ** 2)

        @jax.jit
        def step(ps, x, y):
            c, gs = jax.value_and_grad(loss)(ps, x, y)
            return c, [p - W4_LR * g for p, g in zip(ps, gs)]
        c, _ = jax.block_until_ready(step(params, X, Y))
        return time.perf_counter() - t, float(c)
    if impl == "pytensor":
        pytensor, mode = pytensor_mod()
        import pytensor.tensor as pt
        t = time.perf_counter()
        x, y = pt.matrix("x", dtype="float32"), pt.matrix("y", dtype="float32")
        sp = [pytensor.shared(p.copy(), f"p{i}") for i, p in enumerate(params)]
        h = x
        for i in range(0, len(sp), 2):
            h = pt.tanh(h @ sp[i] + sp[i + 1])
        cost = pt.mean((h - y) ** 2)
        gs = pytensor.grad(cost, sp)
        f = pytensor.function([x, y], cost, mode=mode,
                              updates=[(p, p - np.float32(W4_LR) * g) for p, g in zip(sp, gs)])
        sec = time.perf_counter() - t
        return sec, float(f(X, Y))
    raise ValueError(impl)


def w4_child(spec, repeats, optimize, budget_s):
    """Child process: time `repeats` builds (stopping early past `budget_s`), print JSON."""
    impl, layers = spec.split(":")
    X, Y, params = w4_data(int(layers))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    times, start = [], time.perf_counter()
    ref = w4_numpy_cost(X, Y, params)
    for _ in range(repeats):
        sec, cost = w4_once(impl, X, Y, params, optimize)
        times.append(sec)
        if time.perf_counter() - start > budget_s:
            break
    print(json.dumps({"times": times, "cost": cost, "ref": ref}))


def w4(a, run):
    depths = (10, 40) if a.quick else (100, 400)
    impls = ["flowc"] + [p for p in ("jax", "pytensor") if p in a.peers]
    for name in PEERS:
        if name in a.peers and name not in impls:
            run.skipped.append(f"W4 {name}: not measured (issue 4 compares JAX and PyTensor)")
    res = {}
    for layers in depths:
        label = f"W4 build+grad+compile {layers} layers"
        for impl in impls:
            if impl != "flowc" and not peer_available(impl):
                run.skipped.append(f"{label} {impl}: not installed")
                continue
            cmd = [sys.executable, os.path.abspath(__file__), "--w4-child", f"{impl}:{layers}",
                   "--repeats", str(min(a.repeats, 5 if impl == "flowc" else 3))]
            if a.optimize:
                cmd += ["--optimize", a.optimize]
            out, why, sec = run_child(cmd, a.w4_timeout, a.w4_mem_gib)
            lines = out.strip().splitlines()
            if why or not lines:
                why = why or "no result"
                run.skipped.append(f"{label} {impl}: {why} after {sec:.0f} s")
                run.rows.append(Row(label, impl, note=f"{why} after {sec:.0f} s"))
                continue
            r = json.loads(lines[-1])
            d = abs(r["cost"] - r["ref"]) / abs(r["ref"])
            run.checks.append(f"{label}: {impl} cost of the compiled step {r['cost']:.6f} vs "
                              f"NumPy {r['ref']:.6f} ({'ok' if d < 1e-4 else 'MISMATCH'}, "
                              f"{d:.1e})")
            ts = r["times"]
            med = statistics.median(ts)
            res[(impl, layers)] = med
            run.rows.append(Row(label, impl, med, min(ts), iqr(ts), None,
                                f"{len(ts)} runs, first {fmt_t(ts[0])}"))
    run.extra["W4"] = dict(res=res, depths=depths)


def run_child(cmd, timeout_s, mem_gib):
    """Run a W4 child; stop it past `timeout_s` or `mem_gib` GiB resident (a compiler that
    runs away would otherwise push the machine into swap). Returns (stdout, why, seconds)."""
    import tempfile
    t, why = time.perf_counter(), None
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        while p.poll() is None:
            time.sleep(0.25)
            if time.perf_counter() - t > timeout_s:
                why = f"no result within {timeout_s} s, stopped"
            elif rss_gib(p.pid) > mem_gib:
                why = f"over {mem_gib:g} GiB resident, stopped"
            if why:
                p.kill()
                p.wait()
                break
        out.seek(0)
        err.seek(0)
        text, errs = out.read(), err.read()
    if why is None and p.returncode != 0:
        last = (errs.strip().splitlines() or [f"exit status {p.returncode}"])[-1][:120]
        why = f"failed ({last})"
    return text, why, time.perf_counter() - t


def rss_gib(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def peer_available(name):
    import importlib.util
    return importlib.util.find_spec(name.split(".")[0]) is not None


# ------------------------------------------------------------------------------------- W5

def w5(a, run):
    label = "W5 Hessian 784x784 f64"
    L2 = bench_hessian.L2
    X, Y, W, B = bench_hessian.data()
    ref = bench_hessian.ClosedForm(W, B)
    out = {}
    impls = [Impl("numpy", lambda: out.__setitem__("np", ref(X, Y)),
                  lambda: {"H": out["np"]}, note="closed form")]
    with fc.Graph():
        f = bench_hessian.flowc_hessian(W, B, a.optimize or default_level())
    impls.append(Impl("flowc", lambda: out.__setitem__("fc", f(X, Y)), lambda: {"H": out["fc"]},
                      fn=f, args=(X, Y)))

    def cost_of(sig, log, sum_, mean):
        def cost(w, x, y):
            p = sig(x @ w + B)
            return mean(-y * log(p) - (1 - y) * log(1 - p)) + L2 * sum_(w ** 2)
        return cost
    if "jax" in a.peers:
        def mk():
            jax = jax_mod()
            import jax.numpy as jnp
            h = jax.jit(jax.hessian(cost_of(jax.nn.sigmoid, jnp.log, jnp.sum, jnp.mean)))
            args, st = [jnp.asarray(v) for v in (W, X, Y)], {}

            def r():
                st["H"] = jax.block_until_ready(h(*args))
            return Impl("jax", r, lambda: {"H": np.asarray(st["H"])},
                        compiles=True)
        im = build(label, "jax", mk, run)
        impls += [im] if im else []
    if "pytensor" in a.peers:
        def mk():
            pytensor, mode = pytensor_mod()
            import pytensor.tensor as pt
            from pytensor.gradient import grad, hessian, jacobian
            x, y = pt.dmatrix("x"), pt.dvector("y")
            w = pytensor.shared(W.copy(), "w")
            p = pt.sigmoid(x @ w + B)
            cost = pt.mean(-y * pt.log(p) - (1 - y) * pt.log(1 - p)) + L2 * pt.sum(w ** 2)
            vec = "vectorize" in inspect.signature(jacobian).parameters
            H = jacobian(grad(cost, w), w, vectorize=True) if vec else hessian(cost, w)
            g = pytensor.function([x, y], H, mode=mode)
            st = {}
            return Impl("pytensor", lambda: st.__setitem__("H", g(X, Y)),
                        lambda: {"H": st["H"]},
                        note="jacobian(grad, vectorize=True)" if vec else "hessian (scan)")
        im = build(label, "pytensor", mk, run)
        impls += [im] if im else []
    for name in ("torch", "torch.compile"):
        if name in a.peers:
            def mk(name=name):
                torch = torch_mod()
                cost = cost_of(torch.sigmoid, torch.log, torch.sum, torch.mean)
                h = torch.func.hessian(cost)
                if name == "torch.compile":
                    h = torch.compile(h)
                args, st = [torch.from_numpy(v) for v in (W, X, Y)], {}

                def r():
                    st["H"] = h(*args)
                return Impl(name, r, lambda: {"H": st["H"].numpy()}, note="torch.func.hessian",
                            compiles=name == "torch.compile")
            im = build(label, name, mk, run)
            impls += [im] if im else []
    run.extra["W5"] = dict(res=measure(label, impls, "float64", 1, a, run))


# --------------------------------------------------------------------------------- output

def fmt_t(s):
    if s is None:
        return "-"
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(peers):
    out = []
    for name, mod in (("jax", "jax"), ("jaxlib", "jaxlib"), ("pytensor", "pytensor"),
                      ("torch", "torch")):
        if name == "jaxlib" and "jax" not in peers or \
                name not in ("jaxlib",) and not any(p.startswith(name) for p in peers):
            continue
        try:
            m = pytensor_mod()[0] if name == "pytensor" else __import__(mod)
            v = getattr(m, "__version__", "?")
            if name == "torch":
                v += f" ({m.get_num_threads()} threads)"
            if name == "pytensor":
                v += f" (C backend, blas {m.config.blas__ldflags or 'none: NumPy fallback'})"
            out.append(f"{name} {v}")
        except Exception:
            out.append(f"{name} not installed")
    return out


def flowc_revision():
    """The checkout's commit, with '+changes' when flowc/ or runtime/ differ from it."""
    root = os.path.dirname(HERE)
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "flowc",
                                "runtime"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" @ {head}{'+changes' if dirty.strip() else ''}" if head else ""


def machine_line(a):
    load = os.getloadavg()
    return (f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy "
            f"{np.__version__} (BLAS {bench_logreg.blas_name()}), flowc {fc.__version__}"
            f"{flowc_revision()} "
            f"optimize={a.optimize or default_level() + ' (default)'}; "
            + ", ".join(versions(a.peers)) + f"; load average {load[0]:.2f} {load[1]:.2f}")


def table(rows, markdown):
    head = ["workload", "impl", "median", "best", "IQR", "vs numpy", "notes"]
    body = []
    last = None
    for r in rows:
        body.append([r.workload if r.workload != last else "", r.impl,
                     fmt_t(r.median), fmt_t(r.best),
                     "-" if r.spread is None else f"{r.spread:.0%}",
                     "-" if r.ratio is None else f"{r.ratio:.2f}", r.note])
        last = r.workload
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head) - 1)]
    fmtrow = lambda row: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(row, widths))) + "  " + row[-1]
    return "\n".join([fmtrow(head), "-" * (sum(widths) + 2 * len(widths) + 5)]
                     + [fmtrow(row) for row in body])


def targets(run):
    """Issue 4, section 5: each target with the measured ratio."""
    out, e = [], run.extra

    def line(name, value, limit, what, also=""):
        if value is None:
            out.append(f"  {name}: not measured ({what})")
        else:
            out.append(f"  {name}: {what} = {value:.2f}{also} (target <= {limit}): "
                       f"{'met' if value <= limit else 'NOT met'}")
    if "W1" in e:
        r = e["W1"]
        line("W1", ratio(r, "flowc", "numpy"), 0.85, "flowc/numpy",
             best_ratio(r, "flowc", "numpy"))
        if "jax" in r:
            line("W1", ratio(r, "flowc", "jax"), 1.0, "flowc/jax ('ahead of JAX')",
                 best_ratio(r, "flowc", "jax"))
    if "W2" in e:
        r = e["W2"]
        line("W2", ratio(r["res"], "flowc", "numpy"), 0.9, "flowc/numpy",
             best_ratio(r["res"], "flowc", "numpy"))
        if "gemm" in r:
            line("W2", r["prof"].total / r["gemm"], 1.15,
                 "flowc step / its GEMM time (same profile, least disturbed of 3)")
            line("W2 memory", mem_ratio(r["mem"]), 1.25,
                 f"plan/lower bound ({r['mem']['plan'] / 2**20:.1f} / "
                 f"{r['mem']['lower_bound'] / 2**20:.1f} MiB)")
    if "W3" in e:
        r = e["W3"]
        line("W3", ratio(r["res"], "flowc", "numpy"), 0.4, "flowc/numpy",
             best_ratio(r["res"], "flowc", "numpy"))
        if "torch.compile" in r["res"]:
            line("W3 stretch", ratio(r["res"], "flowc", "torch.compile"), 1.0,
                 "flowc/torch.compile", best_ratio(r["res"], "flowc", "torch.compile"))
        if "mem" in r:
            line("W3 memory", mem_ratio(r["mem"]), 1.25,
                 f"plan/lower bound ({r['mem']['plan'] / 2**20:.1f} / "
                 f"{r['mem']['lower_bound'] / 2**20:.1f} MiB)")
    if "W4" in e:
        res, (d1, d2) = e["W4"]["res"], e["W4"]["depths"]
        for d, lim in ((d1, 0.5), (d2, 2.0)):
            line(f"W4 {d} layers", res.get(("flowc", d)), lim, "flowc seconds",
                 "" if (d1, d2) == (100, 400) else " (--quick depth; the targets are for "
                 "100 and 400 layers)")
        if ("flowc", d1) in res and ("flowc", d2) in res:
            grow = res[("flowc", d2)] / res[("flowc", d1)]
            out.append(f"  W4 growth {d1} -> {d2} layers: x{grow:.2f} (linear: x{d2 / d1:.0f})")
    if "W5" in e:
        line("W5", ratio(e["W5"]["res"], "flowc", "numpy"), 3.0, "flowc/closed form",
             best_ratio(e["W5"]["res"], "flowc", "numpy"))
    return out


def mem_ratio(mem):
    """Planned bytes / liveness lower bound; 1 when nothing is planned at all (0 / 0)."""
    return mem["plan"] / mem["lower_bound"] if mem["lower_bound"] else \
        (1.0 if not mem["plan"] else float("inf"))


def ratio(res, a, b):
    return res[a][0] / res[b][0] if a in res and b in res else None


def best_ratio(res, a, b):
    return f" (bests: {res[a][1] / res[b][1]:.2f})" if a in res and b in res else ""


def best_profile(fn, args, tries=3):
    """flowc's per-instruction profile; the least disturbed (smallest total) of `tries`."""
    return min((fn.profile(*args, calls=10) for _ in range(tries)), key=lambda p: p.total)


def print_profiles(run):
    for label, fn, args in run.profiles:
        print(f"\nflowc profile, {label} (instrumented, so slower than the table):")
        print(best_profile(fn, args).table(top=12))


# ----------------------------------------------------------------------------------- main

WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="W1,W2,W3,W4,W5", help="workloads, e.g. W1,W3")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 7; "
                    "3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, a smoke run")
    ap.add_argument("--optimize", default=None, help="flowc level O0/O1/O2 (default: the "
                    "library's default)")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="peers to try, comma-separated, or 'none' (default: all)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--profile", action="store_true",
                    help="also print flowc's per-instruction profile of each workload")
    ap.add_argument("--w4-timeout", type=int, default=None,
                    help="seconds per W4 child (default 600; 120 with --quick)")
    ap.add_argument("--w4-mem-gib", type=float, default=4.0,
                    help="stop a W4 child past this many GiB resident (default 4)")
    ap.add_argument("--w4-child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.peers = [] if a.peers == "none" else [p.strip() for p in a.peers.split(",") if p.strip()]
    if a.w4_child:
        return w4_child(a.w4_child, a.repeats or 3, a.optimize, budget_s=60)
    a.repeats = a.repeats or (3 if a.quick else 7)
    a.block = 0.05 if a.quick else 0.2
    a.cooldown = 0.15
    a.w4_timeout = a.w4_timeout or (120 if a.quick else 600)
    only = [w.strip().upper() for w in a.only.split(",") if w.strip()]
    bad = [w for w in only if w not in WORKLOADS]
    if bad:
        ap.error(f"unknown workload(s) {bad}; choose from {', '.join(WORKLOADS)}")
    for p in a.peers:
        if p not in PEERS:
            ap.error(f"unknown peer {p!r}; choose from {', '.join(PEERS)}")

    run = Run()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    for w in only:
        print(f"[{w}] ...", file=sys.stderr, flush=True)
        try:
            WORKLOADS[w](a, run)
        except Exception:
            traceback.print_exc()
            run.skipped.append(f"{w}: the workload failed (traceback above)")
    print("machine: " + machine_line(a))
    print(f"load average before the run {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} cores); whole run {time.perf_counter() - t0:.0f} s")
    print("command: python tools/bench_suite.py "
          + " ".join(x for x in (argv if argv is not None else sys.argv[1:])))
    print("\nchecks (before timing):")
    print("\n".join("  " + c for c in run.checks) or "  (none)")
    if run.skipped:
        print("skipped / not timed:")
        print("\n".join("  " + s for s in run.skipped))
    print(f"\ntiming: median of {a.repeats} interleaved repeats (blocks of about "
          f"{a.block:g} s; W4: separate runs in a child process); IQR = interquartile range "
          "/ median of the repeats; vs numpy = median / hand NumPy's median\n")
    print(table(run.rows, a.markdown))
    print("\ntargets (issue 4, section 5):")
    print("\n".join(targets(run)))
    if a.profile:
        print_profiles(run)
    return run


if __name__ == "__main__":
    main()
