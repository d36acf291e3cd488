"""flowc: declare a model as a static graph, differentiate it, compile it, draw it.

    import flowc as fc
    x = fc.input("x", shape=(None, 3)); w = fc.param("w", np.zeros(3))
    cost = fc.mean(fc.sigmoid(x @ w)); gw = fc.grad(cost, w)
    f = fc.function([x], cost, updates=[(w, w - 0.1 * gw)])
"""
from .autodiff.batching import batch
from .autodiff.forward import Lop, Rop, jvp, vjp
from .autodiff.jacobian import hessian, hvp, jacobian
from .autodiff.reverse import grad
from .checked import CheckError
from .function import Function, function
from .gradcheck import check_grad, numerical_grad
from .ir.errors import (ArgumentError, DisconnectedGradientWarning, FlowcError, GradError,
                        GraphError, InputError, InputShapeError, MissingInputError, ShapeError)
from .ir.graph import Graph, default_graph
from .ir.scope import scope
from .ir.tensor import Shape, Tensor
from .ir.types import TensorType
from .leaves import constant, input, matrix, param, scalar, vector
from .ops.api import (abs, add, argmax, argmin, broadcast_to, cast, ceil, clip, concatenate, cos,
                      div, dot, equal, exp, expand_dims, expm1, floor, floor_divide, greater,
                      greater_equal, less, less_equal, log, log1p, log_softmax, logsumexp, matmul,
                      max, maximum, mean, min, minimum, mod, mul, neg, not_equal, ones_like, pow,
                      prod, relu, remainder, reshape, round, sigmoid, sign, sin, softmax,
                      softplus, sqrt, square, squeeze, stack, sub, sum, take, tanh, transpose,
                      where, xlogx, zeros_like)
from .ops.api_grad import custom_vjp, stop_gradient
from .ops.api_index import inc_subtensor, set_subtensor
from .ops.api_make import alloc, arange, full, ones, zeros
from .ops.api_shape import shape
from .ops.api_control import cond, fori_loop, scan, while_loop
from .ops.api_conv import (conv, conv1d, conv2d, conv3d, conv_transpose, conv_transpose1d,
                           conv_transpose2d, conv_transpose3d)
from .ops.api_pool import (avg_pool, avg_pool1d, avg_pool2d, avg_pool3d, global_avg_pool,
                           global_max_pool, max_pool, max_pool1d, max_pool2d, max_pool3d)
from .ops.api_norm import batch_norm, layer_norm, std, var
from .ops.api_vocab import (argsort, dimshuffle, flatten, join, one_hot, repeat, sort,
                            specify_shape, tile)
from .ops.api_linalg import (diag, eye, inv, norm, outer, slogdet, solve, take_along_axis, topk,
                             trace)
from .ops.registry import OPS
from .render import render, to_dot
from .render.debugprint import debugprint
from .nn import optim
from . import random  # noqa: F401  (fc.random.Stream)

__version__ = "0.1.0"
