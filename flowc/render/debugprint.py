"""debugprint: an indented text tree of a graph, the textual twin of the pictures."""
from __future__ import annotations

import string
import sys

from ..ir.types import TensorType
from .style import SUBGRAPH_ATTRS


def _label(k: int) -> str:
    """A, B, ..., Z, BA, BB, ... (Theano's [id X] labels)."""
    letters = string.ascii_uppercase
    out = letters[k % 26]
    while k >= 26:
        k = k // 26
        out = letters[k % 26] + out
    return out


def _line(G, n, label, print_type):
    d = G.nodes[n]
    name = d.get("name")
    if d["op"] in ("input", "param"):
        head = name or f"%{n}"
        kind = "" if d["op"] == "input" else " (shared)"
    elif d["op"] == "const":
        v = d["value"]
        head = f"const{{{v.item()!r}}}" if v.size == 1 else f"const{list(v.shape)}"
        kind = ""
    else:
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(d["attrs"].items())
                          if v is not None and v is not False
                          and k != "index" and k not in SUBGRAPH_ATTRS)
        head = d["op"] + (f"{{{attrs}}}" if attrs else "") + (f" '{name}'" if name else "")
        kind = ""
    t = d["type"]
    typ = f" {t.short()}" if print_type and isinstance(t, TensorType) else ""
    return f"{head} [id {label}]{typ}{kind}"


def tree_lines(G, roots, print_type=True):
    """The lines of the tree under `roots` (node ids of the networkx graph G): each node's
    operands indented under it with ' |'; a node met again shows only its id."""
    ids, lines, seen = {}, [], set()
    stack = [(r, 0) for r in reversed(roots)]
    while stack:  # depth-first without recursion: graphs may be thousands of nodes deep
        n, depth = stack.pop()
        label = ids.setdefault(n, _label(len(ids)))
        prefix = " |" * depth
        lines.append(prefix + _line(G, n, label, print_type))
        if n in seen:
            continue
        seen.add(n)
        if G.nodes[n]["op"] in ("loop", "cond"):  # bodies as trees of their own
            lines.extend(_body_lines(G.nodes[n]["attrs"], prefix, print_type))
        args = [u for _, u in sorted((k, u) for u, _, k in G.in_edges(n, keys=True))]
        stack.extend((a, depth + 1) for a in reversed(args))
    return lines


def _body_lines(attrs, prefix, print_type):
    """A loop's body and condition, indented under it: inputs are named in0, in1, ... in the
    order sequences' slices, carries, consts."""
    from ..ir.body import thaw
    out = []
    named = [("body", attrs.get("body")), ("cond", attrs.get("cond"))] + [
        (f"branch {k}", b) for k, b in enumerate(attrs.get("branches") or ())]
    for key, body in named:
        if body is None:
            continue
        unit = thaw(body)
        out.append(f"{prefix}  {key}:")
        out.extend(f"{prefix}    {line}" for line in
                   tree_lines(unit, list(unit.graph["outputs"]), print_type))
    return out


def debugprint(obj, file=None, print_type=True):
    """Print the tree of the graph computing `obj`: a tensor, a list of tensors, or a
    compiled Function (its optimized graph, outputs then updated params). With
    file="str" the text is returned instead of printed."""
    from ..ir.tensor import Tensor
    if isinstance(obj, Tensor):
        G, roots = obj.graph.nx, [obj.id]
    elif isinstance(obj, (list, tuple)) and obj and all(isinstance(t, Tensor) for t in obj):
        G, roots = obj[0].graph.nx, [t.id for t in obj]
    elif hasattr(obj, "graph") and hasattr(obj.graph, "graph"):  # a compiled Function
        G = obj.graph
        roots = list(G.graph.get("outputs", [])) + [v for _, v in G.graph.get("updates", [])]
    else:
        raise TypeError(f"debugprint takes a tensor, a list of tensors or a compiled "
                        f"function, got {type(obj).__name__}")
    text = "\n".join(tree_lines(G, roots, print_type))
    if file == "str":
        return text
    print(text, file=file or sys.stdout)
    return None
