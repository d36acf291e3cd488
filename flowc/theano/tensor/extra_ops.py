"""theano.tensor.extra_ops: to_one_hot, repeat, squeeze."""
from __future__ import annotations

from ...ops.api_vocab import one_hot
from ..unsupported import unsupported
from .basic import repeat, squeeze  # noqa: F401


def to_one_hot(y, nb_class, dtype=None):
    """Rows of the identity: one_hot(y, nb_class) (floatX by default)."""
    from ..config import config
    return one_hot(y, nb_class, dtype or config.floatX)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    unsupported(f"theano.tensor.extra_ops.{name}")


