"""The op registry: one OpDef per op name, registered once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..ir.errors import GraphError

REQUIRED = object()  # marks an attr without default


@dataclass(frozen=True)
class OpDef:
    """Everything the compiler knows about one op.

    name: registry key, also the runtime kernel name.
    arity: number of operands (None: one or more).
    attrs: attr name -> default (REQUIRED if none); values must be hashable and JSON-able.
    infer(types, attrs) -> TensorType: raises ShapeError with a plain message on bad operands.
    vjp(ctx: VjpCtx) -> list of cotangents (a Tensor or None per operand), built with the
        public builder API; the autodiff engine unbroadcasts and accumulates them.
    jvp(ctx: JvpCtx) -> tangent of the output (Tensor or None).
    batch(ctx: BatchCtx) -> the op applied over a new leading axis (see autodiff/batching.py),
        or (tensor, False) for a result that is the same for every batch entry;
        None for elementwise ops, which share one rule.
    flags: elementwise, commutative, linear, differentiable (False: integer/boolean results or
        piecewise-constant ops; asking for their gradient gives zero or a clear error).
    """

    name: str
    arity: Optional[int]
    infer: Callable
    vjp: Optional[Callable] = None
    jvp: Optional[Callable] = None
    batch: Optional[Callable] = None
    attrs: Dict[str, Any] = field(default_factory=dict)
    elementwise: bool = False
    commutative: bool = False
    linear: bool = False
    differentiable: bool = True
    # The vjp rule already sums each cotangent to its operand's shape (matmul's batch axes):
    # the engine adds no sum_like of its own, which would read the operand for its shape.
    unbroadcasts: bool = False
    doc: str = ""


@dataclass
class VjpCtx:
    """What a vjp rule sees: operand tensors, the output tensor, its cotangent g, and attrs."""

    inputs: List[Any]
    out: Any
    g: Any
    attrs: Dict[str, Any]


@dataclass
class JvpCtx:
    """What a jvp rule sees: operand tensors, their tangents (None = zero), output, attrs."""

    inputs: List[Any]
    tangents: List[Any]
    out: Any
    attrs: Dict[str, Any]


@dataclass
class BatchCtx:
    """What a batching rule sees: operands (batched ones carry a new leading axis of size
    `size`, None if unknown), which are batched, the original output, the op and its attrs."""

    inputs: List[Any]
    batched: List[bool]
    out: Any
    attrs: Dict[str, Any]
    op: str
    size: Optional[int]


OPS: Dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    """Add an op to the registry; a second op with the same name is an error."""
    if opdef.name in OPS:
        raise GraphError(f"op {opdef.name!r} is registered twice")
    OPS[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    """The OpDef for `name`, or a GraphError listing the known ops."""
    try:
        return OPS[name]
    except KeyError:
        raise GraphError(f"unknown op {name!r}; known ops: {', '.join(sorted(OPS))}") from None


def canonical_attrs(opdef: OpDef, attrs: Dict[str, Any]) -> Dict[str, Any]:
    """Fill defaults, reject unknown or missing attrs, and make values hashable (lists→tuples)."""
    unknown = set(attrs) - set(opdef.attrs)
    if unknown:
        raise GraphError(f"op {opdef.name!r} takes attrs {sorted(opdef.attrs) or 'none'}, "
                         f"got unknown {sorted(unknown)}")
    out = {}
    for k, default in opdef.attrs.items():
        v = attrs.get(k, default)
        if v is REQUIRED:
            raise GraphError(f"op {opdef.name!r} needs attr {k!r}")
        out[k] = freeze(v)
    return out


def freeze(v):
    """Lists → tuples and NumPy scalars → Python scalars, at any nesting, so attrs hash and
    JSON. Iterative: a fused node's expression attr is a nested tuple."""
    if not isinstance(v, (list, tuple)):
        return _freeze_leaf(v)
    done, stack = {}, [(v, False)]
    while stack:
        x, ready = stack.pop()
        if ready:
            done[id(x)] = tuple(done[id(c)] if isinstance(c, (list, tuple)) else _freeze_leaf(c)
                                for c in x)
        elif id(x) not in done:
            stack.append((x, True))
            stack.extend((c, False) for c in x if isinstance(c, (list, tuple)))
    return done[id(v)]


def _freeze_leaf(v):
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        return v.item()
    return v
