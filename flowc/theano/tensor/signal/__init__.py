"""theano.tensor.signal: pooling (`pool.pool_2d`)."""
from . import pool  # noqa: F401
