"""How each kind of node looks: shapes, colours and label text (ASCII, HTML-like labels)."""
from __future__ import annotations

import html
import re

import numpy as np
from flowc_runtime.cpu.fused import postorder

from ..ops.registry import OPS, REQUIRED

# Fill colours per phase; a cluster uses the pale one, its op nodes the medium one, and the
# edges leaving its nodes the dark one, so a reader can tell the parts apart at a glance.
PHASE = {
    "forward": dict(cluster="#f2f7fc", border="#6b9bc3", node="#d6e6f5", edge="#3a6b96"),
    "backward": dict(cluster="#fff5ec", border="#e0883a", node="#fdd9b5", edge="#b35806"),
    "update": dict(cluster="#f7f0fa", border="#9e7bb5", node="#e3d3ee", edge="#6a3d9a"),
}
CONTEXT = dict(cluster="#fafafa", border="#b0b0b0", node="#f0f0f0", edge="#b0b0b0",
               font="#8c8c8c")
ORIGIN_LINK = "#8c8c8c"

# Node kind -> (DOT attributes, legend text). Kinds differ in shape or fill, never in text only.
KINDS = {
    "input": (dict(shape="invhouse", style="filled", fillcolor="#c7e9c0"), "input"),
    "param": (dict(shape="cylinder", style="filled", fillcolor="#ffe08a"), "param (state)"),
    "const": (dict(shape="note", style="filled", fillcolor="#e6e6e6"), "constant"),
    "forward": (dict(shape="box", style="rounded,filled", fillcolor=PHASE["forward"]["node"]),
                "forward op"),
    "backward": (dict(shape="box", style="rounded,filled", fillcolor=PHASE["backward"]["node"]),
                 "backward op"),
    "update": (dict(shape="box", style="rounded,filled", fillcolor=PHASE["update"]["node"]),
               "update op"),
    "seed": (dict(shape="note", style="filled", fillcolor="#f4a582"), "seed dcost/dcost = 1"),
    "gradient": (dict(shape="hexagon", style="filled", fillcolor="#f4a582", penwidth="1.5"),
                 "gradient"),
    "output": (dict(shape="doubleoctagon", style="filled", fillcolor="#9ecae1"), "output"),
    "target": (dict(shape="cylinder", style="filled,bold", fillcolor="#c2a5cf"),
               "update target"),
    # Legend only: how forward nodes look when they are background for the backward pass.
    "collective": (dict(shape="component", style="filled,bold", fillcolor="#80cdc1",
                        penwidth="1.5"), "data-parallel exchange (over processes)"),
    "context": (dict(shape="box", style="rounded,filled,dashed", fillcolor="#f0f0f0",
                     color="#b0b0b0", fontcolor="#8c8c8c"), "forward value (background)"),
    # Loops (flowc/render/clusters.py): a body's input/output ports, a loop drawn as one box.
    "port": (dict(shape="box", style="rounded,filled", fillcolor="#ffffff"),
             "loop port (step input/output)"),
    "loop": (dict(shape="box3d", style="filled", fillcolor=PHASE["forward"]["node"]),
             "loop (body not drawn)"),
    # A layer, optimizer or fc.scope drawn as one box (flowc/render/scopes.py).
    "scope": (dict(shape="box3d", style="filled", fillcolor="#e8eef5", color="#6b9bc3"),
              "layer / optimizer / scope"),
}
COLLECTIVE_OPS = ("grad_pack", "allreduce", "grad_unpack")
SCALAR = dict(shape="plaintext", fontsize="9", fontcolor="#555555", margin="0", width="0",
              height="0")
SMALL = "#666666"


def kind(G, n, seeds) -> str:
    """The kind of node n: a key of KINDS."""
    d = G.nodes[n]
    if d.get("grad_of") is not None:
        return "gradient"
    if d["op"] in ("input", "param"):
        return d["op"]
    if d["op"] in COLLECTIVE_OPS:
        return "collective"
    if d["op"] == "const":
        return "seed" if n in seeds else "const"
    return d.get("phase", "forward")


