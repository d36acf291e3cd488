"""Cell: the mutable holder of one parameter's value, shared by every executable that uses it."""


class Cell:
    """Holds a parameter's current array; executables read `.value` at call start and swap in
    the updated array only after every output and update has been computed."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Cell({getattr(self.value, 'shape', '?')}, {getattr(self.value, 'dtype', '?')})"
