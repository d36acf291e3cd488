"""theano.printing: pydotprint draws with flowc's renderer; pp/pprint print expressions,
debugprint prints the graph as an indented tree."""
from __future__ import annotations

from ..render.debugprint import debugprint as _debugprint
from ..render.text import pp
from .unsupported import unsupported

pprint = pp


def pydotprint(fct, outfile=None, format="png", compact=True, with_ids=False, **kwargs):
    """Draw a compiled function (or tensors) to `outfile` with flowc's renderer."""
    from ..render import render
    if outfile is None:
        outfile = f"flowc_graph.{format}"
    return render(fct, outfile, stage="all")


def debugprint(obj, depth=-1, print_type=False, file=None, **kwargs):
    """The graph of a variable, a list of them or a compiled function as an indented tree
    (flowc's own node names and ids, not Theano's op classes)."""
    if depth != -1:
        unsupported("theano.printing.debugprint(depth=...)")
    return _debugprint(obj, file=file, print_type=print_type)
