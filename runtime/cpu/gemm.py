"""The gemm kernel for NumPy: out = alpha * (a @ b) + beta * c in one BLAS call.

NumPy's matmul has no alpha/beta, so it cannot accumulate into an output that already holds
c. The BLAS library NumPy itself ships is called through ctypes (cblas ?gemm, row-major,
with the transpose flags for transposed views): the same library and thread pool as every
matmul. SciPy's wrappers were tried first and rejected: SciPy bundles a second OpenBLAS
whose idle threads spin against NumPy's, and a W2 step took 4x longer. Where NumPy's BLAS
cannot be found (another build, another platform), matmul and one more pass do the same.
"""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_CBLAS = {}
# Below this many output elements, matmul and one or two passes beat the one BLAS call:
# ctypes' conversion of 14 arguments costs ~10 us a call (a digits CNN's dense layer,
# (32, 64) @ (64, 10) + b: 13 us through ctypes, 4 us by matmul + add; an SGD update of a
# (256, 120) weight: 68 us against 50 us); the two meet near 50K elements and the call
# wins by 5-10 % from 400K (tools/bench_conv.py and bench_suite.py's W2).
BLAS_MIN_ELEMENTS = 1 << 16


def _library_gemm(dtype):
    """The cblas ?gemm function for float32/float64 from NumPy's bundled BLAS, or None."""
    letter = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}.get(np.dtype(dtype))
    if letter is None:
        return None
    here = os.path.dirname(os.path.dirname(np.__file__))
    for path in sorted(glob.glob(os.path.join(here, "numpy.libs", "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, int_t in ((f"scipy_cblas_{letter}gemm64_", ctypes.c_int64),
                            (f"cblas_{letter}gemm64_", ctypes.c_int64),
                            (f"scipy_cblas_{letter}gemm", ctypes.c_int),
                            (f"cblas_{letter}gemm", ctypes.c_int)):
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            real = ctypes.c_float if letter == "s" else ctypes.c_double
            fn.restype = None
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_t, int_t, int_t, real,
                           ctypes.c_void_p, int_t, ctypes.c_void_p, int_t, real,
                           ctypes.c_void_p, int_t]
            return fn
    return None


def blas_gemm(dtype):
    """Cached _library_gemm (None: use the NumPy fallback)."""
    key = np.dtype(dtype)
    if key not in _CBLAS:
        _CBLAS[key] = _library_gemm(key)
    return _CBLAS[key]


def _operand(m):
    """(array, transpose flag, leading dimension) describing matrix m to row-major BLAS."""
    item = m.itemsize
    if m.strides[1] == item and m.strides[0] >= max(1, m.shape[1]) * item:
        return m, NO_TRANS, m.strides[0] // item          # rows of m are contiguous
    if m.strides[0] == item and m.strides[1] >= max(1, m.shape[0]) * item:
        return m, TRANS, m.strides[1] // item             # m is the transpose of a row-major
    m = np.ascontiguousarray(m)
    return m, NO_TRANS, m.shape[1]


def broadcast_gemm(xp, a, b, c, alpha, beta, out):
    """The sum where the product broadcasts into C (a size known only at run time was 1 in
    the product, which the fold into one gemm assumed it was not): plain array arithmetic."""
    r = xp.matmul(a, b) * alpha + (c if beta == 1.0 else beta * c)
    if out is not None and out.shape == r.shape:
        xp.copyto(out, r)
        return out
    return r


def gemm(a, b, c, alpha=1.0, beta=1.0, out=None):
    """alpha * (a @ b) + beta * c for 2-D a, b; c broadcasts into the product's shape."""
    dtype = np.result_type(a.dtype, b.dtype)
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    if np.broadcast_shapes((m, n), c.shape) != (m, n):
        return broadcast_gemm(np, a, b, c, alpha, beta, out)
    if out is None:
        out = np.empty((m, n), dtype)
    fn = blas_gemm(dtype) if a.dtype == b.dtype == out.dtype == dtype and \
        m * n >= BLAS_MIN_ELEMENTS else None
    if fn is None or 0 in (m, n, k) or not out.flags.c_contiguous:
        prod = np.matmul(a, b)
        if alpha != 1.0:
            prod *= alpha
        return np.add(prod, c if beta == 1.0 else beta * c, out=out)
    np.copyto(out, c)
    a, ta, lda = _operand(a)
    b, tb, ldb = _operand(b)
    fn(ROW_MAJOR, ta, tb, m, n, k, alpha, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
       out.ctypes.data, max(1, n))
    return out
