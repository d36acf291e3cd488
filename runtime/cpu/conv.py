"""The `conv` kernel (NumPy or CuPy) with three algorithms, chosen per shape signature.

im2col: one strided copy per kernel offset into an (N * out positions, channels * kernel)
  scratch, then one GEMM per group (few large GEMMs; the scratch is kernel-size times x).
offsets: one GEMM per kernel offset and group accumulated into the output (no big scratch;
  many small GEMMs, which lose when the output has few positions).
col2im: for an input-dilated conv (a strided conv's input gradient): one GEMM of the
  undilated input by all kernel offsets, then a strided scatter-add per offset, so none of
  the dilated input's zeros are multiplied (u^nd less work for lhs_dilation u).

No einsum or tensordot over a strided window view: einsum never calls BLAS and tensordot
copies the view anyway (numpy#12132); the copies here are explicit and the products BLAS's.
"""
from __future__ import annotations

import functools
import itertools
import math
import os
import time

ALGORITHMS = ("im2col", "offsets", "col2im")
# A GEMM product held outside the memory plan is made about this many bytes at a time (at
# least one image's or one kernel offset's): col2im's all at once took 11x its output on
# LeNet's input gradient, and the forward's and weight gradient's GEMMs 4x the output,
# peaks above the plan (tools/bench_conv.py measures them). Fewer, larger GEMMs measured
# no faster.
CHUNK_BYTES = 256 << 10
MIN_CHUNK_BYTES = 32 << 10


def chunk_bytes(nbytes):
    """The bytes a product is made in: half the size it is measured against (the output,
    or the operand copied), within [MIN_CHUNK_BYTES, CHUNK_BYTES], so a small step's
    temporaries stay small next to its values too."""
    return min(CHUNK_BYTES, max(MIN_CHUNK_BYTES, nbytes // 2))
# signature -> the rule's algorithm (`modelled`), filled at each signature's first call.
CHOICES: dict = {}
# signature -> the fastest when timed (FLOWC_CONV_ALGO=tune), per process.
TUNED: dict = {}


def _dilated(xp, x, u):
    """x with u - 1 zeros between neighbours along each spatial dim."""
    if all(v == 1 for v in u):
        return x
    shape = x.shape[:2] + tuple((n - 1) * v + 1 if n else 0 for n, v in zip(x.shape[2:], u))
    out = xp.zeros(shape, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, v) for v in u)] = x
    return out


def flipped(w):
    """w with its kernel reversed along every spatial dim (a true convolution's kernel)."""
    return w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)]


def channel_bias(xp, b, O):
    """conv_bias's bias (any shape holding O values, or one) as an O-vector, or None
    (broadcast_to only for one value: it costs several microseconds a call)."""
    if b is None:
        return None
    b = b.reshape(-1)
    return b if b.shape[0] == O else xp.broadcast_to(b, (O,))


def channels_last(nd):
    """Axes taking (n, c, *spatial) to (n, *spatial, c): for transpose, not np.moveaxis,
    whose Python costs microseconds a call in a small conv."""
    return (0,) + tuple(range(2, 2 + nd)) + (1,)


def channels_first(nd):
    """Axes taking (n, *spatial, c) back to (n, c, *spatial)."""
    return (0, nd + 1) + tuple(range(1, nd + 1))


def _accumulator(xp, shape, dtype, bias):
    """A channels-last accumulator starting at zero, or at conv_bias's bias."""
    if bias is None:
        return xp.zeros(shape, dtype=dtype)
    acc = xp.empty(shape, dtype=dtype)
    acc[...] = bias
    return acc


def _padded(xp, x, pad):
    """x cropped by the negative pads and zero-padded by the positive ones."""
    crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(pad, x.shape[2:]))
    x = x[(slice(None), slice(None)) + crop]
    if all(lo <= 0 and hi <= 0 for lo, hi in pad):
        return x
    shape = x.shape[:2] + tuple(n + max(lo, 0) + max(hi, 0) for (lo, hi), n in
                                zip(pad, x.shape[2:]))
    out = xp.zeros(shape, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(max(lo, 0), max(lo, 0) + n) for (lo, _), n
                                           in zip(pad, x.shape[2:]))] = x
    return out


