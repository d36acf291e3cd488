"""theano.tensor.nnet: activations and the classic cross-entropies."""
from __future__ import annotations

from ...ops import api as F
from ...ops.api_linalg import take_along_axis
from ...ops.build import op_error
from ..unsupported import unsupported

sigmoid = F.sigmoid
softplus = F.softplus
# Theano's fast approximations; flowc computes the exact sigmoid (at most the same cost).
ultra_fast_sigmoid = F.sigmoid


def relu(x, alpha=0):
    """max(x, 0), or x * alpha below 0 (Theano's leaky form) where alpha is not 0."""
    x = F.as_tensor(x)
    if isinstance(alpha, (int, float)) and alpha == 0:
        return F.relu(x)
    return F.where(x > 0, x, x * alpha)


def hard_sigmoid(x):
    """Theano's piecewise-linear sigmoid: clip(0.2 * x + 0.5, 0, 1)."""
    return F.clip(F.as_tensor(x) * 0.2 + 0.5, 0.0, 1.0)


def elu(x, alpha=1):
    """x above 0, alpha * (exp(x) - 1) below."""
    x = F.as_tensor(x)
    return F.where(x > 0, x, alpha * F.expm1(x))


def selu(x):
    """The scaled elu with Klambauer et al.'s constants, as Theano defines it."""
    return 1.0507009873554805 * elu(x, 1.6732632423543772)


def softsign(x):
    """x / (1 + |x|)."""
    x = F.as_tensor(x)
    return x / (1 + F.abs(x))


def logsoftmax(x, axis=-1):
    """log(softmax(x)) computed stably (x - logsumexp); a vector gives a one-row matrix."""
    x = F.as_tensor(x)
    if x.ndim == 1:
        x = F.expand_dims(x, 0)
    return x - F.logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis=-1):
    """Row-wise softmax (Theano's default axis is the last one); a vector gives a one-row
    matrix, as Theano's softmax does."""
    x = F.as_tensor(x)
    if x.ndim == 1:
        x = F.expand_dims(x, 0)
    return F.softmax(x, axis)


def binary_crossentropy(output, target):
    """-(target * log(output) + (1 - target) * log(1 - output)), elementwise."""
    return -(target * F.log(output) + (1 - target) * F.log(1 - output))


def categorical_crossentropy(coding_dist, true_dist):
    """Per-row cross-entropy; true_dist is one-hot/probabilities (matrix) or class indices."""
    if true_dist.ndim == coding_dist.ndim:
        return -F.sum(true_dist * F.log(coding_dist), axis=-1)
    if true_dist.ndim == coding_dist.ndim - 1 and true_dist.dtype.startswith(("int", "uint")):
        picked = take_along_axis(coding_dist, F.expand_dims(true_dist, -1), -1)
        return -F.squeeze(F.log(picked), -1)
    unsupported(f"categorical_crossentropy with targets of type {true_dist.type}")


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip=True, image_shape=None, filter_dilation=(1, 1),
           num_groups=1, unshared=False, **kwargs):
    """Theano's 2-D convolution of input (batch, channels, rows, cols) with filters (out,
    channels / num_groups, rows, cols): a true convolution by default (filter_flip=True).
    border_mode: 'valid', 'full', 'half', an int or (rows, cols) pads, as in Theano."""
    from ...ops.api_conv import conv
    if unshared:
        unsupported("theano.tensor.nnet.conv2d(unshared=True)")
    if kwargs:
        unsupported(f"theano.tensor.nnet.conv2d({', '.join(sorted(kwargs))}=...)")
    filters = F.as_tensor(filters)
    if None in filters.type.shape[1:]:
        if filter_shape is None or None in tuple(filter_shape)[1:]:
            raise op_error("conv2d", [], f"needs the filters' size when the graph is built: "
                           f"filters are {filters.type.short()}; pass filter_shape= or use "
                           f"a shared variable")
        from ...ops.api_vocab import specify_shape
        filters = specify_shape(filters, tuple(filter_shape))
    input = F.as_tensor(input)
    hint = input_shape if input_shape is not None else image_shape
    if hint is not None and None in input.type.shape[2:]:
        # Theano's shape hint fixes sizes the graph does not know, which conv's gradient
        # needs (it is checked at run time, as T.specify_shape is).
        from ...ops.api_vocab import specify_shape
        if len(tuple(hint)) != 4:
            raise op_error("conv2d", [], f"input_shape must have 4 entries (batch, channels, "
                             f"rows, cols; None where unknown), got {hint!r}")
        input = specify_shape(input, tuple(hint))
    dil = _pair("filter_dilation", filter_dilation)
    k = [d * (n - 1) + 1 for d, n in zip(dil, filters.type.shape[2:])]
    if border_mode == "valid":
        pad = (0, 0)
    elif border_mode == "full":
        pad = (k[0] - 1, k[1] - 1)
    elif border_mode == "half":
        pad = (k[0] // 2, k[1] // 2)
    else:
        pad = _pair("border_mode", border_mode)
        if min(pad) < 0:
            raise op_error("conv2d", [], f"border_mode must be 'valid', 'full', 'half' or "
                             f"non-negative pads, got {border_mode!r}")
    return conv(input, filters, stride=_pair("subsample", subsample), padding=pad,
                dilation=dil, groups=num_groups, flip=filter_flip, fn="conv2d")


def _pair(name, v):
    """(a, b) from an int or a pair of ints (Theano's 2-D arguments)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(
            isinstance(i, int) and not isinstance(i, bool) for i in v):
        return tuple(v)
    raise op_error("conv2d", [], f"{name} must be an int or a pair of ints, got {v!r}")


def __getattr__(name):
    if name.startswith("__"):  # import machinery, hasattr(), copy: not a Theano feature
        raise AttributeError(name)
    unsupported(f"theano.tensor.nnet.{name}")
