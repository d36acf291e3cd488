"""One convolution op for 1-, 2- and 3-D, closed under differentiation: both gradients are
`conv` again with other attrs (JAX's conv_general_dilated, without its layouts).

conv(x, w; stride, pad, dilation, lhs_dilation, groups, flip)
  x: (N, C, *S), w: (O, C/groups, *K) -> (N, O, *S_out), one attr entry per spatial dim.
  Per dim, with input dilation u (lhs_dilation: the stride of a transposed conv), pads
  (lo, hi) (negative crops), kernel dilation d and stride s:
    Hu = (H - 1) * u + 1,  Ke = d * (k - 1) + 1,  H_out = (Hu + lo + hi - Ke) // s + 1
  y[n, o, p] = sum_{c, i} w[o, c, i'] * x~[n, group(o) * C/groups + c, p * s + i * d],
  x~ the dilated, padded input; i' = k - 1 - i when flip (a true convolution, Theano's
  filter_flip) else i (a correlation, PyTorch's and JAX's meaning).
The derivative formulas are JAX's (_conv_general_dilated_transpose_lhs/rhs), with groups
unfolded so that no batch_group_count is needed; ../shared/briefs/convolution.md checks them.
"""
from __future__ import annotations

from ..ir.errors import ShapeError
from ..ir.types import TensorType, is_float
from . import api as F
from .build import apply
from .registry import OpDef, register

def out_size(h, k, stride, pad, dilation, lhs_dilation):
    """One spatial dim's output size (None if h or k is unknown)."""
    if h is None or k is None:
        return None
    hu = (h - 1) * lhs_dilation + 1 if h else 0
    return (hu + pad[0] + pad[1] - dilation * (k - 1) - 1) // stride + 1


def _infer(types, attrs):
    x, w = types
    nd = x.ndim - 2
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ShapeError(f"conv takes x (N, C, *spatial) and w (O, C/groups, *kernel) of the "
                         f"same rank >= 3, got {x.short()} and {w.short()}")
    if x.dtype != w.dtype or not is_float(x.dtype):
        raise ShapeError(f"conv needs x and w of one float dtype, got {x.short()} and "
                         f"{w.short()}")
    for name in ("stride", "pad", "dilation", "lhs_dilation"):
        if len(attrs[name]) != nd:
            raise ShapeError(f"conv of {nd} spatial dims needs {nd} {name} entries, got "
                             f"{attrs[name]!r}")
    for name in ("stride", "dilation", "lhs_dilation"):
        if any(v < 1 for v in attrs[name]):
            raise ShapeError(f"conv {name} must be at least 1, got {attrs[name]!r}")
    g = attrs["groups"]
    c, o, cg = x.shape[1], w.shape[0], w.shape[1]
    if g < 1 or (c is not None and c % g) or (o is not None and o % g):
        raise ShapeError(f"conv groups={g} must divide the input channels ({c}) and the "
                         f"output channels ({o})")
    if c is not None and cg is not None and c // g != cg:
        raise ShapeError(f"conv: x has {c} channels, so w needs {c // g} input channels per "
                         f"group (groups={g}), got {cg} (w is {w.short()})")
    sizes = []
    for i, (h, k) in enumerate(zip(x.shape[2:], w.shape[2:])):
        n = out_size(h, k, attrs["stride"][i], attrs["pad"][i], attrs["dilation"][i],
                     attrs["lhs_dilation"][i])
        if n is not None and n < 1:
            raise ShapeError(f"conv: the kernel ({k} wide, dilation {attrs['dilation'][i]}) "
                             f"is larger than spatial dim {i} of the padded input ({h} with "
                             f"pads {attrs['pad'][i]})")
        sizes.append(n)
    return TensorType(x.dtype, (x.shape[0], o) + tuple(sizes))


def conv(x, w, **attrs):
    """The conv node (attrs as in the module docstring, normalized by the API)."""
    return apply("conv", [x, w], **attrs)


def _flip(w):
    nd = w.ndim - 2
    return w[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]


