"""Loops in the graph: `loop` runs a frozen body (flowc/ir/body.py) once per step, and its
several results are read through `part` nodes.

loop(*seqs, *inits, *consts, *cond_consts; body, n_seq, n_carry, reverse, length, stack_axis,
     cond, n_cond)
  body inputs:  one slice of each sequence (its leading axis is the step), the carries,
                the consts (captured tensors: the same every step)
  body outputs: the new carries, then one value per step (ys)
  result:       a tuple of the final carries, then the ys stacked over the steps, in step
                order whichever way the loop runs (reverse=True walks the steps downwards),
                along axis `stack_axis` (0; batching puts its axis first, so 1 there)
With a `cond` body (the carries and the last n_cond operands in, one boolean out), each
step runs only while it is true (checked before the step: a while loop); `length` or the
sequences then bound the steps, and the ys hold the steps that ran.
cond(pred, *args; branches) runs branches[0] if pred else branches[1] on args (each body takes
them all) and gives its results as a tuple: only the branch taken runs.
select(t; indices) is a tuple of some parts of t (what the jvp and batching rules return:
a tuple whose parts line up with the loop's).
"""
from __future__ import annotations

from ..ir.body import in_types, out_types
from ..ir.errors import ShapeError
from ..ir.types import TensorType, TupleType
from .registry import REQUIRED, OpDef, register


def _compatible(a, b):
    return a.dtype == b.dtype and a.ndim == b.ndim and all(
        x is None or y is None or x == y for x, y in zip(a.shape, b.shape))


def _loop_infer(types, attrs):
    body, ns, nc, n_cond = attrs["body"], attrs["n_seq"], attrs["n_carry"], attrs["n_cond"]
    bin_, bout = in_types(body), out_types(body)
    if len(bin_) + n_cond != len(types):
        raise ShapeError(f"the body takes {len(bin_)} inputs and the condition {n_cond} more, "
                         f"the loop has {len(types)} operands")
    if attrs["cond"] is not None:
        _check_cond(attrs["cond"], bin_[ns:ns + nc] + list(types[len(bin_):]))
    elif n_cond:
        raise ShapeError("operands for a condition, but the loop has none")
    types = types[:len(bin_)]
    length = attrs["length"]
    for i, (s, b) in enumerate(zip(types[:ns], bin_[:ns])):
        if s.ndim != b.ndim + 1 or not _compatible(TensorType(s.dtype, s.shape[1:]), b):
            raise ShapeError(f"sequence {i} is {s.short()}, but the body takes slices "
                             f"{b.short()}")
        n = s.shape[0]
        if n is not None and length is not None and n != length:
            raise ShapeError(f"sequence {i} has {n} steps, the loop {length}")
        length = n if length is None else length
    if ns == 0 and attrs["length"] is None and attrs["cond"] is None:
        raise ShapeError("a loop without sequences or a condition needs a length")
    if attrs["cond"] is not None:
        length = None  # the condition decides how many steps run
        if attrs["reverse"]:
            raise ShapeError("a loop with a condition runs forwards only")
    carries_in, carries_out = bin_[ns:ns + nc], bout[:nc]
    for i, (t, b) in enumerate(zip(types[ns:], bin_[ns:])):
        if not _compatible(t, b):
            raise ShapeError(f"operand {ns + i} is {t.short()}, the body takes {b.short()}")
    for i, (a, b) in enumerate(zip(carries_in, carries_out)):
        if not _compatible(a, b):
            raise ShapeError(f"carry {i}: the step gets {a.short()} and returns {b.short()}; "
                             "a carry must keep its dtype and shape")
    k = attrs["stack_axis"]
    if any(y.ndim < k for y in bout[nc:]):
        raise ShapeError(f"stack_axis {k} is past the last axis of a per-step output")
    ys = [TensorType(y.dtype, tuple(y.shape[:k]) + (length,) + tuple(y.shape[k:]))
          for y in bout[nc:]]
    return TupleType(tuple(carries_in) + tuple(ys))


def _check_cond(cond, types):
    """The condition body takes the carries and its own operands and gives one boolean."""
    cin, cout = in_types(cond), out_types(cond)
    if len(cin) != len(types) or any(not _compatible(a, b) for a, b in zip(cin, types)):
        raise ShapeError("the condition's inputs do not match the carries and its operands")
    if len(cout) != 1 or cout[0].ndim != 0 or cout[0].dtype != "bool":
        raise ShapeError(f"the condition must give one boolean scalar, got "
                         f"{', '.join(t.short() for t in cout)}")


