"""Data-parallel benchmark: training-step time of a mid-size MLP on 1 and 2 processes (one
BLAS thread each), the scaling efficiency, and flowc's gradient exchange against a raw
mpi4py Allreduce of the same bytes in the same job.

    python tools/bench_dp.py [--hidden 1024] [--batch 512] [--steps 20]

Needs mpi4py and its mpiexec (pip install -e '.[mpi]'). Starts itself under mpiexec; the
figures are medians over steps (on a small shared machine expect 2-3x run-to-run noise).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args):
    """One rank: time the steps and the exchange; rank 0 prints one JSON line."""
    sys.path.insert(0, ROOT)
    import numpy as np
    import flowc as fc
    from flowc import parallel
    from flowc_runtime.cpu.kernels import KERNELS
    w = parallel.world()
    rng = np.random.default_rng(0)
    H, B = args.hidden, args.batch
    x = fc.input("x", (None, 784), "float32")
    y = fc.input("y", (None,), "int64")
    sizes = [784, H, H, 10]
    params = []
    h = x
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        W = fc.param(f"W{i}", rng.standard_normal((a, b)) / np.sqrt(a), "float32")
        c = fc.param(f"b{i}", np.zeros(b), "float32")
        params += [W, c]
        h = h @ W + c
        if i < len(sizes) - 2:
            h = fc.relu(h)
    from flowc.nn.losses import categorical_cross_entropy
    loss = categorical_cross_entropy(h, y)
    gs = fc.grad(loss, params)
    f = fc.function([x, y], loss, updates=[(p, p - 0.05 * g) for p, g in zip(params, gs)],
                    data_parallel=w.size > 1 or None)
    X = rng.standard_normal((B, 784)).astype(np.float32)
    Y = rng.integers(0, 10, B)
    s = parallel.shard(B, w.rank, w.size)
    times = []
    for k in range(args.steps + 3):
        w.barrier()
        t = time.perf_counter()
        f(X[s], Y[s])
        times.append(time.perf_counter() - t)
    step = float(np.median(times[3:]))
    nbytes = sum(int(np.prod(p.type.shape)) for p in params) * 4
    out = dict(world=w.size, step_ms=step * 1e3, grad_mb=nbytes / 2**20)
    if w.size > 1:
        from mpi4py import MPI
        buf = np.ones(nbytes // 4, np.float32)
        ours = KERNELS["allreduce"].fn

        def timed(**fns):
            """Median seconds of each fn, taking turns (so a slow spell of the shared machine
            hits every variant alike rather than one)."""
            ts = {k: [] for k in fns}
            for rep in range(3 * args.steps + 3):
                for k, fn in fns.items():
                    w.barrier()
                    t = time.perf_counter()
                    fn()
                    if rep >= 3:
                        ts[k].append(time.perf_counter() - t)
            return {k: float(np.median(v)) for k, v in ts.items()}

        pack, unpack = KERNELS["grad_pack"].fn, KERNELS["grad_unpack"].fn
        grads = [np.ones(p.type.shape, np.float32) for p in params]
        flat = np.empty(nbytes // 4, np.float32)

        def exchange(mean_in_pack):
            # What the data_parallel pass emits per bucket (one bucket here): pack, reduce,
            # views; the mean's 1/N in the pack (now) or as allreduce's own pass (before).
            pack(*grads, mean=mean_in_pack, out=flat)
            ours(flat, op="sum" if mean_in_pack else "mean")
            o = 0
            for g in grads:
                unpack(flat, offset=o, shape=g.shape)
                o += g.size

        m = timed(raw=lambda: MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM),
                  flowc_sum=lambda: ours(buf, op="sum"),
                  whole=lambda: exchange(True), before=lambda: exchange(False),
                  copy=lambda: (np.copyto(flat, buf), MPI.COMM_WORLD.Allreduce(
                      MPI.IN_PLACE, flat, op=MPI.SUM)))
        raw, flowc_sum, whole, before, copy = (m[k] for k in ("raw", "flowc_sum", "whole",
                                                               "before", "copy"))
        out.update(raw_allreduce_ms=raw * 1e3, flowc_allreduce_ms=flowc_sum * 1e3,
                   exchange_ms=whole * 1e3, exchange_before_ms=before * 1e3,
                   raw_copy_ms=copy * 1e3, raw_gbps=nbytes / raw / 1e9,
                   flowc_gbps=nbytes / flowc_sum / 1e9)
    if w.rank == 0:
        print(json.dumps(out), flush=True)
    parallel.mark_done(w)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    sys.path.insert(0, ROOT)
    from flowc.launch import command
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    flags = [__file__, "--worker", "--hidden", str(args.hidden), "--batch", str(args.batch),
             "--steps", str(args.steps)]
    res = {}
    for n in (1, 2):
        cmd = command(n, flags) if n > 1 else [sys.executable] + flags
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode:
            sys.exit(f"{n} process(es) failed:\n{r.stderr[-3000:]}")
        res[n] = json.loads(r.stdout.strip().splitlines()[-1])
    one, two = res[1]["step_ms"], res[2]["step_ms"]
    print(f"MLP 784-{args.hidden}-{args.hidden}-10 float32, global batch {args.batch}, "
          f"{res[1]['grad_mb']:.1f} MiB of gradients, 1 BLAS thread per process")
    print(f"step: 1 process {one:.1f} ms, 2 processes {two:.1f} ms: speedup {one / two:.2f}x, "
          f"scaling efficiency {one / two / 2:.0%}")
    r2 = res[2]
    print(f"allreduce of {r2['grad_mb']:.1f} MiB: raw mpi4py {r2['raw_allreduce_ms']:.2f} ms "
          f"({r2['raw_gbps']:.2f} GB/s), flowc kernel (sum) {r2['flowc_allreduce_ms']:.2f} ms "
          f"({r2['flowc_gbps']:.2f} GB/s, {r2['flowc_allreduce_ms'] / r2['raw_allreduce_ms']:.2f}x "
          f"raw)")
    print(f"whole exchange (pack with the mean's 1/N, allreduce, views) {r2['exchange_ms']:.2f} "
          f"ms = {r2['exchange_ms'] / r2['raw_copy_ms']:.2f}x a raw copy + Allreduce of the same "
          f"bytes ({r2['raw_copy_ms']:.2f} ms); with the 1/N as a pass of its own after the "
          f"reduction {r2['exchange_before_ms']:.2f} ms")


if __name__ == "__main__":
    main()
