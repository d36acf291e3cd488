"""The pass pipelines: an explicit ordered tuple of Graph -> Graph functions per level."""
from __future__ import annotations

from .algebra import simplify
from .cleanup import cse, dce, fold_constants
from .fuse import fuse
from .shapes import drop_identity_shape_ops
from .specialize import specialize
from .stabilize import simplify_and_stabilize

# canonicalize + stabilize (one fixed point over both rule tables) -> fold -> again, for
# the patterns folding completed (a gradient's ones become a constant 1) -> shape-class
# cleanup; O2 then specializes (GEMM) and fuses. Stabilizing comes before the first fold:
# folding log(1 - sigmoid(40)) naively gives log(0) = -inf, and a stable form O1 promises
# must hold for constants too. build_unit already dropped everything the outputs do not
# need, and every pass prunes what it made dead.
PIPELINES = {
    "O0": (dce,),
    "O1": (cse, simplify_and_stabilize, fold_constants, cse, simplify_and_stabilize,
           drop_identity_shape_ops, simplify),
}
PIPELINES["O2"] = PIPELINES["O1"] + (specialize, fuse)


def optimize(G, level="O1", verify=False):
    """Run the pipeline for `level` ("O0", "O1", "O2"); with verify=True check after each pass."""
    if level not in PIPELINES:
        raise ValueError(f"optimize must be one of {sorted(PIPELINES)}, got {level!r}")
    for p in PIPELINES[level]:
        G = p(G)
        if verify:
            from ..ir.verify import verify_unit
            verify_unit(G, after=p.__name__)
    return G