def node_label(G, n, k, names, stage=None) -> str:
    """HTML-like label: what the node computes, the user's name, then id and attrs in small."""
    d = G.nodes[n]
    t = d["type"].short()
    name = d.get("name")
    if k in ("input", "param"):
        return _lines([b(name or f"%{n}")], f"{d['op']} {t}")
    if k == "seed":
        cost = names.get(d.get("origin"), "?")
        return _lines([b(scalar_text(d.get("value"))), esc(f"seed {_d(cost, cost)}")], f"%{n}")
    if k == "const":
        return _lines([esc(name or "const")], f"%{n} {t} {_preview(d.get('value'))}".rstrip())
    small = " ".join([f"%{n}"] + attr_texts(d["op"], d.get("attrs") or {}))
    if k == "gradient":
        lines = [b(names[n]), esc(d["op"])]
        if name and name != _autodiff_name(G, *d["grad_of"]):
            lines.append(i(name))
        return _lines(lines, small)
    if d["op"] in ("fused", "fused_reduce"):
        return _fused_label(d, name or names.get(n), n)
    if d["op"] in ("conv", "conv_bias"):
        return _conv_label(G, n, d, name or names.get(n), stage)
    if d["op"] == "im2col":  # the O2 lowering's window copy: the conv's geometry
        attrs = d.get("attrs") or {}
        text = "im2col" + conv_text(attrs.get("kernel", ("?",)), attrs)[len("conv"):]
        return _lines([esc(text)], f"%{n}")
    lines = [esc(d["op"])]
    if name or n in names:
        lines.append(i(name or names[n]))
    return _lines(lines, small)


# Conv attrs its geometry line says, so the small line does not repeat them.
CONV_GEOMETRY = ("stride", "pad", "dilation", "lhs_dilation", "groups", "flip", "algorithm")


def conv_text(kernel, attrs) -> str:
    """A conv's geometry as one line: 'conv 5x5 /2 pad 1', 'conv 3x3 dil 2 g 4 flip',
    'conv 4x4 transposed /2 pad (1,2)' (x is the times sign); kernel: the spatial sizes."""
    def uniform(vals):
        vals = [tuple(v) if isinstance(v, (tuple, list)) else v for v in vals]
        return vals[0] if vals and all(v == vals[0] for v in vals) else None

    def many(vals, fmt):
        one = uniform(vals)
        return fmt(one) if one is not None else "\u00d7".join(fmt(v) for v in vals)

    parts = ["conv", "\u00d7".join("?" if k is None else str(k) for k in kernel)]
    up = list(attrs.get("lhs_dilation") or (1,))
    if any(u != 1 for u in up):
        parts.append("transposed /" + many(up, str))
    stride = list(attrs.get("stride") or (1,))
    if any(s != 1 for s in stride):
        parts.append("/" + many(stride, str))
    pad = [tuple(p) for p in attrs.get("pad") or ((0, 0),)]
    if any(p != (0, 0) for p in pad):
        parts.append("pad " + many(pad, lambda p: str(p[0]) if p[0] == p[1]
                                   else f"({p[0]},{p[1]})"))
    dil = list(attrs.get("dilation") or (1,))
    if any(v != 1 for v in dil):
        parts.append("dil " + many(dil, str))
    if attrs.get("groups", 1) != 1:
        parts.append(f"g {attrs['groups']}")
    if attrs.get("flip"):
        parts.append("flip")
    return " ".join(parts)


def _conv_label(G, n, d, name, stage):
    """Geometry line (kernel from the weight's static shape), the name, the algorithm the
    compiler chose (optimized view), then the id and any other attrs in small."""
    attrs = d.get("attrs") or {}
    ws = [G.nodes[u]["type"] for u, _, port in G.in_edges(n, keys=True) if port == 1]
    kernel = tuple(ws[0].shape[2:]) if ws and getattr(ws[0], "shape", None) else ("?",)
    lines = [esc(conv_text(kernel, attrs) + (" + bias" if d["op"] == "conv_bias" else ""))]
    if name:
        lines.append(i(name))
    if stage == "optimized" and attrs.get("algorithm") is not None:
        lines.append(small(f"algorithm {attrs['algorithm']}", "#1f6f43"))
    rest = {k: v for k, v in attrs.items() if k not in CONV_GEOMETRY}
    return _lines(lines, " ".join([f"%{n}"] + attr_texts("conv", rest)))


INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "less": "<",
         "greater": ">", "less_equal": "<=", "greater_equal": ">=", "equal": "==",
         "not_equal": "!="}


def expr_text(expr) -> str:
    """A fused expression as compact infix text: 'tanh(a0*a1+a2)*sigmoid(a1)'."""
    text = {}
    for e in postorder(expr):  # iterative: no recursion over the expression's depth
        if e[0] == "arg":
            text[e] = f"a{e[1]}"
        elif e[0] == "const":
            text[e] = scalar_text(e[1])
        else:
            op, _, kids = e
            parts = [text[k] for k in kids]
            if op in INFIX and len(parts) == 2:
                text[e] = f"({parts[0]}{INFIX[op]}{parts[1]})"
            elif op == "neg":
                text[e] = f"-{parts[0]}"
            else:
                text[e] = f"{op}({','.join(parts)})"
    return text[expr]


def _fused_label(d, name, n):
    text = expr_text(d["attrs"]["expr"])
    if d["op"] == "fused_reduce":
        text = f"{d['attrs']['reduce']}({text})"
    wrapped = [text[j:j + 48] for j in range(0, len(text), 48)][:6]
    lines = [b("fused " + ("reduction" if d["op"] == "fused_reduce" else "group"))]
    if name:
        lines.append(i(name))
    lines += [esc(w) for w in wrapped]
    return _lines(lines, f"%{n}")


def display_names(G, grads) -> dict:
    """Names for costs, wrts and gradients: 'cost' for one unnamed cost, 'd(dcost/dx)/dx'."""
    costs = sorted({c for c, _ in grads})
    unnamed = [c for c in costs if c in G and not G.nodes[c].get("name")
               and G.nodes[c].get("grad_of") is None]
    memo = {}

    def name(n):
        if n not in memo:
            d = G.nodes[n] if n in G else {}
            go = d.get("grad_of")
            if go is not None and d.get("name") in (None, _autodiff_name(G, *go)):
                memo[n] = _d(name(go[0]), name(go[1]))
            elif d.get("name"):
                memo[n] = d["name"]
            elif n in costs:
                memo[n] = "cost" if len(unnamed) == 1 else f"cost%{n}"
            else:
                memo[n] = f"%{n}"
        return memo[n]

    grad_nodes = [n for n in sorted(G.nodes) if G.nodes[n].get("grad_of") is not None]
    return {n: name(n) for n in costs + [w for _, w in grads] + grad_nodes}


def _d(cost, wrt) -> str:
    """'dcost/dw', with parentheses around a cost that is itself a derivative."""
    def wrap(s):
        return f"({s})" if "/" in s else s
    return f"d{wrap(cost)}/d{wrap(wrt)}"


# Attrs that hold a subgraph: a fused group's expression (its label shows it), a loop's
# body and condition, a cond's branches (counted, not printed: they can be thousands of
# characters).
SUBGRAPH_ATTRS = ("expr", "body", "cond", "branches")


def attr_texts(op, attrs) -> list:
    """'key=value' for each attr that differs from the op's default, compactly written."""
    defaults = OPS[op].attrs if op in OPS else {}
    out = []
    for key in sorted(attrs):
        v = attrs[key]
        if key in SUBGRAPH_ATTRS:
            if key != "expr" and v is not None:
                bodies = v if key == "branches" else (v,)
                out.append(f"{key}=" + "/".join(f"{len(b[1])} ops" for b in bodies))
            continue
        if key in defaults and defaults[key] is not REQUIRED and defaults[key] == v:
            continue
        if isinstance(v, (tuple, list)):
            v = v[0] if len(v) == 1 else "(" + ",".join(str(x) for x in v) + ")"
        out.append(f"{key}={v}")
    return out


