"""Automatic differentiation: reverse mode (grad, vjp)."""
from .reverse import grad, vjp_many  # noqa: F401
from .batching import batch  # noqa: F401,E402
from .forward import Lop, Rop, jvp, vjp  # noqa: F401,E402
from .jacobian import hessian, hvp, jacobian  # noqa: F401,E402