def _cond_infer(types, attrs):
    pred, args = types[0], types[1:]
    if pred.ndim != 0 or pred.dtype != "bool":
        raise ShapeError(f"the predicate must be a boolean scalar, got {pred.short()}")
    outs = []
    for k, branch in enumerate(attrs["branches"]):
        bin_ = in_types(branch)
        if len(bin_) != len(args) or any(not _compatible(a, b) for a, b in zip(args, bin_)):
            raise ShapeError(f"branch {k} takes {len(bin_)} inputs of other types than the "
                             f"cond's {len(args)} operands")
        outs.append(out_types(branch))
    first = outs[0]
    for k, o in enumerate(outs[1:], 1):
        if len(o) != len(first) or any(not _compatible(a, b) for a, b in zip(first, o)):
            raise ShapeError("the branches return different types: "
                             f"({', '.join(t.short() for t in first)}) and "
                             f"({', '.join(t.short() for t in o)})")
    merged = [TensorType(a.dtype, tuple(x if x == y else None for x, y in zip(a.shape, b.shape)))
              for a, b in zip(first, outs[-1])]
    return TupleType(tuple(merged))


def _part_infer(types, attrs):
    (t,) = types
    if not isinstance(t, TupleType) or not 0 <= attrs["index"] < len(t.parts):
        raise ShapeError(f"part {attrs['index']} of {t.short()} does not exist")
    return t.parts[attrs["index"]]


def _select_infer(types, attrs):
    (t,) = types
    if not isinstance(t, TupleType) or any(not 0 <= i < len(t.parts) for i in attrs["indices"]):
        raise ShapeError(f"select {attrs['indices']} of {t.short()}: no such parts")
    return TupleType(tuple(t.parts[i] for i in attrs["indices"]))


def _rule(name):
    def rule(c):
        from ..autodiff import loops
        return getattr(loops, name)(c)
    return rule


def _part_of(c, t):
    from .build import apply
    return None if t is None else apply("part", [t], index=c.attrs["index"])


def _part_batch(c):
    t = c.inputs[0]
    if isinstance(t, list):  # a batched cond's results, one tensor per part
        return t[c.attrs["index"]]
    return _part_of(c, t)


register(OpDef("loop", None, _loop_infer, attrs={"body": REQUIRED, "n_seq": 0, "n_carry": 0,
                                                  "reverse": False, "length": None,
                                                  "stack_axis": 0, "cond": None, "n_cond": 0,
                                                  "save": "products", "truncate": -1},
               vjp=_rule("loop_vjp"), jvp=_rule("loop_jvp"), batch=_rule("loop_batch"),
               doc="a body run once per step over sequences and carries (scan, fori_loop)"))
register(OpDef("cond", None, _cond_infer, attrs={"branches": REQUIRED},
               vjp=_rule("cond_vjp"), jvp=_rule("cond_jvp"), batch=_rule("cond_batch"),
               doc="runs one of two bodies on its operands: the first if pred is true (lazy)"))
register(OpDef("part", 1, _part_infer, attrs={"index": REQUIRED}, linear=True,
               jvp=lambda c: _part_of(c, c.tangents[0]), batch=_part_batch,
               doc="one result of a loop (its final carries, then its stacked ys)"))
def _select_vjp(c):
    # The operand's cotangent is a list over its parts (the engine files it by part).
    gs = [None] * len(c.inputs[0].type.parts)
    for g, i in zip(c.g, c.attrs["indices"]):
        if g is not None:
            gs[i] = g if gs[i] is None else gs[i] + g
    return [gs]


def _select_like(c, t):
    from .build import apply
    return None if t is None else apply("select", [t], indices=c.attrs["indices"])


register(OpDef("select", 1, _select_infer, attrs={"indices": REQUIRED}, linear=True,
               vjp=_select_vjp, jvp=lambda c: _select_like(c, c.tangents[0]),
               batch=lambda c: _select_like(c, c.inputs[0]),
               doc="a tuple of some parts of a tuple (the jvp and batching of a loop)"))

