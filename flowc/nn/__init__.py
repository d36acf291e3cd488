"""Models people declare: optimizers as graph updates (layers and losses come later)."""
from . import optim  # noqa: F401