def check_operands(xshape, wshape, groups):
    """Refuse operands the graph could not check (sizes known only at run time) with what
    was expected and what came, instead of a reshape failing inside an algorithm."""
    if len(xshape) != len(wshape) or len(xshape) < 3:
        raise ValueError(f"conv: expected x (N, C, *spatial) and w (O, C/groups, *kernel) of "
                         f"the same rank >= 3, got x {tuple(xshape)} and w {tuple(wshape)}")
    C, O, Cg = xshape[1], wshape[0], wshape[1]
    if C % groups or O % groups or Cg * groups != C:
        raise ValueError(f"conv: x has {C} channels and w {O} outputs of {Cg} input channels "
                         f"each, so groups={groups} needs {C} == {Cg} * {groups} and both "
                         f"channel counts divisible by {groups}")


def out_sizes(xshape, K, stride, pad, dilation, lhs_dilation):
    """The output's spatial sizes (checked to be at least 1)."""
    osz = tuple((((h - 1) * u + 1 if h else 0) + lo + hi - d * (k - 1) - 1) // s + 1
                for h, k, s, (lo, hi), d, u in zip(xshape, K, stride, pad, dilation,
                                                   lhs_dilation))
    if any(o < 1 for o in osz):
        raise ValueError(f"conv: the kernel {tuple(K)} (dilation {tuple(dilation)}) is "
                         f"larger than the input {tuple(xshape)} padded by {tuple(pad)}")
    return osz


def _windows(xp, x, K, stride, dilation, osz):
    """(kernel offset, strided view x~[:, :, p * s + off * d]) for each kernel offset."""
    for off in itertools.product(*(range(k) for k in K)):
        yield off, x[(slice(None), slice(None)) + tuple(
            slice(i * d, i * d + s * (o - 1) + 1, s)
            for i, d, s, o in zip(off, dilation, stride, osz))]


@functools.lru_cache(maxsize=512)
def _column_copies(K, stride, dilation, osz):
    """im2col's copies for one geometry: [(index into the (N, *P, C, *K) columns, index
    into the padded x)] and the axes that bring the x view to the columns' order (computed
    once: for a small conv, building the slices and moveaxis's Python cost as much as the
    copies). One strided copy per kernel offset, or per output position when there are
    fewer of those (a weight gradient's conv has the kernel's few positions and the
    activation's many offsets: 576 tiny copies otherwise)."""
    nd = len(K)
    if math.prod(osz) < math.prod(K):
        return [((slice(None),) + pos, (slice(None), slice(None)) + tuple(
            slice(p * s, p * s + d * (k - 1) + 1, d) for p, s, d, k in
            zip(pos, stride, dilation, K))) for pos in itertools.product(*map(range, osz))], \
            None
    lead = (slice(None),) * (2 + nd)
    return [(lead + off, (slice(None), slice(None)) + tuple(
        slice(i * d, i * d + s * (o - 1) + 1, s) for i, d, s, o in
        zip(off, dilation, stride, osz))) for off in itertools.product(*map(range, K))], \
        channels_last(nd)


def columns(xp, x, K, stride, pad, dilation, lhs_dilation, osz, out=None):
    """The im2col matrix (N * positions, C * kernel) of x: rows (n, *p), columns (c, *i)
    holding x~[n, c, p * s + i * d] (x~ dilated by lhs_dilation, then padded)."""
    x = _padded(xp, _dilated(xp, x, lhs_dilation), pad)
    N, C = x.shape[:2]
    if out is None:
        out = xp.empty((N * math.prod(osz), C * math.prod(K)), dtype=x.dtype)
    cols = out.reshape((N,) + tuple(osz) + (C,) + tuple(K))
    copies, axes = _column_copies(tuple(K), tuple(stride), tuple(dilation), tuple(osz))
    for dst, src in copies:
        cols[dst] = x[src] if axes is None else x[src].transpose(axes)
    return out


