"""Time the first call (the one that makes the memory plan) of long instruction chains.

    python tools/bench_first_call.py [n ...]      # default: 1000 2000 4000 10000

Each chain is n elementwise instructions over a (64, 64) input, compiled at O0 so that
none is folded away; the first call runs every kernel once and plans the arena, the
second call runs into the planned buffers. A fan-out of n/4 values of (16, 16), all live
until a chain of adds sums them, is timed the same way (every placement meets every
other). Prints seconds per call.
"""
import sys
import time

import numpy as np

import flowc as fc


def chain(n):
    """A function of n instructions, each reading the previous one's value."""
    x = fc.input("x", (64, 64))
    h = x
    for i in range(n):
        h = fc.tanh(h) if i % 2 else h * 0.5
    return fc.function([x], h, optimize="O0")


def fan_out(n):
    """About n instructions: n/4 values (mul, exp) all live until adds sum them."""
    x = fc.input("x", (16, 16))
    es = [fc.exp(x * (i * 1e-4)) for i in range(max(1, n // 4))]
    acc = es[0]
    for e in es[1:]:
        acc = acc + e
    return fc.function([x], acc, optimize="O0")


def main(sizes):
    print(f"{'graph':>7} {'instrs':>7} {'compile s':>10} {'first call s':>13} "
          f"{'second call s':>14}")
    for name, make, shape in (("chain", chain, (64, 64)), ("fan-out", fan_out, (16, 16))):
        X = np.random.default_rng(0).standard_normal(shape)
        for n in sizes:
            with fc.Graph():
                t0 = time.perf_counter()
                f = make(n)
                t1 = time.perf_counter()
                f(X)
                t2 = time.perf_counter()
                f(X)
                t3 = time.perf_counter()
            print(f"{name:>7} {len(f.program.instrs):>7} {t1 - t0:>10.2f} {t2 - t1:>13.3f} "
                  f"{t3 - t2:>14.3f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 2000, 4000, 10000])
