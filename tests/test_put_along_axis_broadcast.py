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


@pytest.mark.parametrize("chunk", [1, 7, 1 << 15])
def test_the_last_axis_scatter_in_row_chunks_equals_one_bincount(chunk, monkeypatch):
    """Max pooling's gradient scatters rows at a time (a bounded transient): with repeated
    and negative indices, every chunk size gives the loops' sums, bit for bit the same on
    calls 1-3 into a reused out buffer."""
    from flowc_runtime.cpu import kernels_extra
    monkeypatch.setattr(kernels_extra, "CHUNK", chunk)
    put = kernels_extra._put_along_axis_grad
    r = np.random.default_rng(5)
    x = np.zeros((3, 4, 6), "float32")
    out = np.full(x.shape, np.nan, "float32")
    first = None
    for call in range(3):
        idx = r.integers(-6, 6, (3, 4, 9))
        g = r.standard_normal((3, 4, 9)).astype("float32")
        got = put(x, idx, g, axis=-1, out=out)
        assert got is out
        np.testing.assert_allclose(got, put_reference(x, idx, g, 2), rtol=1e-6, atol=1e-6)
        if first is None:
            first = (idx, g, got.copy())
    monkeypatch.setattr(kernels_extra, "CHUNK", 1 << 30)
    np.testing.assert_array_equal(put(x, first[0], first[1], axis=-1), first[2])
