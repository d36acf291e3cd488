"""Time the first call (the one that makes the memory plan) of long instruction chains.

    python tools/bench_first_call.py [n ...]      # default: 1000 2000 4000 10000

Each chain is n elementwise instructions over a (64, 64) input, compiled at O0 so that
none is folded away; the first call runs every kernel once and plans the arena, the
second call runs into the planned buffers. Prints seconds per call.
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


def main(sizes):
    X = np.random.default_rng(0).standard_normal((64, 64))
    print(f"{'instrs':>7} {'compile s':>10} {'first call s':>13} {'second call s':>14}")
    for n in sizes:
        with fc.Graph():
            t0 = time.perf_counter()
            f = chain(n)
            t1 = time.perf_counter()
            f(X)
            t2 = time.perf_counter()
            f(X)
            t3 = time.perf_counter()
        print(f"{len(f.program.instrs):>7} {t1 - t0:>10.2f} {t2 - t1:>13.3f} {t3 - t2:>14.3f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 2000, 4000, 10000])
