"""log_softmax is x - logsumexp(x): where the max along the axis is infinite, both subtract 0
instead of it, so the finite entries come out -inf and only the infinite ones nan (JAX's rule),
on the CPU and on the (fake) GPU (fuzz seed 1304: log_softmax gave nan everywhere, while
logsumexp already had the rule)."""
import numpy as np
import pytest

import flowc as fc

ROWS = np.array([[np.inf, 2.5, np.inf, 1.0], [1.0, 2.0, 3.0, 4.0], [-np.inf, 0.5, -np.inf, 0.0],
                 [-np.inf] * 4, [np.nan, 1.0, 2.0, 3.0]])


def reference(x):
    """x - logsumexp(x) along the last axis, by NumPy, with the max shifted only where finite."""
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    return x - (np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)) + m)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("level", ["O0", "O2"])
def test_log_softmax_with_infinite_entries_equals_x_minus_logsumexp(level, dtype):
    x = fc.input("x", (None, 4), dtype=dtype)
    f = fc.function([x], [fc.log_softmax(x, axis=1), x - fc.logsumexp(x, axis=1, keepdims=True)],
                    optimize=level)
    with np.errstate(all="ignore"):
        for rows in (ROWS, ROWS[1:3], ROWS):   # three calls, the second smaller
            v = rows.astype(dtype)
            want = reference(v)
            for got in f(v):
                np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == "float32" else 1e-14)


def test_the_gpu_kernels_follow_the_same_rule(monkeypatch):
    from tests import fake_cupy
    cp = fake_cupy.install(monkeypatch)
    try:
        from flowc_runtime.cpu.kernels import KERNELS as CPU
        from flowc_runtime.gpu.kernels import KERNELS as GPU
        with np.errstate(all="ignore"):
            for op, kw in (("log_softmax", {"axis": (1,)}),
                           ("logsumexp", {"axis": (1,), "keepdims": True})):
                want = CPU[op].fn(ROWS, **kw)
                got = GPU[op].fn(cp.asarray(ROWS), **kw)
                assert type(got) is cp.ndarray
                np.testing.assert_allclose(got.get(), want, rtol=1e-14)
    finally:
        fake_cupy.uninstall()

