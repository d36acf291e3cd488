"""One self-contained HTML page to explore a graph: pan, zoom, views, clusters, hover, search.

Positions come from flowc/render/layout.py (Python); the page embeds them as JSON with the
viewer's script (viewer.js beside this file), so it opens offline and fetches nothing.
"""
from __future__ import annotations

import json
import linecache
import os
import re
from importlib import resources

from ..ir.body import thaw
from ..ir.errors import FlowcError
from . import clusters as C
from . import style as S
from .layout import layout
from .select import pick

VIEWS = ("forward", "backward", "optimized")
COLUMN = {"forward": 0, "backward": 1, "update": 2}   # left to right, as in the pictures
PAD, HEAD = 12, 30          # a loop box's margin around its body, and its title's height
CHAR_W, LINE_H = 7, 15      # rough text metrics of the viewer's 12px font


def to_html(what, stage="all", heat=None, title=None, collapse_loops=False) -> str:
    """The page for `what`: the asked stage first, then whichever other views it has."""
    names = [stage] + [s for s in VIEWS if s != stage]
    views, errors = [], []
    for s in names:
        try:
            v = pick(what, s)
        except Exception as e:  # e.g. nothing to optimize: an extra view is left out
            if s == stage:
                raise
            errors.append(f"{s}: {e}")
            continue
        if v.nodes:
            views.append((s, v))
    if not views:
        raise FlowcError("render: nothing to draw in any view" +
                         (f" ({'; '.join(errors)})" if errors else ""))
    seconds = _seconds(heat)
    shares = heat.heat() if hasattr(heat, "heat") else dict(heat or {})
    has_opt = any(s == "optimized" for s, _ in views)
    data = {"title": title or "flowc graph", "views": []}
    for s, v in views:
        use_heat = s == "optimized" or not has_opt  # profile ids are the compiled graph's
        b = _Builder(v, shares if use_heat else {}, seconds if use_heat else {},
                     collapse_loops)
        data["views"].append(b.build(s))
    return _page(data)


def _seconds(heat) -> dict:
    """{node: seconds per call} from a Profile's rows (a plain dict of shares has none)."""
    out = {}
    for row in getattr(heat, "rows", None) or ():
        out[row[4]] = out.get(row[4], 0.0) + row[3]
    return out


