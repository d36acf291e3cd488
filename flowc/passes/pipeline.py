"""The pass pipelines: an explicit ordered tuple of Graph -> Graph functions per level."""
from __future__ import annotations

from ..ir.errors import ArgumentError
from .cleanup import cse, dce, fold_constants
from .conv_columns import share_conv_columns
from .fuse import fuse
from .shapes import drop_identity_shape_ops
from .specialize import specialize
from .stabilize import simplify_and_stabilize

# canonicalize + stabilize (one fixed point over both rule tables) -> fold -> cse ->
# shape-class cleanup -> both tables again, for what folding and the shape classes exposed;
# O2 then specializes (GEMM, conv bias), shares a conv's im2col columns with its weight
# gradient, and fuses. Stabilizing comes before folding: folding
# log(1 - sigmoid(40)) naively gives log(0) = -inf, and a stable form that O1 promises
# must hold for constants too (the rules see through small constant expressions, so
# `(2 - 1) - sigmoid(c)` matches as well). build_unit already dropped everything the
# outputs do not need, and every pass prunes what it made dead.
PIPELINES = {
    "O0": (dce,),
    "O1": (cse, simplify_and_stabilize, fold_constants, cse, drop_identity_shape_ops,
           simplify_and_stabilize),
}
PIPELINES["O2"] = PIPELINES["O1"] + (specialize, share_conv_columns, fuse)


def optimize(G, level="O1", verify=False):
    """Run the pipeline for `level` ("O0", "O1", "O2"); with verify=True check after each pass."""
    if level not in PIPELINES:
        raise ArgumentError(f"optimize must be one of {sorted(PIPELINES)}, got {level!r}")
    G = _run(G, level, verify)
    if level != "O0":  # bodies get the same pipeline (flowc/passes/loops.py)
        from .loops import (accumulate_after, dead_carries, dead_inputs, dead_ys,
                            last_row_reads, merge_loops, optimize_bodies)
        G = dead_carries(dead_ys(last_row_reads(merge_loops(G))))
        moved = accumulate_after(G)
        if moved is not G:  # the sums it moved out of loops meet the outer passes
            G = _run(moved, level, verify)
        # Stacks whose readers the passes above removed, and then the slices and consts
        # only those stacks' steps read, go too.
        G = optimize_bodies(G, level)
        for _ in range(2):  # a loop input dropped can leave another loop's stack unread
            G = dead_inputs(dead_carries(dead_ys(G)))
    return G


def _run(G, level, verify):
    for p in PIPELINES[level]:
        G = p(G)
        if verify:
            from ..ir.verify import verify_unit
            verify_unit(G, after=p.__name__)
    return G