def _vjp(c):
    x, w = c.inputs
    g, a = c.g, c.attrs
    G, nd = a["groups"], x.ndim - 2
    if g.type.shape != c.out.type.shape:
        # A cotangent may know less than the output it stands for (a matmul's gradient
        # against an input of unknown size); the transposed convs below need its sizes.
        g = apply("specify_shape", [g], shape=tuple(
            o if o is not None else h for o, h in zip(c.out.type.shape, g.type.shape)))
    S, K = x.type.shape[2:], w.type.shape[2:]
    O = c.out.type.shape[2:]
    if None in K:
        raise ShapeError("the gradient of conv needs the kernel's spatial sizes when the "
                         f"graph is built, got a kernel {w.type.short()}: declare it with "
                         "them (a param has them; an input: fc.input('w', (O, C, kh, kw))). "
                         "A second derivative through the kernel's gradient also needs the "
                         "input's: fc.input('x', (None, C, H, W))")
    s, d, u, pad = a["stride"], a["dilation"], a["lhs_dilation"], a["pad"]
    Ke = [d[i] * (K[i] - 1) + 1 for i in range(nd)]
    known = None not in S and None not in O
    if known:  # the exact pads: each transposed conv makes exactly the sizes wanted
        Hu = [(S[i] - 1) * u[i] + 1 for i in range(nd)]
        dx_hi = [Hu[i] - 1 + pad[i][0] - (O[i] - 1) * s[i] for i in range(nd)]
        dw_hi = [(O[i] - 1) * s[i] + Ke[i] - Hu[i] - pad[i][0] for i in range(nd)]
    else:
        # Sizes known only at run time: the window positions the forward dropped at the
        # high end (0 <= r < s of them) are unknown, so pad for the most (r = s - 1) and
        # crop: dx to x's sizes, dw to the kernel's.
        dx_hi = [Ke[i] - 1 - pad[i][1] + s[i] - 1 for i in range(nd)]
        dw_hi = [pad[i][1] for i in range(nd)]
    sp = tuple(range(3, 3 + nd))
    # Sizes as values where unknown (a batch, or the channels a second derivative's
    # operands carry): x.shape[k] is an int or a dim node, and reshape takes either.
    n, cg, o = x.shape[0], w.shape[1], w.shape[0]
    og = o // G if isinstance(o, int) else -1
    # dx: g dilated by the stride, convolved with w's channels swapped and flipped.
    wt = F.transpose(w.reshape((G, og, cg) + tuple(K)), (0, 2, 1) + sp)
    wt = wt.reshape((-1, og if og != -1 else o // G) + tuple(K))
    dx = conv(g, wt, stride=tuple(u), lhs_dilation=tuple(s), dilation=tuple(d), groups=G,
              flip=not a["flip"],
              pad=tuple((Ke[i] - 1 - pad[i][0], dx_hi[i]) for i in range(nd)))
    xs = x.shape
    if not known:
        dx = dx[(slice(None), slice(None)) + tuple(slice(None, xs[2 + i]) for i in range(nd))]
    # dw: x (channels within a group as the batch) convolved with g (its batch as channels).
    Og = tuple(g.shape[2:]) if not known else tuple(O)
    if G == 1:  # plain transposes: no sizes needed (the O2 column sharing matches them)
        xt = F.transpose(x, (1, 0) + tuple(range(2, 2 + nd)))
        gt = F.transpose(g, (1, 0) + tuple(range(2, 2 + nd)))
    else:
        xt = F.transpose(x.reshape((n, G, cg) + tuple(xs[2:])), (2, 1, 0) + sp)
        xt = xt.reshape((cg, -1) + tuple(xs[2:]))
        gt = F.transpose(g.reshape((n, G, og) + Og), (1, 2, 0) + sp)
        gt = gt.reshape((o, -1) + Og)
    r = conv(xt, gt, stride=tuple(d), dilation=tuple(s), lhs_dilation=tuple(u), groups=G,
             flip=False, pad=tuple((pad[i][0], dw_hi[i]) for i in range(nd)))
    dw = F.transpose(r, (1, 0) + tuple(range(2, 2 + nd)))
    if not known:
        dw = apply("specify_shape", [dw[(slice(None), slice(None)) + tuple(
            slice(None, k) for k in K)]], shape=tuple(w.type.shape))
    return [dx, _flip(dw) if a["flip"] else dw]


def _jvp(c):
    (x, w), (tx, tw) = c.inputs, c.tangents
    terms = ([conv(tx, w, **c.attrs)] if tx is not None else []) + \
        ([conv(x, tw, **c.attrs)] if tw is not None else [])
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _batch(c):
    """A batched x folds into N; a batched w into the output channels of each group; both
    become groups of their own (per-example gradients are one grouped conv, as in JAX)."""
    (x, w), (bx, bw) = c.inputs, c.batched
    a = dict(c.attrs)
    G = a["groups"]
    nd = x.ndim - 2 - bx
    rest = tuple(range(3, 3 + nd))
    if bx and not bw:
        y = conv(F.reshape(x, (-1,) + tuple(x.type.shape[2:])), w, **a)
        return y.reshape((x.shape[0], x.shape[1]) + tuple(y.type.shape[1:]))
    B = w.shape[0]
    # Channels as values where unknown: a pullback's conv takes a cotangent as its kernel,
    # whose channels hold the batch (x.shape gives ints where known, dim nodes elsewhere).
    O, Cg, K = w.shape[1], w.shape[2], tuple(w.type.shape[3:])
    Og = O // G
    if bw and not bx:
        wg = F.reshape(F.transpose(F.reshape(w, (B, G, Og, Cg) + K), (1, 0, 2, 3) + tuple(
            r + 1 for r in rest)), (-1, Cg) + K)
        y = conv(x, wg, **a)  # (N, G * B * Og, *out)
        out = tuple(y.type.shape[2:])
        y = y.reshape((x.shape[0], G, B, Og) + out)
        y = F.transpose(y, (2, 0, 1, 3) + tuple(range(4, 4 + nd)))
        return y.reshape((B, x.shape[0], O) + out)
    xs = F.transpose(x, (1, 0, 2) + tuple(range(3, 3 + nd)))
    xs = xs.reshape((x.shape[1], -1) + tuple(x.type.shape[3:]))  # (N, B * C, *S)
    if not isinstance(B, int):
        raise ShapeError("batching conv over both operands needs a known batch size")
    a["groups"] = G * B
    y = conv(xs, F.reshape(w, (-1, Cg) + K), **a)  # (N, B * O, *out)
    out = tuple(y.type.shape[2:])
    y = y.reshape((x.shape[1], B, O) + out)
    return F.transpose(y, (1, 0, 2) + tuple(range(3, 3 + nd)))


register(OpDef("conv", 2, _infer, vjp=_vjp, jvp=_jvp, batch=_batch, unbroadcasts=True,
               attrs={"stride": (1,), "pad": ((0, 0),), "dilation": (1,),
                      "lhs_dilation": (1,), "groups": 1, "flip": False},
               doc="N-D convolution: stride, pads (negative crops), kernel and input "
                   "dilation, groups, flip; its gradients are conv again"))


def bias_channels(ytype, btype):
    """True when b (btype) broadcasts into y (ytype, N, O, *spatial) along the channel
    axis alone: shaped (1, O, 1, ...), (O, 1, ...) or (1, ..., 1) with O known."""
    o, nd = ytype.shape[1], ytype.ndim
    if o is None or btype.ndim > nd or btype.dtype != ytype.dtype:
        return False
    shape = (1,) * (nd - btype.ndim) + tuple(btype.shape)
    return all(s == 1 for i, s in enumerate(shape) if i != 1) and shape[1] in (1, o)


def _bias_infer(types, attrs):
    x, w, b = types
    y = _infer([x, w], attrs)
    if not bias_channels(y, b):
        raise ShapeError(f"conv_bias needs a bias of {y.dtype} broadcasting along the "
                         f"channels of {y.short()}, got {b.short()}")
    return y


# conv(x, w) + b for a per-channel b, with b added to the GEMM's rows before the layout
# copy (made by the O2 specialize pass; like gemm, no derivative rules: it exists only after
# autodiff).
register(OpDef("conv_bias", 3, _bias_infer, differentiable=False,
               attrs={"stride": (1,), "pad": ((0, 0),), "dilation": (1,),
                      "lhs_dilation": (1,), "groups": 1, "flip": False},
               doc="conv(x, w) + b with a per-channel b folded into the conv's GEMM (made "
                   "by the O2 specialize pass)"))
