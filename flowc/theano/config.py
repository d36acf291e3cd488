"""theano.config: only floatX is read by flowc.theano."""


class _Config:
    """Theano's config object; floatX sets the dtype of T.scalar/vector/matrix/... inputs."""

    def __init__(self):
        self.floatX = "float64"


config = _Config()
