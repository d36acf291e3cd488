"""theano.tensor.nnet: activations and the classic cross-entropies."""
from __future__ import annotations

from ...ops import api as F
from ...ops.api_linalg import take_along_axis
from ..unsupported import unsupported

sigmoid = F.sigmoid
relu = F.relu
softplus = F.softplus


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


def __getattr__(name):
    if name.startswith("__"):  # import machinery, hasattr(), copy: not a Theano feature
        raise AttributeError(name)
    unsupported(f"theano.tensor.nnet.{name}")
