"""theano.config: only floatX is read by flowc.theano; the warn flags are accepted."""


class _Flags:
    """A namespace that takes any flag (theano.config.warn.subtensor_merge_bug = False):
    they silence Theano's own warnings, which flowc does not have."""


class _Config:
    """Theano's config object; floatX sets the dtype of T.scalar/vector/matrix/... inputs."""

    def __init__(self):
        self.floatX = "float64"
        self.warn = _Flags()


config = _Config()