def scalar_text(value) -> str:
    """A scalar constant as short text: '0.01', '1.0', '2', 'True'."""
    a = np.asarray(value)
    if a.dtype.kind == "b":
        return str(bool(a))
    if a.dtype.kind in "iu":
        return str(int(a))
    f = float(a.real) if a.dtype.kind == "c" else float(a)
    s = repr(f)
    return s if len(s) <= 8 else f"{f:.4g}"


def _preview(value) -> str:
    """The values of a tiny constant array; larger ones show only their type."""
    if value is None:
        return ""
    a = np.asarray(value)
    if a.size > 4:
        return ""
    return "[" + ",".join(scalar_text(x) for x in a.reshape(-1)) + "]"


def _autodiff_name(G, cost, wrt) -> str:
    """The name fc.grad gives a gradient itself, so only a name the user chose is shown again."""
    def lab(n):
        return (G.nodes[n].get("name") if n in G else None) or f"%{n}"
    return f"d{lab(cost)}/d{lab(wrt)}"


def esc(s) -> str:
    """Escape text for an HTML-like label and keep it ASCII (other characters as &#N;)."""
    return html.escape(str(s), quote=False).encode("ascii", "xmlcharrefreplace").decode()


def b(s) -> str:
    """Bold label text."""
    return f"<B>{esc(s)}</B>"


def i(s) -> str:
    """Italic label text (user-given names)."""
    return f"<I>{esc(s)}</I>"


def small(s, color=SMALL) -> str:
    """Small grey label text (ids, attrs, types)."""
    return f'<FONT POINT-SIZE="8" COLOR="{color}">{esc(s)}</FONT>'


def _lines(lines, note) -> str:
    return "<" + "<BR/>".join(list(lines) + ([small(note)] if note else [])) + ">"


def heat_colour(share: float) -> str:
    """White (no time) to red (most of the call), as #rrggbb."""
    x = max(0.0, min(1.0, share * 3))  # a third of the call is already full red
    g = int(255 * (1 - x))
    return f"#ff{g:02x}{g:02x}"


def attrs_text(d) -> str:
    """DOT attributes from a dict: key="value", ..."""
    return ", ".join(f'{k}="{quote(v)}"' for k, v in d.items())


def quote(s) -> str:
    """Text for a double-quoted DOT string: quotes and backslashes escaped, ASCII only."""
    s = str(s).replace("\\", "\\\\").replace('"', '\\"')
    return s.encode("ascii", "xmlcharrefreplace").decode()


# Width of one character in ems, on the wide side: a renderer may fall back from Helvetica
# to a wider font (DejaVu Sans averages ~0.6 em), and a label that spills out is worse
# than a box a little too wide. Bold text is wider still.
EM_PER_CHAR, BOLD = 0.62, 1.1
PAD = 0.3  # inches: the node's margins and the slanted sides of hexagons and houses


def text_width(text, size) -> float:
    """Inches a line of plain text takes at `size` points, measured conservatively."""
    return len(html.unescape(text)) * size * EM_PER_CHAR / 72


def min_width(label, size=11) -> float:
    """Inches a node needs for its label (HTML-like <...> or plain with \\l / \\n breaks)."""
    if label.startswith("<") and label.endswith(">"):
        widest = 0.0
        for line in re.split(r"<BR/>", label[1:-1]):
            m = re.search(r'POINT-SIZE="(\d+)"', line)
            k = BOLD if "<B>" in line else 1.0
            widest = max(widest, k * text_width(re.sub(r"<[^>]*>", "", line),
                                                int(m.group(1)) if m else size))
        return widest + PAD
    lines = re.split(r"\\[ln]", label.strip('"'))
    return max(text_width(t.replace('\\"', '"'), size) for t in lines) + PAD
