"""The op registry and every op definition (importing this package registers them all)."""
from . import api  # noqa: F401
from . import elementwise, linalg, nnet, reductions, shape  # noqa: F401
from .registry import OPS, OpDef, get_op, register  # noqa: F401
