"""Live ranges from the Program alone: what each instruction reads, views and keeps alive.

Shared by the planners (runtime/memory/plan.py, arena.py), the loop groups and the plan
verifier, so each decides liveness the same way.
"""
from __future__ import annotations


# Operands these kernels read only for their shape (or dtype). An array object keeps its
# shape when its bytes are reused, so such a read does not keep the bytes alive; gradients
# hold `sum_like(g, x)` on forward activations, which would otherwise live all step.
SHAPE_ONLY = {"sum_like": (1,), "broadcast_like": (1,), "reshape_like": (1,), "count": (0,),
              "zeros_like": (0,), "ones_like": (0,), "shape": (0,), "dim": (0,),
              "getitem_grad": (0,)}


def value_args(ins):
    """The operands whose values (not just shapes) instruction `ins` reads."""
    skip = SHAPE_ONLY.get(ins.kernel)
    return ins.args if skip is None else [a for p, a in enumerate(ins.args) if p not in skip]


def live_ends(program, kinds, groups=()):
    """For each slot, the last instruction that reads its values or any view made from it.

    Outputs and update values are read after the last instruction (copied out, or swapped
    into a parameter), so they and what they view live to len(instrs). A loop group's
    members run interleaved chunk by chunk, so what any member reads is read until the
    group's last member. A view's reads are reads of what it looks into.
    """
    last = {}
    for i, ins in enumerate(program.instrs):
        for a in value_args(ins):
            last[a] = i
    for members in groups:
        hi = members[-1]
        for k in members:
            for a in value_args(program.instrs[k]):
                last[a] = max(last[a], hi)
    end = len(program.instrs)
    for s in list(program.outputs) + [u["slot"] for u in program.updates]:
        last[s] = end
    # A view's reads extend the life of whatever it looks into (walk views last to first).
    for i in reversed(range(len(program.instrs))):
        ins = program.instrs[i]
        if kinds[i] == "view":
            end = last.get(ins.out, i)
            for a in value_args(ins):
                last[a] = max(last.get(a, i), end)
    return last


def view_roots(program, kinds):
    """{view slot: tuple of the non-view slots whose bytes it may look into}."""
    roots = {}
    for i, ins in enumerate(program.instrs):
        if kinds[i] == "view":
            found = []
            for a in value_args(ins):
                for r in roots.get(a, (a,)):
                    if r not in found:
                        found.append(r)
            roots[ins.out] = tuple(found)
    return roots


def viewed_by_another(ins, operand, roots):
    """Whether an operand of `ins` other than `operand` itself is a view into its bytes:
    then `ins` may not write its result over `operand` (fused kernels work in blocks)."""
    return any(a != operand and operand in roots.get(a, ()) for a in value_args(ins))


class Buffers(dict):
    """{slot: array} for one shape signature, the slots whose bytes are lent by a spare
    (see runtime/memory/arena.py; the linker refreshes those with lend() before each call), and
    the loop groups planned as chunked (others run their members one by one)."""

    lent = ()
    chunked = frozenset()


def shape_key(a):
    """(shape, dtype) of an array: buffers of one key may stand in for each other."""
    return a.shape, a.dtype.str