def _per(budget, unit, whole):
    """How many units of `unit` bytes make a product of about `budget` bytes (all `whole`
    of them when budget is None: the GPU, whose memory the plan does not bound)."""
    return max(1, whole if budget is None else budget // max(1, unit))


def from_columns(xp, cols, w, bias, osz, res, chunked=True):
    """res (N, O, *osz) = the conv of the windows in cols (groups as column blocks) by w,
    plus bias (per channel, or None); the products a few images at a time when chunked."""
    O, groups, P = w.shape[0], cols.shape[1] // math.prod(w.shape[1:]), math.prod(osz)
    Og, N = O // groups, cols.shape[0] // P
    cols = cols.reshape(cols.shape[0], groups, cols.shape[1] // groups)
    per = _per(chunk_bytes(res.nbytes) if chunked else None, P * Og * cols.dtype.itemsize, N)
    for g in range(groups):
        wg = w[g * Og:(g + 1) * Og].reshape(Og, -1).T
        for n0 in range(0, N, per):
            n1 = min(N, n0 + per)
            y = cols[n0 * P:n1 * P, g] @ wg  # (images * P, Og)
            if bias is not None:  # conv_bias: added in cache, before the layout copy
                y += bias[g * Og:(g + 1) * Og]
            res[n0:n1, g * Og:(g + 1) * Og] = y.reshape(
                (n1 - n0,) + tuple(osz) + (Og,)).transpose(channels_first(len(osz)))
    return res


def _im2col(xp, x, w, a, osz, res):
    cols = columns(xp, x, w.shape[2:], a["stride"], a["pad"], a["dilation"],
                   a["lhs_dilation"], osz)
    from_columns(xp, cols, w, a["bias"], osz, res)


def _offsets(xp, x, w, a, osz, res):
    x = _padded(xp, _dilated(xp, x, a["lhs_dilation"]), a["pad"])
    K, (N, C), O, groups = w.shape[2:], x.shape[:2], w.shape[0], a["groups"]
    P, Cg, Og = math.prod(osz), C // groups, O // groups
    # Accumulate channels-last so each offset's product adds into a contiguous block.
    acc = _accumulator(xp, (N * P, O), x.dtype, a["bias"])
    nd = len(K)
    last = channels_last(nd)
    wt = w.transpose(last)  # (O, *K, Cg): w[:, :, off] rows as a (Cg, Og) right factor
    for off, src in _windows(xp, x, K, a["stride"], a["dilation"], osz):
        s = src.transpose(last).reshape(N * P, C)  # the only copy: x's size per offset
        for g in range(groups):
            acc[:, g * Og:(g + 1) * Og] += s[:, g * Cg:(g + 1) * Cg] @ \
                wt[(slice(g * Og, (g + 1) * Og),) + off].T
    res[...] = acc.reshape((N,) + osz + (O,)).transpose(channels_first(nd))


def _scatter_range(m_len, q_len, u, lo, off, s):
    """Input positions m (start, step) landing on output q = (u*m + lo - off) / s, as
    (m0, m_step, q0, q_step, count); count 0 when none lands inside."""
    g = math.gcd(u, s)
    m_step, q_step = s // g, u // g
    for m0 in range(min(m_step, m_len)):
        num = u * m0 + lo - off
        if num % s == 0:
            break
    else:
        return 0, 1, 0, 1, 0
    q0 = num // s
    if q0 < 0:  # skip ahead to the first m whose q is in range
        t = -(-(-q0) // q_step)
        m0, q0 = m0 + t * m_step, q0 + t * q_step
    if m0 >= m_len or q0 >= q_len:
        return 0, 1, 0, 1, 0
    count = min((m_len - 1 - m0) // m_step, (q_len - 1 - q0) // q_step) + 1
    return m0, m_step, q0, q_step, count


@functools.lru_cache(maxsize=512)
def _scatter_moves(M, osz, K, stride, pad, dilation, lhs_dilation):
    """Per kernel offset: (its slices of the input positions, of the output positions they
    add into), or None where it reaches no output (per geometry: the Python of a small
    conv's scatter cost as much as its adds)."""
    moves = []
    for off in itertools.product(*(range(k) for k in K)):
        r = [_scatter_range(m, q, u, lo, i * d, s) for m, q, u, (lo, _), i, d, s in
             zip(M, osz, lhs_dilation, pad, off, dilation, stride)]
        moves.append((tuple(slice(m0, m0 + ms * (c - 1) + 1, ms) for m0, ms, _, _, c in r),
                      tuple(slice(q0, q0 + qs * (c - 1) + 1, qs) for _, _, q0, qs, c in r))
                     if all(c for *_, c in r) else None)
    return moves


def _col2im(xp, x, w, a, osz, res):
    """res = the conv as products then scatter-adds: per group and run of kernel offsets,
    z[n, m, (offset, o)] = x[n, :, m] . w[o, :, offset] (one GEMM per image, x's image read
    as the transposed operand it is, so x is not copied), and each offset's slab of z added
    where its windows land in a channels-last accumulator (adds over runs of channels:
    2x faster than channels-first runs of a few positions), then one copy to res. The
    products are made the accumulator's size at most, beyond the accumulator itself."""
    K, (N, C), O, groups = w.shape[2:], x.shape[:2], w.shape[0], a["groups"]
    M, Cg, Og, KK = x.shape[2:], C // groups, O // groups, math.prod(K)
    Mf, nd = math.prod(M), len(M)
    xt = x.reshape(N, C, Mf).transpose(0, 2, 1)  # (N, M, C): each image's (M, C) F-ordered
    acc = _accumulator(xp, (N,) + tuple(osz) + (O,), x.dtype, a["bias"])
    moves = _scatter_moves(tuple(M), tuple(osz), tuple(K), tuple(a["stride"]), tuple(a["pad"]),
                           tuple(a["dilation"]), tuple(a["lhs_dilation"]))
    per = max(1, (chunk_bytes(res.nbytes) - acc.nbytes) // max(1, N * Mf * Og
                                                                 * x.dtype.itemsize))
    for g in range(groups):
        # (Cg, KK, Og): a run of kernel offsets is a block of columns of the GEMM's factor.
        wg = w[g * Og:(g + 1) * Og].reshape(Og, Cg, KK).transpose(1, 2, 0)
        for j0 in range(0, KK, per):
            j1 = min(KK, j0 + per)
            z = xp.matmul(xt[:, :, g * Cg:(g + 1) * Cg], wg[:, j0:j1].reshape(Cg, -1))
            z = z.reshape((N,) + tuple(M) + (j1 - j0, Og))  # z[n, *m, offset, o]
            for j in range(j0, j1):
                if moves[j] is not None:
                    src, dst = moves[j]
                    d = acc[(slice(None),) + dst + (slice(g * Og, (g + 1) * Og),)]
                    d += z[(slice(None),) + src + (j - j0,)]
    res[...] = acc.transpose(channels_first(nd))


_IMPLS = {"im2col": _im2col, "offsets": _offsets, "col2im": _col2im}


def candidates(lhs_dilation):
    """The algorithms FLOWC_CONV_ALGO=tune times (every one: each wins somewhere)."""
    return ALGORITHMS


SCRATCH_BYTES = 16 << 20  # an im2col scratch above this loses to offsets' small copies


def modelled(xshape, wshape, groups, lhs_dilation, osz, itemsize=4):
    """The algorithm a shape signature gets by default: a fixed rule, so every process and
    every run of a Program computes the same bits (the algorithms sum in different orders,
    and timing them picked by machine and moment: a saved Program rounded differently in
    another process). Fitted on one BLAS thread to LeNet's, the digits CNN's and a dozen
    ResNet-like convs with their gradients (tools/bench_conv.py reports, per signature, how
    far it is from the best forced algorithm):
    - an input-dilated conv: col2im, which multiplies none of the dilation's zeros (2-7x
      faster), unless there are too few channels per group for its GEMM (< 4);
    - fewer output positions than kernel offsets (a weight gradient's conv, whose kernel
      is the activation): im2col, filled one output position at a time;
    - fewer output than input channels (>= 4 of them): col2im, whose GEMM output and
      scatter-adds are the narrower side (1.1-3x faster; a full conv's input gradient also
      skips its padding's zeros);
    - an im2col scratch over SCRATCH_BYTES with at most 64 offsets: offsets;
    - else im2col.
    FLOWC_CONV_ALGO=tune times the candidates at the first call instead."""
    cg, og, KK = xshape[1] // groups, wshape[0] // groups, math.prod(wshape[2:])
    if any(u > 1 for u in lhs_dilation):
        return "col2im" if cg >= 4 else "im2col"
    P = math.prod(osz)
    if P < KK:
        return "im2col"
    if og < cg and cg >= 4:
        return "col2im"
    if xshape[0] * P * xshape[1] * KK * itemsize > SCRATCH_BYTES and KK <= 64:
        return "offsets"
    return "im2col"


def make_column_kernels(xp, chunked=True):
    """The kernels of the im2col lowering (flowc/ops/conv_cols.py): im2col, conv_cols,
    conv_wgrad; `chunked`: GEMM products a few images at a time (the CPU)."""
    def im2col(x, out=None, kernel=(1,), stride=(1,), pad=((0, 0),), dilation=(1,),
               lhs_dilation=(1,)):
        osz = out_sizes(x.shape[2:], kernel, stride, pad, dilation, lhs_dilation)
        return columns(xp, x, kernel, stride, pad, dilation, lhs_dilation, osz, out)

    def conv_cols(cols, w, b=None, out=None, spatial=(1,), flip=False, groups=1):
        w = flipped(w) if flip else w
        b = channel_bias(xp, b, w.shape[0])
        N = cols.shape[0] // math.prod(spatial)
        res = out if out is not None else xp.empty((N, w.shape[0]) + tuple(spatial),
                                                   dtype=w.dtype)
        return from_columns(xp, cols, w, b, spatial, res, chunked)

    def conv_wgrad(cols, gt, out=None, kernel=(1,)):
        O, N = gt.shape[:2]
        P = math.prod(gt.shape[2:])
        # (O, C * KK): the sum over (n, p) as GEMMs of a few images' rows each, so the copy
        # of the transposed cotangent stays small.
        per = _per(chunk_bytes(gt.nbytes) if chunked else None, O * P * gt.dtype.itemsize, N)
        r = None
        for n0 in range(0, max(N, 1), per):
            n1 = min(N, n0 + per)
            part = gt[:, n0:n1].reshape(O, -1) @ cols[n0 * P:n1 * P]
            if r is None:
                r = part
            else:
                r += part
        res = out if out is not None else xp.empty((cols.shape[1] // math.prod(kernel), O)
                                                   + tuple(kernel), dtype=gt.dtype)
        res[...] = xp.swapaxes(r.reshape((O, -1) + tuple(kernel)), 0, 1)
        return res
    return {"im2col": im2col, "conv_cols": conv_cols, "conv_wgrad": conv_wgrad}


def make_conv(xp, choose=True):
    """The conv kernel for array module xp; `choose` times the candidates at each shape
    signature's first call (off on the GPU, where timing needs a sync: im2col there)."""
    run = _make_run(xp, choose)

    def conv(x, w, b=None, out=None, **attrs):
        return run(x, w, b, out=out, **attrs)[0]
    return conv


def make_prepare(xp, choose=True):
    """Kernel.prepare for conv: a per-instruction kernel whose `algorithm` attribute names
    the algorithm its last call ran (profile and explain print it as conv[name])."""
    run = _make_run(xp, choose)

    def prepare(**attrs):
        def conv(x, w, b=None, out=None):
            res, conv.algorithm = run(x, w, b, out=out, **attrs)
            return res
        conv.algorithm = None
        return conv
    return prepare


def _make_run(xp, choose):
    """run(x, w, b=None, out=None, **attrs) -> (result, the algorithm that ran); b: conv_bias's
    per-channel bias (any shape holding O or 1 values)."""

    def run(x, w, b=None, stride=(1,), pad=((0, 0),), dilation=(1,), lhs_dilation=(1,),
            groups=1, flip=False, out=None, algorithm=None):
        check_operands(x.shape, w.shape, groups)
        b = channel_bias(xp, b, w.shape[0])
        w = flipped(w) if flip else w
        a = dict(stride=stride, pad=pad, dilation=dilation, lhs_dilation=lhs_dilation,
                 groups=groups, bias=b)
        osz = out_sizes(x.shape[2:], w.shape[2:], stride, pad, dilation, lhs_dilation)
        res = out if out is not None else xp.empty((x.shape[0], w.shape[0]) + osz,
                                                   dtype=x.dtype)
        algo = algorithm or os.environ.get("FLOWC_CONV_ALGO") or None
        if algo in (None, "tune") and not choose:
            algo = "im2col"
        sig = (x.shape, w.shape, str(x.dtype), stride, pad, dilation, lhs_dilation, groups)
        if algo is None:
            algo = CHOICES.get(sig)
            if algo is None:
                algo = CHOICES[sig] = modelled(x.shape, w.shape, groups, lhs_dilation, osz,
                                                x.dtype.itemsize)
        elif algo == "tune":
            algo = TUNED.get(sig)
        if algo is not None:
            _IMPLS[algo](xp, x, w, a, osz, res)
            return res, algo
        # FLOWC_CONV_ALGO=tune, first call of this signature: run every candidate (each result
        # is the answer, so nothing is wasted but time) and keep the fastest. It can beat the
        # rule (BLAS speed for small, skinny GEMMs varies by machine and thread count), at the
        # price of results that differ in the last bits between processes.
        # Two rounds, the second in reverse order, best of each: one timing picked a 1.4x
        # slower LeNet step on a loaded machine (the first candidate ran cold).
        names = candidates(lhs_dilation)
        times = dict.fromkeys(names, float("inf"))
        for order in (names, names[::-1]):
            for name in order:
                t = time.perf_counter()
                _IMPLS[name](xp, x, w, a, osz, res)
                times[name] = min(times[name], time.perf_counter() - t)
        TUNED[sig] = best = min(names, key=times.get)
        if best != names[0]:  # res holds the last candidate's rounding: make the first
            _IMPLS[best](xp, x, w, a, osz, res)  # call equal bit for bit to the later ones
        return res, best
    return run
