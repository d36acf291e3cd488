"""theano.sandbox: only rng_mrg (MRG_RandomStreams) is covered."""
from . import rng_mrg  # noqa: F401