class _Builder:
    """Turns one View into the page's arrays: nodes, edges, clusters (scopes and loops)."""

    def __init__(self, v, shares, seconds, collapse):
        self.v, self.G = v, v.G
        self.shares, self.seconds, self.collapse = shares, seconds, collapse
        self.nodes, self.edges, self.clusters = [], [], []
        grads = [tuple(self.G.nodes[n]["grad_of"]) for n in self.G.nodes
                 if self.G.nodes[n].get("grad_of")]
        self.names = S.display_names(self.G, grads)

    def build(self, stage) -> dict:
        G, v = self.G, self.v
        keys = sorted(v.nodes)
        scope = _scopes(G, keys)
        # Scope clusters come first so they are every loop cluster's possible parents.
        sc_index = {}
        for name in sorted(set(scope.values())):
            sc_index[name] = len(self.clusters)
            self.clusters.append({"n": name, "k": "scope", "p": -1})
        level = self._level(G, keys, "", outer=True)
        self._emit(level, 0.0, 0.0, lambda k: sc_index.get(scope.get(k), -1))
        # A scope's box is its members' bounding box; its proxy box (shown when collapsed)
        # sits at the top-left.
        by_cluster = {}
        for nd in self.nodes:
            by_cluster.setdefault(nd["c"], []).append(nd)
        for j, cl in enumerate(self.clusters):  # direct members (a nested loop counts as one)
            cl["m"] = len(by_cluster.get(j, ()))
        for name, c in sc_index.items():
            members = by_cluster[c]
            cl = self.clusters[c]
            x0 = min(nd["x"] for nd in members) - PAD
            y0 = min(nd["y"] for nd in members) - HEAD
            cl.update(x=x0, y=y0, w=max(nd["x"] + nd["w"] for nd in members) + PAD - x0,
                      h=max(nd["y"] + nd["h"] for nd in members) + PAD - y0, m=len(members))
            label = f"{name} ({len(members)} nodes)"
            cl["px"] = self._add(dict(i=f"scope:{name}", a=name, b=f"{len(members)} nodes",
                                      x=x0, y=y0, w=_text_w(label) + 24, h=2 * LINE_H + 10,
                                      f="#eeeeee", c=-1, k="proxy", pc=c,
                                      d={"scope": name, "nodes": len(members)}))
        return {"stage": stage, "title": _title(stage), "nodes": self.nodes,
                "edges": self.edges, "clusters": self.clusters}

    # -- layout, one graph level at a time (loop bodies are levels of their own) ------------
    def _level(self, G, keys, prefix, outer=False):
        """Lay out the nodes `keys` of G; a loop's box is sized to hold its laid-out body."""
        keyset = set(keys)
        size, subs, info = {}, {}, {}
        for k in keys:
            info[k] = self._node_info(G, k, prefix, outer)
            if G.nodes[k]["op"] in C.CONTROL:
                secs = []
                for suffix, caption, body in _bodies(G, k):
                    H = thaw(body)
                    secs.append((caption, H, self._level(H, sorted(H.nodes),
                                                         f"{prefix}{k}/{suffix}")))
                subs[k] = secs
                w = sum(s[2]["w"] for s in secs) + PAD * (len(secs) + 1)
                h = max(s[2]["h"] + (LINE_H if s[0] else 0) for s in secs) + HEAD + PAD
                w = max(w, _text_w(info[k]["a"]) + 30)
                size[k] = (w, h)
            else:
                size[k] = (max(_text_w(info[k]["a"]), _text_w(info[k]["b"])) + 16,
                           2 * LINE_H + 10)
        edges = []
        for k in keys:
            ops = sorted(((u, p) for u, _, p in G.in_edges(k, keys=True)), key=lambda e: e[1])
            edges += [(u, k) for u, _ in ops if u in keyset]
        column = {k: COLUMN.get(G.nodes[k].get("phase"), 0) for k in keys} if outer else None
        pos, routes, w, h = layout(keys, edges, size, column)
        return dict(G=G, keys=keys, size=size, subs=subs, info=info, edges=edges,
                    pos=pos, routes=routes, w=w, h=h)

    def _emit(self, lv, ox, oy, cluster_of):
        """Write a laid-out level at offset (ox, oy): its nodes, loop bodies, then edges."""
        index = {}
        for k in lv["keys"]:
            x, y = lv["pos"][k]
            w, h = lv["size"][k]
            nd = dict(lv["info"][k], x=ox + x, y=oy + y, w=w, h=h, c=cluster_of(k))
            index[k] = self._add(nd)
            if k in lv["subs"]:
                nd["k"] = "frame"
                cl = len(self.clusters)
                self.clusters.append({"n": f"{nd['a']} {nd['i']}", "k": "loop", "p": nd["c"],
                                      "px": index[k], "x": nd["x"], "y": nd["y"], "w": w,
                                      "h": h, "open": not self.collapse})
                sx = nd["x"] + PAD
                for caption, _, sub in lv["subs"][k]:
                    sy = nd["y"] + HEAD + (LINE_H if caption else 0)
                    self._emit(sub, sx, sy, lambda _k, cl=cl: cl)
                    sx += sub["w"] + PAD
        for e, (u, v) in enumerate(lv["edges"]):
            pts = [[round(ox + px, 1), round(oy + py, 1)] for px, py in lv["routes"].get(e, ())]
            self.edges.append([index[u], index[v]] + ([pts] if pts else []))

    def _add(self, nd) -> int:
        self.nodes.append(nd)
        for key in ("x", "y", "w", "h"):
            nd[key] = round(nd[key], 1)
        return len(self.nodes) - 1

    # -- what each node says ---------------------------------------------------------------
    def _node_info(self, G, k, prefix, outer):
        d = G.nodes[k]
        op, t = d["op"], d["type"]
        name = d.get("name") or (self.names.get(k) if outer else None)
        kind = S.kind(G, k, set()) if outer else ("const" if op == "const" else "forward")
        if outer and k in self.v.context:
            fill = S.CONTEXT["node"]
        else:
            fill = S.KINDS.get(kind, S.KINDS["forward"])[0].get("fillcolor", "#ffffff")
        if op in ("input", "param"):
            a, b = name or f"%{k}", f"{op} {t.short()}"
        elif op == "const" and getattr(t, "ndim", 1) == 0 and d.get("value") is not None:
            a, b = f"const {S.scalar_text(d['value'])}", t.short()
        elif op in C.CONTROL:
            a, b = C.kind_text(G, k), name or ""
        else:
            a, b = op, name or t.short()
        info = {"op": op, "type": t.short(), "phase": d.get("phase", "forward")}
        if name:
            info["name"] = name
        shape = getattr(t, "shape", None)
        if shape is not None:
            info["dtype"], info["shape"] = t.dtype, "(" + ", ".join(
                "?" if s is None else str(s) for s in shape) + ")"
        attrs = S.attr_texts(op, d.get("attrs") or {})
        if op in ("fused", "fused_reduce"):
            attrs = [f"expr={S.expr_text(d['attrs']['expr'])}"] + attrs
        if attrs:
            info["attrs"] = " ".join(attrs)
        trace = d.get("trace")
        if trace:
            info["line"] = trace
            code = _source_line(trace)
            if code:
                info["code"] = code
        if outer and k in self.shares:
            share = self.shares[k]
            fill = S.heat_colour(share)
            info["time"] = (f"{self.seconds[k] * 1e6:.1f} us/call, " if k in self.seconds
                            else "") + f"{share:.1%} of the call"
        return dict(i=f"{prefix}{k}", a=a, b=b, f=fill, k="", d=info)


