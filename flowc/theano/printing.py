"""theano.printing: pydotprint draws with flowc's renderer; pp prints expressions."""
from __future__ import annotations

from ..render.text import pp  # noqa: F401
from .unsupported import unsupported


def pydotprint(fct, outfile=None, format="png", compact=True, with_ids=False, **kwargs):
    """Draw a compiled function (or tensors) to `outfile` with flowc's renderer."""
    from ..render import render
    if outfile is None:
        outfile = f"flowc_graph.{format}"
    return render(fct, outfile, stage="all")


def debugprint(*args, **kwargs):
    unsupported("theano.printing.debugprint (use flowc.theano.pp or pydotprint)")
