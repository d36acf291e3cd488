"""Convolutions as users write them: fc.conv (any number of spatial dims), conv1d, conv2d,
conv3d, with PyTorch's argument names (a correlation unless flip=True), on the `conv` op."""
from __future__ import annotations

from . import api as F
from .build import as_tensor, op_error
from .conv import conv as _conv


def _per_dim(name, v, nd, fn):
    """An int for every spatial dim, or one per dim."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * nd
    if isinstance(v, (tuple, list)) and len(v) == nd and all(
            isinstance(i, int) and not isinstance(i, bool) for i in v):
        return tuple(v)
    raise op_error(fn, [], f"{name} must be an int or {nd} ints, got {v!r}")


def _pads(padding, nd, kernel, dilation, stride, fn):
    """((lo, hi), ...) from an int, "valid", "same", ints per dim or (lo, hi) pairs."""
    if padding == "valid":
        return ((0, 0),) * nd
    if padding == "same":
        if any(s != 1 for s in stride):
            raise op_error(fn, [], f"padding='same' needs stride 1, got stride {stride}")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in total)  # the extra pad at the end
    if isinstance(padding, (tuple, list)) and len(padding) == nd and all(
            isinstance(p, (tuple, list)) and len(p) == 2 for p in padding):
        return tuple((int(lo), int(hi)) for lo, hi in padding)
    return tuple((p, p) for p in _per_dim("padding", padding, nd, fn))


def conv(x, w, stride=1, padding=0, dilation=1, groups=1, lhs_dilation=1, flip=False,
         fn="conv"):
    """Convolution of x (N, C, *spatial) with w (O, C/groups, *kernel): a correlation (as in
    PyTorch and JAX) unless flip=True (a true convolution, Theano's filter_flip). padding:
    an int, ints per dim, (lo, hi) pairs per dim (negative crops), "valid" or "same";
    lhs_dilation spreads the input (the stride of a transposed conv)."""
    x, w = as_tensor(x), as_tensor(w)
    nd = w.ndim - 2
    if nd < 1 or x.ndim != w.ndim:
        raise op_error(fn, [x, w], "expected x (N, C, *spatial) and w (O, C/groups, "
                       "*kernel) of the same rank >= 3")
    stride = _per_dim("stride", stride, nd, fn)
    dilation = _per_dim("dilation", dilation, nd, fn)
    pad = _pads(padding, nd, w.type.shape[2:], dilation, stride, fn)
    if not isinstance(groups, int) or isinstance(groups, bool):
        raise op_error(fn, [], f"groups must be an int, got {groups!r}")
    return _conv(x, w, stride=stride, pad=pad, dilation=dilation,
                 lhs_dilation=_per_dim("lhs_dilation", lhs_dilation, nd, fn), groups=groups,
                 flip=bool(flip))


def _weight_of_rank(w, nd, name, layout):
    """w as a tensor of rank nd + 2 ({layout}, *kernel), else an error naming the op."""
    w = as_tensor(w)
    if w.ndim != nd + 2:
        raise op_error(name, [w], f"expected a weight of rank {nd + 2} ({layout}, "
                       f"{', '.join('k' + str(i) for i in range(nd))}), got rank {w.ndim}")
    return w


def _of_rank(nd, name):
    def f(x, w, stride=1, padding=0, dilation=1, groups=1, flip=False):
        w = _weight_of_rank(w, nd, name, "O, C/groups")
        return conv(x, w, stride, padding, dilation, groups, flip=flip, fn=name)
    f.__name__ = name
    f.__doc__ = (f"{nd}-D convolution of x (N, C, {nd} spatial dims) with w (O, C/groups, "
                 f"{nd} kernel dims); see fc.conv for the arguments.")
    return f


conv1d = _of_rank(1, "conv1d")
conv2d = _of_rank(2, "conv2d")
conv3d = _of_rank(3, "conv3d")


def conv_transpose(x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                   fn="conv_transpose"):
    """Transposed convolution of x (N, C_in, *spatial) with w (C_in, C_out/groups, *kernel),
    PyTorch's layout and sizes: out = (h - 1) * stride - 2 * padding + dilation * (k - 1)
    + output_padding + 1. It is the gradient of conv with respect to its input."""
    x, w = as_tensor(x), as_tensor(w)
    nd = w.ndim - 2
    if nd < 1 or x.ndim != w.ndim:
        raise op_error(fn, [x, w], "expected x (N, C_in, *spatial) and w (C_in, C_out/groups, "
                       "*kernel) of the same rank >= 3")
    s = _per_dim("stride", stride, nd, fn)
    p = _per_dim("padding", padding, nd, fn)
    op = _per_dim("output_padding", output_padding, nd, fn)
    d = _per_dim("dilation", dilation, nd, fn)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise op_error(fn, [x, w], f"groups must be a positive int, got {groups!r}")
    if min(s) < 1 or min(d) < 1 or min(p) < 0 or min(op) < 0:
        raise op_error(fn, [x, w], f"stride and dilation must be at least 1 and padding, "
                       f"output_padding at least 0, got stride {s}, dilation {d}, padding "
                       f"{p}, output_padding {op}")
    # PyTorch's rule: output_padding only picks among sizes that strides or dilation make
    # ambiguous, so it must be below one of them.
    if any(o >= max(si, di) for o, si, di in zip(op, s, d)):
        raise op_error(fn, [x, w], f"output_padding {op} must be smaller than stride {s} or "
                       f"dilation {d} in each dim")
    if x.dtype != w.dtype:
        raise op_error(fn, [x, w], f"x and w must have one float dtype, got {x.dtype} and "
                       f"{w.dtype}")
    cin, og = w.type.shape[0], w.type.shape[1]
    K = tuple(w.type.shape[2:])
    if None in K:
        raise op_error(fn, [x, w], "the kernel's spatial sizes must be known")
    c = x.type.shape[1]
    if cin is not None and cin % groups:
        raise op_error(fn, [x, w], f"groups={groups} must divide w's {cin} input channels")
    if c is not None and cin is not None and c != cin:
        raise op_error(fn, [x, w], f"x has {c} channels but w (C_in, C_out/groups, *kernel) "
                       f"expects {cin}")
    # conv's kernel layout is (O, C/groups, *K): swap in and out channels within each group.
    sp = tuple(range(3, 3 + nd))
    if groups == 1:
        wt = F.transpose(w, (1, 0) + tuple(range(2, 2 + nd)))
    else:
        if cin is None:
            raise op_error(fn, [x, w], f"groups={groups} needs w's input channels known")
        cg = cin // groups
        wt = F.transpose(w.reshape((groups, cg, og if og is not None else -1) + K),
                         (0, 2, 1) + sp).reshape((-1, cg) + K)
    pad = tuple((di * (k - 1) - pi, di * (k - 1) - pi + oi)
                for k, pi, oi, di in zip(K, p, op, d))
    for i, (h, k) in enumerate(zip(x.type.shape[2:], K)):
        if h is not None and (h - 1) * s[i] - 2 * p[i] + d[i] * (k - 1) + op[i] + 1 < 1:
            raise op_error(fn, [x, w], f"spatial dim {i} would be empty: ({h} - 1) * stride "
                           f"{s[i]} - 2 * padding {p[i]} + dilation {d[i]} * ({k} - 1) + "
                           f"output_padding {op[i]} + 1 < 1")
    # Scatter form = the input spread by the stride, then a true (flipped) convolution.
    return _conv(x, wt, stride=(1,) * nd, pad=pad, dilation=d, lhs_dilation=s,
                 groups=groups, flip=True)


def _transpose_of_rank(nd, name):
    def f(x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        w = _weight_of_rank(w, nd, name, "C_in, C_out/groups")
        return conv_transpose(x, w, stride, padding, output_padding, groups, dilation, fn=name)
    f.__name__ = name
    f.__doc__ = (f"{nd}-D transposed convolution of x (N, C_in, {nd} spatial dims) with w "
                 f"(C_in, C_out/groups, {nd} kernel dims); see fc.conv_transpose.")
    return f


conv_transpose1d = _transpose_of_rank(1, "conv_transpose1d")
conv_transpose2d = _transpose_of_rank(2, "conv_transpose2d")
conv_transpose3d = _transpose_of_rank(3, "conv_transpose3d")
