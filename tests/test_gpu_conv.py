"""The generated conv data-movement kernels (runtime/gpu/conv_codegen.py): run in the host
emulator over a random grid of geometries (stride not dividing, asymmetric and negative pads,
dilation, input dilation, 1-3 spatial dims) against the NumPy conv's own im2col copy and a
scatter-add loop for col2im, and compiled with nvcc at both index widths."""
import itertools
import shutil
import subprocess

import numpy as np
import pytest

from flowc_runtime.cpu.conv import _dilated, _padded, _windows
from flowc_runtime.gpu.conv_codegen import col2im_source, im2col_source, pool_argmax_source
from tests import gpu_emulator as emu
from test_conv import random_case

NVCC = shutil.which("nvcc")


def cols_reference(x, K, a, osz):
    """The NumPy kernel's im2col copy: cols[n, *p, c, *k] (runtime/cpu/conv.py)."""
    xt = _padded(np, _dilated(np, x, a["lhs_dilation"]), a["pad"])
    nd = x.ndim - 2
    cols = np.empty((x.shape[0],) + osz + (x.shape[1],) + tuple(K), dtype=x.dtype)
    for off, src in _windows(np, xt, K, a["stride"], a["dilation"], osz):
        cols[(slice(None),) * (2 + nd) + off] = np.moveaxis(src, 1, -1)
    return cols


