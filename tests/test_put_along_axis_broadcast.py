"""put_along_axis_grad (max pooling's and take_along_axis's gradient) where idx broadcasts
over a size-1 dim of x: the gradient sums into x's one row, for every dtype and backend."""
import numpy as np
import pytest


def put_reference(x, idx, g, axis):
    """put_along_axis_grad by loops: each g element added at its index, x's size-1 dims
    (that idx broadcasts over) summed into their one row."""
    out = np.zeros(x.shape, dtype=np.result_type(x.dtype, g.dtype))
    idx = np.broadcast_to(idx, g.shape)
    for pos in np.ndindex(*g.shape):
        at = list(pos)
        at[axis] = idx[pos] % x.shape[axis]
        at = tuple(0 if x.shape[i] == 1 else a for i, a in enumerate(at))
        out[at] += g[pos]
    return out.astype(x.dtype)


@pytest.mark.parametrize("dtype", ["int64", "float64", "float32"])
def test_put_along_axis_grad_sums_over_the_dims_x_broadcasts(dtype, monkeypatch):
    """take_along_axis(x, idx) broadcasts a size-1 dim of x against idx; its gradient sums
    those rows into x's one row (the integer path raised IndexError), on the CPU and the
    fake GPU alike."""
    from flowc_runtime.cpu.kernels import KERNELS as CPU
    r = np.random.default_rng(4)
    x = np.zeros((1, 5, 1), dtype)
    idx = r.integers(-5, 5, (3, 4, 2))
    g = r.integers(-9, 9, (3, 4, 2)).astype(dtype)
    want = put_reference(x, idx, g, 1)
    np.testing.assert_array_equal(CPU["put_along_axis_grad"].fn(x, idx, g, axis=1), want)
    from tests import fake_cupy
    cp = fake_cupy.install(monkeypatch)
    try:
        from flowc_runtime.gpu.kernels import KERNELS as GPU
        got = GPU["put_along_axis_grad"].fn(cp.asarray(x), cp.asarray(idx), cp.asarray(g), axis=1)
        np.testing.assert_array_equal(got.get(), want)
    finally:
        fake_cupy.uninstall()
