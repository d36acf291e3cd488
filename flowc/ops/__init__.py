"""The op registry and every op definition (importing this package registers them all)."""
from . import (api, api_control, api_conv, api_grad, api_index, api_linalg, api_make,  # noqa: F401
               api_norm, api_shape, api_vocab)
from . import (collective, control, conv, conv_cols, elementwise, fused, gemm, index_ops, linalg,  # noqa: F401
               linalg_ops, nnet, pool, random_ops, reductions, select_ops, shape, size_ops,
               special, vocab_ops)
from .registry import OPS, OpDef, get_op, register  # noqa: F401
