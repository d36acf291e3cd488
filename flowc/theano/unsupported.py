"""One place that says which Theano feature flowc.theano does not cover."""


def unsupported(feature: str):
    """Raise NotImplementedError naming the Theano feature."""
    raise NotImplementedError(
        f"{feature} is a Theano feature that flowc.theano does not support; "
        "see flowc/theano/README.md for what is covered")