def _bodies(G, n):
    """(suffix, caption, body) of each subgraph a loop or cond holds."""
    a = G.nodes[n]["attrs"]
    if G.nodes[n]["op"] == "cond":
        return [("t", "true", a["branches"][0]), ("f", "false", a["branches"][1])]
    out = [("b", "", a["body"])]
    if a.get("cond") is not None:
        out.append(("c", "condition", a["cond"]))
    return out


def _scopes(G, keys) -> dict:
    """{node: scope} from names like 'dense1.W' (scope 'dense1'); an unnamed op joins the
    scope of its named operands if they agree, else of all its operands if they agree, so a
    layer's matmul, add and activation sit with its weights while the loss stays outside."""
    keyset, scope = set(keys), {}
    for k in keys:  # sorted ids are a topological order: operands come first
        d = G.nodes[k]
        name = d.get("name") or ""
        wrt = (d.get("grad_of") or (None, None))[1]
        if wrt in scope:  # a gradient sits with what it is the gradient of
            scope[k] = scope[wrt]
            continue
        if d.get("phase") == "backward" and d.get("origin") in scope:
            scope[k] = scope[d["origin"]]
            continue
        if _scoped(name):  # not 'd%15/ddense1.W': autodiff's names are no scopes
            scope[k] = name.rsplit(".", 1)[0]
            continue
        ops = [u for u in G.predecessors(k) if u in keyset and G.nodes[u]["op"] != "const"]
        direct = {scope[u] for u in ops if u in scope and _scoped(G.nodes[u].get("name"))}
        if len(direct) == 1:
            scope[k] = direct.pop()
        elif not direct and ops and all(u in scope for u in ops) and \
                len({scope[u] for u in ops}) == 1:
            scope[k] = scope[ops[0]]
    return scope


def _scoped(name) -> bool:
    return bool(name) and "." in name and "/" not in name


def _source_line(trace) -> str:
    """The code at 'file.py:12' (the user's line that made a node), if the file is readable."""
    m = re.match(r"(.+):(\d+)$", str(trace))
    # Traces keep only the file's base name: read it only from the current folder, since a
    # search along sys.path could find another file of that name and show a wrong line.
    if not m or not os.path.isfile(m.group(1)):
        return ""
    return linecache.getline(m.group(1), int(m.group(2))).strip()[:200]


def _text_w(s) -> float:
    return len(s) * CHAR_W


def _title(stage) -> str:
    from .dot import TITLES
    return TITLES.get(stage, stage)


def _page(data) -> str:
    """The whole page: the data as inert JSON, the viewer's CSS and script inline."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    # Every '<' as \u003c (JSON.parse reads it back): no '</script>' can end the block and
    # no '<!--' can put the HTML parser into its script-escape states.
    text = text.replace("<", "\\u003c")
    here = resources.files(__package__)
    css, js = (here.joinpath(f).read_text(encoding="utf-8") for f in ("viewer.css", "viewer.js"))
    title = S.esc(data["title"])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width">'
            f"<title>{title}</title><style>{css}</style>"
            f"</head><body>\n"
            f'<div id="bar"><b>{title}</b> <span id="views"></span>'
            f'<input id="q" placeholder="search nodes (Enter: next)" size="28">'
            f'<span id="hits"></span> <button id="fit">fit</button>'
            f'<button id="open-all">expand all</button>'
            f'<button id="close-all">collapse all</button><span id="stats"></span></div>\n'
            f'<svg id="canvas"><g id="root"></g></svg><div id="tip"></div>'
            f'<pre id="selftest" hidden></pre>\n'
            f'<script type="application/json" id="flowc-data">{text}</script>\n'
            f"<script>{js}</script>\n</body></html>\n")
