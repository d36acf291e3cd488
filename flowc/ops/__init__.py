"""The op registry and every op definition (importing this package registers them all)."""
from . import api, api_grad, api_linalg  # noqa: F401
from . import (elementwise, fused, gemm, linalg, linalg_ops, nnet, random_ops,  # noqa: F401
               reductions, select_ops, shape, special)
from .registry import OPS, OpDef, get_op, register  # noqa: F401
