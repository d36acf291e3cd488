"""Loops as users write them: fc.scan (JAX's signature) and fc.fori_loop, built on the
`loop` op (flowc/ops/control.py) with the body traced from a Python function."""
from __future__ import annotations

from ..ir.body import trace
from ..ir.graph import default_graph
from ..ir.tensor import Tensor
from ..ir.types import TensorType
from .build import apply, as_tensor, op_error


def _flat(v, what):
    """(kind, tensors) of a tensor, a tuple/list of tensors, or None."""
    if v is None:
        return None, []
    if isinstance(v, (tuple, list)):
        return type(v), list(v)
    return "one", [v]


def _pack(kind, items):
    if kind is None:
        return None
    if kind == "one":
        return items[0]
    return kind(items)


def _graph_of(values):
    for v in values:
        if isinstance(v, Tensor):
            return v.graph
    return default_graph()


def scan(f, init, xs=None, length=None, reverse=False):
    """Run f(carry, x) -> (new_carry, y) once per step: x is the step's slice of xs (a
    tensor, a tuple/list of them, or None with `length` steps), carry a tensor or a
    tuple/list of them. Returns (final carry, ys stacked over the steps). reverse=True walks
    the steps from last to first (ys stay in step order). The body is traced once; work in
    it that reads no carry or slice is done once, before the loop."""
    ckind, carries = _flat(init, "init")
    xkind, seqs = _flat(xs, "xs")
    if ckind is None:
        raise op_error("scan", [], "init must be a tensor or a tuple/list of tensors")
    graph = _graph_of(carries + seqs)
    carries = [as_tensor(c, graph=graph) for c in carries]
    seqs = [as_tensor(s, graph=graph) for s in seqs]
    for s in seqs:
        if s.ndim == 0:
            raise op_error("scan", [s], "a sequence needs a leading (step) axis")
    if length is not None and (not isinstance(length, int) or length < 0):
        raise op_error("scan", [], f"length must be a non-negative int, got {length!r}")
    ns, nc = len(seqs), len(carries)
    ykind = []

    def step(*holders):
        x = _pack(xkind, list(holders[:ns]))
        c = _pack(ckind, list(holders[ns:]))
        out = f(c, x)
        if not isinstance(out, tuple) or len(out) != 2:
            raise op_error("scan", [], f"the step function must return (new_carry, y), got "
                           f"{type(out).__name__}")
        kind, new = _flat(out[0], "carry")
        if kind != ckind and not (kind in (tuple, list) and ckind in (tuple, list)) \
                or len(new) != nc:
            raise op_error("scan", [], f"the step returns {len(new)} carries, it was given {nc}")
        new = [as_tensor(v, like=holders[ns + i]) for i, v in enumerate(new)]
        for i, (v, h) in enumerate(zip(new, holders[ns:])):
            if v.dtype != h.dtype:
                raise op_error("scan", [v, h], f"carry {i}: the step returns {v.type.short()} "
                               f"for a carry of {h.type.short()}; cast it (a carry keeps its "
                               "dtype)")
        k, ys = _flat(out[1], "y")
        ykind.append(k)
        return new + [as_tensor(y, graph=graph) for y in ys]

    slice_types = [TensorType(s.dtype, s.type.shape[1:]) for s in seqs]
    body, captured, _ = trace(graph, slice_types + [c.type for c in carries], step)
    node = apply("loop", seqs + carries + captured, body=body, n_seq=ns, n_carry=nc,
                 reverse=bool(reverse), length=length)
    n_out = len(node.type.parts)
    parts = [apply("part", [node], index=i) for i in range(n_out)]
    return _pack(ckind, parts[:nc]), _pack(ykind[0], parts[nc:])


def fori_loop(lower, upper, body, init):
    """carry = body(i, carry) for i in range(lower, upper); the final carry. The bounds are
    ints or integer scalar tensors (read at run time)."""
    from .api_make import arange
    steps = arange(lower, upper)
    final, _ = scan(lambda c, i: (body(i, c), None), init, steps)
    return final