def col2im_reference(cols, xshape, K, a, osz):
    """dx as the adjoint of im2col: each column added back into its input element."""
    N, C, S = xshape[0], xshape[1], xshape[2:]
    dx = np.zeros(xshape, dtype=np.float64)
    for n, c in itertools.product(range(N), range(C)):
        for p in itertools.product(*(range(o) for o in osz)):
            for k in itertools.product(*(range(kk) for kk in K)):
                h = []
                for d in range(len(S)):
                    q = p[d] * a["stride"][d] + k[d] * a["dilation"][d] - a["pad"][d][0]
                    u = a["lhs_dilation"][d]
                    if q < 0 or q % u or q // u >= S[d]:
                        break
                    h.append(q // u)
                else:
                    dx[(n, c) + tuple(h)] += cols[(n,) + p + (c,) + k]
    return dx


def _case(seed):
    r = np.random.default_rng(1000 + seed)
    xs, ws, a = random_case(r)
    K = ws[2:]
    osz = tuple(((h - 1) * u + 1 + lo + hi - d * (k - 1) - 1) // s + 1 for h, k, s, (lo, hi), d, u
                in zip(xs[2:], K, a["stride"], a["pad"], a["dilation"], a["lhs_dilation"]))
    return r, xs, K, a, osz


def _sources(xs, K, a, dtype, index=None):
    geo = (xs, K, a["stride"], a["pad"], a["dilation"], a["lhs_dilation"])
    return im2col_source(dtype, *geo, index=index), col2im_source(dtype, *geo, index=index)


@pytest.mark.skipif(not emu.available(), reason="no C++ compiler (g++) for the host emulator")
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_im2col_and_col2im_match_numpy_in_emulation(seed, dtype):
    r, xs, K, a, osz = _case(seed)
    (im, n_im), (ci, n_ci) = _sources(xs, K, a, dtype)
    for call in range(3):  # first, second and third call: no state kept between launches
        x = r.standard_normal(xs).astype(dtype)
        want = cols_reference(x, K, a, osz)
        got = np.full(want.shape, np.nan, dtype=dtype)
        emu.launch(im, (n_im + 63) // 64, 64, [x, got])
        np.testing.assert_array_equal(got, want)
        cols = r.standard_normal(want.shape).astype(dtype)
        dx = np.full(xs, np.nan, dtype=dtype)
        emu.launch(ci, 3, 32, [cols, dx])  # fewer threads than elements: grid-stride loop
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(dx, col2im_reference(cols, xs, K, a, osz), rtol=tol, atol=tol)


def test_index_width_follows_the_sizes():
    r, xs, K, a, osz = _case(0)
    (im, _), (ci, _) = _sources(xs, K, a, np.float32)
    assert "int i =" in im.source and "int i =" in ci.source
    (im, _), _ = _sources(xs, K, a, np.float32, index="long long")
    assert "long long i =" in im.source


@pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not on PATH")
def test_conv_kernels_compile_with_nvcc(tmp_path):
    ks = []
    for seed in range(6):
        _, xs, K, a, _ = _case(seed)
        for index in ("int", "long long"):
            for dtype in (np.float32, np.float64):
                ks += [k for k, _ in _sources(xs, K, a, dtype, index)]
                _, ps, pk, pst, pp, pc = _pool_case(seed)
                ks.append(pool_argmax_source(dtype, ps, pk, pst, pp, pc, index)[0])
    ks = list({k.name: k for k in ks}.values())
    (tmp_path / "all.cu").write_text("\n".join(f"namespace ns_{k.name} {{\n{k.source}}}\n"
                                               for k in ks))
    res = subprocess.run([NVCC, "--ptx", "-arch=sm_90", "all.cu", "-o", "all.ptx"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "all.cu(" not in res.stderr, res.stderr[-4000:]
    ptx = (tmp_path / "all.ptx").read_text()
    assert all(f".entry {k.name}(" in ptx for k in ks)


def _pool_case(seed):
    r = np.random.default_rng(2000 + seed)
    nd = int(r.integers(1, 4))
    kernel = tuple(int(k) for k in r.integers(1, 4, nd))
    stride = tuple(int(s) for s in r.integers(1, 4, nd))
    padding = tuple(int(r.integers(0, k // 2 + 1)) for k in kernel)
    S = tuple(int(k + r.integers(0, 4)) for k in kernel)
    return r, (2, 3) + S, kernel, stride, padding, bool(r.integers(2))


@pytest.mark.skipif(not emu.available(), reason="no C++ compiler (g++) for the host emulator")
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pool_argmax_matches_numpy_in_emulation(seed, dtype):
    from flowc_runtime.cpu.pool import make_pool_argmax
    r, xs, kernel, stride, padding, ceil = _pool_case(seed)
    k, n = pool_argmax_source(dtype, xs, kernel, stride, padding, ceil)
    ref = make_pool_argmax(np)
    for call in range(3):
        # Calls 2 and 3 bring ties (small integers), -inf and NaN: the convention's corners.
        x = r.standard_normal(xs) if call == 0 else r.integers(-2, 2, xs).astype(float)
        if call == 2:
            x.flat[r.integers(0, x.size, 3)] = np.nan
            x.flat[r.integers(0, x.size, 5)] = -np.inf
        x = x.astype(dtype)
        want = ref(x, kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil)
        got = np.full(want.shape, -7, dtype=np.int64)
        emu.launch(k, (n + 31) // 32, 32, [x, got])
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(not emu.available(), reason="no C++ compiler (g++) for the host emulator")
@pytest.mark.parametrize("seed", range(6))
def test_generated_conv_on_fake_device_matches_the_reference_path(seed, monkeypatch):
    from tests import fake_cupy
    cp = fake_cupy.install(monkeypatch)
    try:
        from flowc_runtime.cpu.conv import make_conv
        from flowc_runtime.gpu import conv_run
        r, xs, K, a, osz = _case(seed)
        ws = (a["groups"] * int(r.integers(1, 3)), xs[1] // a["groups"]) + tuple(K)
        attrs = dict(stride=a["stride"], pad=a["pad"], dilation=a["dilation"],
                     lhs_dilation=a["lhs_dilation"], groups=a["groups"], flip=a["flip"])
        ref = make_conv(np, choose=False)
        for call in range(3):
            x, w = r.standard_normal(xs), r.standard_normal(ws)
            got = conv_run.conv(cp.asarray(x), cp.asarray(w), **attrs).get()
            np.testing.assert_allclose(got, ref(x, w, **attrs), rtol=1e-12, atol=1e-12)
        # The generated path ran: col2im for an input-dilated conv, im2col otherwise.
        dilated = any(u > 1 for u in a["lhs_dilation"])
        used = conv_run._col2im_kernel if dilated else conv_run._im2col_kernel
        assert used.cache_info().currsize == 1
    finally:
        fake_cupy.uninstall()
