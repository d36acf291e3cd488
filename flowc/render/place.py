"""Forward | backward | updates, left to right, in every picture.

Graphviz orders the clusters of a rank by its crossing minimisation, which honours no
left-to-right request between clusters: the same DOT that puts the forward column left in
one graph puts it right in another (5 of 9 example pictures came out swapped, rendered by graphviz-pure). What it does
honour is the order of flat edges between nodes of the root graph. So a placement adds one
invisible anchor per column at the root, on the top rank, tied left to right, each pulling
its column's first nodes under it with heavy invisible edges. `files.render` reads the
columns' order back from the SVG and tries the next placement until one holds (the layout
is deterministic, so a picture that holds once holds always); the first placement adds
nothing, so pictures that were right stay as they were.
"""
from __future__ import annotations

import re
from typing import NamedTuple

COLUMNS = ("forward", "backward", "update")
_NODE = re.compile(r"^\s+(?!node |edge |graph )(\w+) \[", re.M)   # a node declaration


class Placement(NamedTuple):
    """One way to ask for the column order."""

    reverse: bool = False   # declare the clusters updates, backward, forward
    anchors: bool = False   # root anchors tied left to right over the columns
    weight: int = 1000      # of the edges from an anchor to its column's first nodes
    members: int = 3        # how many of those nodes each anchor pulls

    def apply(self, text: str) -> str:
        """`text` (DOT from dot.py) with this placement's anchors added."""
        cols = [c for c in COLUMNS if f"subgraph cluster_{c} {{" in text]
        if not self.anchors or len(cols) < 2:
            return text
        spans = sorted((text.index(f"subgraph cluster_{c} {{"), c) for c in cols)
        out = []
        for k, (start, c) in enumerate(spans):
            end = spans[k + 1][0] if k + 1 < len(spans) else len(text)
            first = _NODE.findall(text, start, end)[:self.members]
            out.append(f'  place_{c} [shape=point, style=invis, width=0, height=0, label=""];')
            out += [f"  place_{c} -> {n} [style=invis, weight={self.weight}];" for n in first]
        out.append("  { rank=min; " + "; ".join(f"place_{c}" for c in cols) + "; }")
        out += [f"  place_{a} -> place_{b} [style=invis];" for a, b in zip(cols, cols[1:])]
        i = text.rindex("}")
        return text[:i] + "\n".join(out) + "\n" + text[i:]


# How hard and how many of each column's nodes the anchors pull differs by graph (measured on
# the examples: lenet5 holds only with 3 nodes per column, at 10 it is 6521 pt wide, at 1000
# 11799; breast_cancer holds with 3, not with 1); render keeps the narrowest that holds.
PLACEMENTS = (Placement(),) + tuple(Placement(anchors=True, weight=w, members=m) for w, m in (
    (10, 1), (10, 3), (100, 3), (1000, 3), (10, 8))) + (
    Placement(reverse=True), Placement(reverse=True, anchors=True, weight=10))

_CLUSTER = re.compile(r'<g id="[^"]*" class="cluster">\s*<title>cluster_(\w+)</title>\s*'
                      r'<(?:polygon|path)[^>]*?(?:points|d)="([^"]*)"')


def column_order(svg: str):
    """The drawn columns (COLUMNS names) left to right, read from Graphviz's SVG."""
    left = {}
    for key, coords in _CLUSTER.findall(svg):
        if key in COLUMNS:
            xs = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", coords)[0::2]]
            left[key] = min(xs)
    return sorted(left, key=left.get)


def in_order(svg: str) -> bool:
    """Are the drawn columns forward | backward | updates, left to right?"""
    order = column_order(svg)
    return order == [c for c in COLUMNS if c in order]
