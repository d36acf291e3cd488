"""Scopes in pictures: a cluster per layer / optimizer / fc.scope, or one box when collapsed.

Nodes made inside `with fc.scope(...)`, a flowc.nn layer or an fc.optim optimizer carry
the path as their `scope` attr (flowc/ir/scope.py). Forward and update nodes are grouped
by it (backward nodes stay grouped by the forward op they differentiate). A graph of more
than COLLAPSE_OVER drawn nodes is drawn with each scope as one box when collapse="auto".
"""
from __future__ import annotations

from collections import defaultdict

from ..ir.errors import FlowcError
from . import style as S

COLLAPSE_OVER = 50


def members(G, nodes, context=()) -> dict:
    """{scope path: sorted nodes}: the drawn forward/update nodes made inside a scope."""
    out = defaultdict(list)
    for n in sorted(nodes):
        d = G.nodes[n]
        if d.get("scope") and (d.get("phase") != "backward" or n in context):
            out[d["scope"]].append(n)
    return dict(out)


def collapsed(collapse, n_drawn) -> bool:
    """Is each scope drawn as one box? collapse: True, False or "auto" (by size)."""
    if collapse == "auto":
        return n_drawn > COLLAPSE_OVER
    if collapse in (True, False):
        return collapse
    raise FlowcError(f"collapse must be True, False or 'auto'; got {collapse!r}")


def names(groups) -> dict:
    """{scope path: DOT name} in sorted path order, so the text is deterministic."""
    return {p: f"scope{k}" for k, p in enumerate(sorted(groups))}


def box_line(G, path, nodes, name, ind) -> str:
    """One box for a whole scope: its path, how many ops, and its params' names."""
    params = [G.nodes[n].get("name") or f"%{n}" for n in nodes if G.nodes[n]["op"] == "param"]
    ops = sum(G.nodes[n]["op"] not in ("param", "const", "input") for n in nodes)
    count = f", {len(params)} param" + ("s" if len(params) > 1 else "") if params else ""
    lines = [S.b(path), S.esc(f"{ops} op" + ("" if ops == 1 else "s") + count)]
    if params:
        shown = params[:3] + (["..."] if len(params) > 3 else [])
        lines.append(S.small(", ".join(shown)))
    label = f"<{'<BR/>'.join(lines)}>"
    look = S.attrs_text(dict(S.KINDS["scope"][0], width=f"{S.min_width(label):.2f}"))
    return f"{ind}{name} [{look}, label={label}];"


def cluster_open(path, name, ind) -> str:
    """The first line of the cluster drawing one scope expanded."""
    return (f'{ind}subgraph cluster_{name} {{ label=<{S.small(path, "#3a6b96")}>; '
            f'style="dashed,rounded"; color="#6b9bc3"; margin=6;')
