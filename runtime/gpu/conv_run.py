"""conv on the GPU: the generated im2col kernel (conv_codegen.py) into a column buffer, then
one cuBLAS GEMM per group, as the NumPy kernel's im2col algorithm does after its copy.

FLOWC_GPU_CONV=reference (or FLOWC_CONV_ALGO forcing an algorithm, or a dtype the generator
does not cover) runs the NumPy algorithm through CuPy instead: the reference path.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache

import cupy as cp

from ..cpu.conv import (channel_bias, check_operands, flipped, from_columns, make_column_kernels,
                        make_conv, out_sizes)
from ..cpu.pool import make_pool_argmax
from ..cpu.pool import out_sizes as pool_sizes
from .conv_codegen import col2im_source, im2col_source, pool_argmax_source

_REFERENCE = make_conv(cp, choose=False)
_REFERENCE_POOL = make_pool_argmax(cp)  # a running maximum over strided views (CuPy ops)
_COLUMNS = make_column_kernels(cp, chunked=False)  # conv_cols, conv_wgrad: whole cuBLAS GEMMs
_BLOCK = 256


def _compiled(ks, total):
    """(kernel, elements, blocks) for generated source ks; a grid-stride loop, so a bounded
    grid covers any size."""
    return cp.RawKernel(ks.source, ks.name), total, min(-(-total // _BLOCK), 65535)


def _launch(compiled, *args):
    kern, total, blocks = compiled
    if total:
        kern((blocks,), (_BLOCK,), args)


def _reference(x):
    """Whether x's conv or pooling runs the NumPy algorithm through CuPy (forced, or a dtype
    the generator does not cover)."""
    return os.environ.get("FLOWC_GPU_CONV") == "reference" or \
        x.dtype.name not in ("float32", "float64")


@lru_cache(maxsize=512)
def _im2col_kernel(dtype, xshape, K, stride, pad, dilation, lhs_dilation):
    return _compiled(*im2col_source(dtype, xshape, K, stride, pad, dilation, lhs_dilation))


def conv(x, w, b=None, out=None, stride=(1,), pad=((0, 0),), dilation=(1,),
         lhs_dilation=(1,), groups=1, flip=False):
    """The conv (and conv_bias: b, per channel) kernel on CuPy arrays (generated im2col +
    cuBLAS)."""
    if _reference(x) or os.environ.get("FLOWC_CONV_ALGO") or w.dtype != x.dtype:
        return _REFERENCE(x, w, b, out=out, stride=stride, pad=pad, dilation=dilation,
                          lhs_dilation=lhs_dilation, groups=groups, flip=flip)
    check_operands(x.shape, w.shape, groups)
    b = channel_bias(cp, b, w.shape[0])
    w = flipped(w) if flip else w
    K = tuple(w.shape[2:])
    osz = out_sizes(x.shape[2:], K, stride, pad, dilation, lhs_dilation)
    res = out if out is not None else cp.empty((x.shape[0], w.shape[0]) + osz, dtype=x.dtype)
    if any(u > 1 for u in lhs_dilation) and res.flags.c_contiguous:
        return _col2im_conv(x, w, b, res, osz, stride, pad, dilation, lhs_dilation, groups)
    cols = im2col(x, None, K, stride, pad, dilation, lhs_dilation)
    return from_columns(cp, cols, w, b, osz, res, chunked=False)  # one cuBLAS GEMM a group


@lru_cache(maxsize=512)
def _col2im_kernel(dtype, xshape, K, stride, pad, dilation, lhs_dilation):
    return _compiled(*col2im_source(dtype, xshape, K, stride, pad, dilation, lhs_dilation))


def _col2im_conv(x, w, b, res, osz, stride, pad, dilation, lhs_dilation, groups):
    """An input-dilated conv (a strided conv's input gradient) without multiplying the
    dilation's zeros: one GEMM per group of the undilated x by every kernel offset, then
    the generated gathering col2im, which sums each output element's products in
    kernel-offset order (no atomics). x (N, C, *M) spread by u = lhs_dilation is the
    output side of a forward conv F of stride u, input dilation `stride`, low pad
    Ke - 1 - lo; y is that F's input gradient for columns x_rows @ w (kernel flipped)."""
    N, C, M = x.shape[0], x.shape[1], tuple(x.shape[2:])
    O, K, nd = w.shape[0], tuple(w.shape[2:]), x.ndim - 2
    Cg, Og, KK, R = C // groups, O // groups, math.prod(K), N * math.prod(M)
    Ke = [d * (k - 1) + 1 for d, k in zip(dilation, K)]
    lo = [Ke[i] - 1 - pad[i][0] for i in range(nd)]
    # F's high pad: whatever makes its output sizes exactly M (the columns' layout).
    hi = [(M[i] - 1) * lhs_dilation[i] + Ke[i] - ((osz[i] - 1) * stride[i] + 1) - lo[i]
          for i in range(nd)]
    wf = flipped(w)
    xs = cp.moveaxis(x, 1, -1).reshape(R, C)
    cols = cp.empty((R, O, KK), dtype=x.dtype)  # (N, *M, O, *K): F's column layout
    for g in range(groups):
        wg = cp.ascontiguousarray(cp.moveaxis(wf[g * Og:(g + 1) * Og].reshape(Og, Cg, KK),
                                              1, 0)).reshape(Cg, Og * KK)
        cols[:, g * Og:(g + 1) * Og] = (xs[:, g * Cg:(g + 1) * Cg] @ wg).reshape(R, Og, KK)
    _launch(_col2im_kernel(x.dtype.name, (N, O) + tuple(osz), K, tuple(lhs_dilation),
                           tuple(zip(lo, hi)), tuple(dilation), tuple(stride)), cols, res)
    if b is not None:
        res += b.reshape((1, O) + (1,) * nd)
    return res


def im2col(x, out=None, kernel=(1,), stride=(1,), pad=((0, 0),), dilation=(1,),
           lhs_dilation=(1,)):
    """The im2col op (the O2 column-sharing lowering) through the generated kernel: the
    (N * positions, C * kernel) matrix, the layout conv's own column buffer has."""
    if _reference(x):
        return _COLUMNS["im2col"](x, out=out, kernel=kernel, stride=stride, pad=pad,
                                  dilation=dilation, lhs_dilation=lhs_dilation)
    osz = out_sizes(x.shape[2:], kernel, stride, pad, dilation, lhs_dilation)
    res = out if out is not None else cp.empty(
        (x.shape[0] * math.prod(osz), x.shape[1] * math.prod(kernel)), dtype=x.dtype)
    _launch(_im2col_kernel(x.dtype.name, tuple(x.shape), tuple(kernel), tuple(stride),
                           tuple(tuple(p) for p in pad), tuple(dilation), tuple(lhs_dilation)),
            cp.ascontiguousarray(x), res)
    return res


conv_cols, conv_wgrad = _COLUMNS["conv_cols"], _COLUMNS["conv_wgrad"]


@lru_cache(maxsize=512)
def _pool_kernel(dtype, xshape, kernel, stride, padding, ceil_mode):
    return _compiled(*pool_argmax_source(dtype, xshape, kernel, stride, padding, ceil_mode))


def pool_argmax(x, out=None, kernel=(1,), stride=(1,), padding=(0,), ceil_mode=False):
    """Max pooling's first-maximum indices through the generated kernel (one thread per
    window; runtime/cpu/pool.py's convention). One launch and no host read: the CuPy
    reference (FLOWC_GPU_CONV=reference, other dtypes) launches per window offset and reads
    whether a NaN is there on the host, which a CUDA graph capture cannot hold."""
    if _reference(x):
        return _REFERENCE_POOL(x, kernel=kernel, stride=stride, padding=padding,
                               ceil_mode=ceil_mode, out=out)
    O = pool_sizes(x.shape[2:], kernel, stride, padding, ceil_mode)
    res = out if out is not None else cp.empty(x.shape[:2] + tuple(O), dtype=cp.int64)
    _launch(_pool_kernel(x.dtype.name, tuple(x.shape), tuple(kernel), tuple(stride),
                         tuple(padding), bool(ceil_mode)), cp.ascontiguousarray(x), res)
    return res
