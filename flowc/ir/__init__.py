"""The IR: Graph (a networkx.MultiDiGraph in the documented schema), TensorType, Tensor."""
from .errors import FlowcError, GradError, GraphError, InputError, ShapeError
from .graph import Graph, default_graph, operands
from .tensor import Tensor
from .types import TensorType
