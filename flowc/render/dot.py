"""DOT text for a graph: clusters per phase, one box per backward rule, typed edges, a legend.

The text is deterministic (nodes sorted by id, edges by consumer and port, no addresses) and
ASCII, so tests compare it byte for byte.
"""
from __future__ import annotations

from collections import defaultdict

from ..ops.registry import OPS
from . import clusters as C
from . import place as P
from . import scopes as SC
from . import style as S
from .select import pick

LEAVES = ("input", "param", "const")
TITLES = {"forward": "forward graph",
          "backward": "backward graph (how the gradients are computed)",
          "optimized": "optimized graph (what the compiler runs)",
          "all": "forward + backward graph"}


def to_dot(what, stage="all", origins=None, legend=True, title=None, heat=None,
           collapse_loops=False, raw=False, collapse="auto", placement=0) -> str:
    """DOT text for `what` (Tensor, list of Tensors, Graph or Function) at `stage`.

    stage: "forward", "backward" (gradient nodes over the faded forward values they read),
    "optimized" (the compiled graph) or "all". origins: draw a dashed grey arrow from each
    backward group to the forward node it differentiates (default: on for "backward").
    heat: a Profile from `f.profile(...)` (or {node id: share of time}) colours nodes from
    white to red by the time they take; draw it with stage="optimized".
    collapse_loops: draw every loop and cond as one box instead of a cluster holding its
    body (bodies over clusters.COLLAPSE_OVER nodes are drawn so anyway).
    collapse: draw each layer / optimizer / fc.scope as one box (True), as a cluster of its
    nodes (False), or as boxes when the picture has over scopes.COLLAPSE_OVER nodes ("auto").
    raw: draw every backward node autodiff made, bookkeeping included (flowc/render/simplify.py).
    placement: which of flowc/render/place.py's ways to ask for forward | backward | updates
    columns (render tries them in turn until the drawing has that order).
    """
    origins = stage == "backward" if origins is None else bool(origins)
    v = pick(what, stage, origins, raw)
    if title is None:
        title = _title(v)
    w = _Writer(v, origins, collapse_loops, collapse, placement)
    w.heat = heat.heat() if hasattr(heat, "heat") else (heat or {})
    return w.text(legend, title)


def _title(v) -> str:
    """What the picture holds: no gradient in it means a forward graph, whatever the stage."""
    grads = any(v.G.nodes[n].get("phase") == "backward" for n in v.nodes if n not in v.context)
    stage = v.stage if grads or v.stage == "optimized" else "forward"
    extra = " and parameter updates" if v.updates and stage in ("all", "forward") else ""
    return TITLES[stage] + extra


class _Writer:
    """Collects the lines of one picture."""

    def __init__(self, v, origins, collapse=False, scopes="auto", placement=0):
        self.v, self.G, self.origins = v, v.G, origins
        self.place = P.PLACEMENTS[placement]
        G = self.G
        self.collapse = collapse
        self.open_loops = {n for n in v.nodes if C.is_open(G, n, collapse)}
        self.loop_edges = []
        grads = [tuple(G.nodes[n]["grad_of"]) for n in sorted(G.nodes)
                 if G.nodes[n].get("grad_of")]
        self.names = S.display_names(G, grads)
        self.wrts = {w for _, w in grads}
        costs = {c for c, _ in grads}
        first = {}
        for n in sorted(G.nodes):
            o = G.nodes[n].get("origin")
            if G.nodes[n].get("phase") == "backward" and o is not None:
                first.setdefault(o, n)
        self.seeds = {n for o, n in first.items() if o in costs and G.nodes[n]["op"] == "const"}
        # Scalar constants are drawn small next to each use instead of as one far-away node.
        self.inline = {n for n in v.nodes if G.nodes[n]["op"] == "const"
                       and G.nodes[n]["type"].ndim == 0 and n not in self.seeds
                       and n not in v.outputs and any(w in v.nodes for w in G.successors(n))}
        self.kinds_used = set()
        self.out = []
        drawn = v.nodes - self.inline
        self.groups = SC.members(G, drawn, v.context)
        self.scope_name = SC.names(self.groups)
        self.in_scope = {n: p for p, ns in self.groups.items() for n in ns}
        self.boxed = bool(self.groups) and SC.collapsed(scopes, len(drawn))
        # node -> the box standing for it: one per scope, drawn in the phase of its first op
        # (an optimizer's state params are forward nodes, its arithmetic update nodes).
        self.home = {p: self._phase(next((n for n in ns if G.nodes[n]["op"] not in LEAVES),
                                         ns[0])) for p, ns in self.groups.items()}
        self.box = {n: self.scope_name[p] for n, p in self.in_scope.items()} \
            if self.boxed else {}

    def text(self, legend, title) -> str:
        v, w = self.v, self.out
        w.append("digraph flowc {")
        # newrank: rank across clusters, so a backward box can sit level with its origin.
        w.append(f'  graph [compound=true, newrank=true, rankdir=TB, fontname="Helvetica", '
                 f'fontsize=14, labelloc=t, label=<{S.b(title)}>, nodesep=0.3, ranksep=0.35];')
        w.append('  node [fontname="Helvetica", fontsize=11];')
        w.append('  edge [fontname="Helvetica", fontsize=8, arrowsize=0.6];')
        by_phase = defaultdict(list)
        for n in sorted(v.nodes):
            if n not in self.inline:
                by_phase[self._phase(n)].append(n)
        columns = [(self._forward, "forward"), (self._backward, "backward"),
                   (self._update, "update")]
        for emit, key in (columns[::-1] if self.place.reverse else columns):
            emit(by_phase[key])
        # Numbered as the user listed them, even where the stage leaves some out.
        shown = [(i, n) for i, n in enumerate(v.outputs) if n in v.nodes and n not in v.context]
        for i, n in shown:
            self.kinds_used.add("output")
            w.append(f"  out{i} [{_attrs(S.KINDS['output'][0])}, label=<{S.b(f'output {i}')}>];")
        for i, n in shown:
            w.append(f"  {self._ref(n)} -> out{i} [{self._edge_style(n, n)}];")
        self._edges()
        w.extend(self.loop_edges)
        self._beside(by_phase["backward"])
        self._origin_links(by_phase["backward"])
        self._left_to_right()
        if legend:
            self._legend()
        w.append("}")
        return self.place.apply("\n".join(w) + "\n")

    # -- clusters ---------------------------------------------------------------------------
    def _forward(self, nodes):
        if not nodes:
            return
        ctx = self.v.stage == "backward"
        p = S.CONTEXT if ctx else S.PHASE["forward"]
        label = "forward values the backward pass reads" if ctx else "forward"
        self._open("forward", label, p, "dashed,rounded,filled" if ctx else "rounded,filled")
        self._scoped_nodes(nodes, "    ")
        self.out.append("  }")

    def _backward(self, nodes):
        if not nodes:
            return
        self._open("backward", "backward (gradients)", S.PHASE["backward"], "rounded,filled")
        groups = defaultdict(list)
        for n in nodes:
            groups[self.G.nodes[n].get("origin")].append(n)
        for o in sorted(groups, key=lambda o: (o is None, o if o is not None else 0)):
            if o is None:
                for n in groups[o]:
                    self._node(n, "    ")
                continue
            caption = S.small(self._group(o), "#7f4a1a")
            self.out.append(f'    subgraph cluster_b{o} {{ label=<{caption}>; '
                            f'style="dashed,rounded"; color="#d9a77a"; margin=6;')
            for n in groups[o]:
                self._node(n, "      ")
            self.out.append("    }")
        self.out.append("  }")

    def _update(self, nodes):
        targets = [(p, val) for p, val in self.v.updates]
        if not nodes and not targets:
            return
        self._open("update", "parameter updates (applied after the call)", S.PHASE["update"],
                   "rounded,filled")
        self._scoped_nodes(nodes, "    ")
        for p, val in targets:
            if self._hidden_target(p, val):
                continue
            self.kinds_used.add("target")
            d = self.G.nodes[p]
            label = f"{S.b('new ' + (d.get('name') or f'%{p}'))}<BR/>" \
                    f"{S.small('param ' + d['type'].short())}"
            self.out.append(f"    upd{p} [{_attrs(S.KINDS['target'][0])}, label=<{label}>];")
        self.out.append("  }")

    def _scoped_nodes(self, nodes, ind):
        """Nodes outside scopes, then each scope as a cluster, or as one box when collapsed."""
        by = defaultdict(list)
        for n in nodes:
            by[self.in_scope.get(n)].append(n)
        for n in by.pop(None, []):
            self._node(n, ind)
        for path in sorted(by):
            name = self.scope_name[path]
            if self.boxed:
                if self._phase(by[path][0]) == self.home[path]:
                    self.kinds_used.add("scope")
                    self.out.append(SC.box_line(self.G, path, self.groups[path], name, ind))
                continue
            name += "_" + ("context" if by[path][0] in self.v.context else
                           self._phase(by[path][0]))
            self.out.append(SC.cluster_open(path, name, ind))
            for n in by[path]:
                self._node(n, ind + "  ")
            self.out.append(f"{ind}}}")

    def _hidden_target(self, p, val) -> bool:
        """An optimizer's own state (moments, step count) is not drawn when its box stands in."""
        return val in self.box and self.in_scope.get(p) == self.in_scope[val]

    def _open(self, key, label, p, style):
        self.out.append(f'  subgraph cluster_{key} {{ label=<{S.b(label)}>; fontsize=12; '
                        f'style="{style}"; fillcolor="{p["cluster"]}"; color="{p["border"]}";')


    def _group(self, o) -> str:
        """Caption of the box holding the backward nodes that one forward node's rule made."""
        G = self.G
        if o not in G:
            return f"through %{o}" + (" (rewritten away)" if self.v.stage == "optimized" else "")
        d = G.nodes[o]
        who = self.names.get(o) or d.get("name")
        if o in self.wrts or d["op"] in ("input", "param"):
            return f"total gradient for {who or f'%{o}'}"
        return f"through {d['op']} %{o}" + (f" ({who})" if who else "")

    # -- nodes and edges ----------------------------------------------------------------------
    def _node(self, n, ind):
        G = self.G
        if n in self.open_loops:
            self._loop(n, ind)
            return
        k = S.kind(G, n, self.seeds)
        attrs = dict(S.KINDS[k][0])
        if n in self.v.context:
            self.kinds_used.add("context")
            attrs.update(fillcolor=S.CONTEXT["node"], color=S.CONTEXT["border"],
                         fontcolor=S.CONTEXT["font"], style=attrs["style"] + ",dashed")
        else:
            self.kinds_used.add(k)
        if G.nodes[n]["op"] in ("fused", "fused_reduce"):
            attrs.update(peripheries="2", penwidth="1.5")  # a fused group: one box, one pass
        share = getattr(self, "heat", {}).get(n)
        if share is not None:
            attrs.update(fillcolor=S.heat_colour(share), style="rounded,filled")
            attrs["tooltip"] = f"{share:.1%} of the call"
        trace = G.nodes[n].get("trace")
        if trace and "tooltip" in attrs:
            trace = attrs["tooltip"] + " - " + trace
        if trace:
            attrs["tooltip"] = trace
        label = S.node_label(G, n, k, self.names, self.v.stage)
        if G.nodes[n]["op"] in C.CONTROL:  # a loop drawn as one box
            self.kinds_used.add("loop")
            attrs.update(shape="box3d", style=attrs["style"].replace("rounded,", ""))
            label = C.collapsed_label(G, n)
        attrs["width"] = f"{S.min_width(label):.2f}"  # text fits whatever font draws it
        self.out.append(f"{ind}n{n} [{_attrs(attrs)}, label={label}];")
        self._inline_consts(n, ind)

    def _loop(self, n, ind):
        """A loop or cond as a cluster holding its body (flowc/render/clusters.py)."""
        phase = "context" if n in self.v.context else self._phase(n)
        self.kinds_used.add("context" if phase == "context" else phase)
        self.kinds_used.add("port")
        lines, edges = C.draw(self.G, n, f"n{n}", ind, phase, self._back(n), self.collapse)
        self.out.extend(lines)
        self.loop_edges.extend(edges)
        self._inline_consts(n, ind)

    def _inline_consts(self, n, ind):
        G = self.G
        # Inline scalar constants sit beside their consumer, in the consumer's cluster.
        for u, port in self._operands(n):
            if u in self.inline:
                self.kinds_used.add("const")
                self.out.append(f'{ind}n{u}_{n}_{port} [{_attrs(S.SCALAR)}, '
                                f'label="{S.scalar_text(G.nodes[u].get("value"))}"];')

    def _operands(self, n):
        return sorted(((u, k) for u, _, k in self.G.in_edges(n, keys=True)), key=lambda e: e[1])

    def _edges(self):
        G, v = self.G, self.v
        seen = set()  # edges into or out of a box, drawn once per pair
        for n in sorted(v.nodes):
            if n in self.inline:
                continue
            ops = self._operands(n)
            op = OPS.get(G.nodes[n]["op"])
            # An open loop's ports name its operands, so its edges need no a:, b:.
            ordered = len(ops) > 1 and not (op is not None and op.commutative) \
                and n not in self.open_loops
            for u, port in ops:
                if u not in v.nodes or (u in self.inline and n in self.box):
                    continue
                if u in self.inline:
                    tail, label = f"n{u}_{n}_{port}", ""
                elif u in self.open_loops:  # leave the loop from the part's out-port
                    part = G.nodes[n]["attrs"].get("index", 0) if G.nodes[n]["op"] == "part" \
                        else 0
                    tail, label = C.out_port(f"n{u}", part), G.nodes[n]["type"].short()
                else:
                    tail, label = f"n{u}", G.nodes[u]["type"].short()
                head = C.in_port(f"n{n}", port) if n in self.open_loops else f"n{n}"
                if u in self.box or n in self.box:
                    if self.box.get(u) == self.box.get(n):
                        continue  # inside one box
                    tail, head = self.box.get(u, tail), self.box.get(n, head)
                    if (tail, head) in seen:
                        continue
                    seen.add((tail, head))
                via = G.edges[u, n, port].get("via")
                if via:  # a folded bookkeeping op (flowc/render/simplify.py)
                    label = f"{label} {via}".strip()
                if ordered:
                    label = f"{chr(97 + port) if port < 26 else port}: {label}".rstrip(": ")
                attrs = self._edge_style(u, n) + (f', label="{label}"' if label else "")
                if self._back(n) and (self._back(u) or u in self.inline):
                    # The backward column is laid out bottom-up, mirroring the forward graph,
                    # so each backward box sits beside the forward node it differentiates.
                    self.out.append(f"  {head} -> {tail} [dir=back, {attrs}];")
                elif self._back(n):
                    self.out.append(f"  {tail} -> {head} [constraint=false, {attrs}];")
                else:
                    self.out.append(f"  {tail} -> {head} [{attrs}];")
        for p, val in v.updates:
            if self._hidden_target(p, val):
                continue
            self.out.append(f'  {self._ref(val)} -> upd{p} [{self._edge_style(val, val)}, '
                            f'label="{G.nodes[val]["type"].short()}"];')

    def _ref(self, n) -> str:
        """The DOT node standing for n: itself, its scope's box, or a port inside its loop."""
        if n in self.box:
            return self.box[n]
        return C.anchor(self.G, n, f"n{n}") if n in self.open_loops else f"n{n}"

    def _beside(self, backward):
        """Level each backward loop with the forward loop it differentiates."""
        G = self.G
        for n in backward:
            o = G.nodes[n].get("origin")
            if G.nodes[n]["op"] not in C.CONTROL or o not in self.v.nodes or o in self.box \
                    or G.nodes[o]["op"] not in C.CONTROL or o in self.inline:
                continue
            # Tops level: a forward loop's in-ports, a (bottom-up) backward loop's out-ports.
            top_o = C.in_port(f"n{o}", 0) if o in self.open_loops else f"n{o}"
            top_n = C.out_port(f"n{n}", 0) if n in self.open_loops else f"n{n}"
            self.out.append(f"  {{ rank=same; {top_o}; {top_n}; }}")

    def _phase(self, n) -> str:
        p = self.G.nodes[n].get("phase")
        return p if p in S.PHASE else "forward"

    def _back(self, n) -> bool:
        return self.G.nodes[n].get("phase") == "backward" and n not in self.v.context

    def _edge_style(self, u, n) -> str:
        """Edges take the colour of the phase that produced the value they carry."""
        if u in self.v.context:
            c = S.CONTEXT["edge"]
        else:
            c = S.PHASE[self._phase(u)]["edge"]
        return f'color="{c}", fontcolor="{c}"'

    def _origin_links(self, backward):
        """Tie each backward box to the node it came from: same height, and a dashed arrow."""
        G, done = self.G, set()
        for n in backward:
            o = G.nodes[n].get("origin")
            if o is None or o in done or o not in self.v.nodes or o in self.inline:
                continue
            done.add(o)
            look = (f'style=dashed, color="{S.ORIGIN_LINK}", arrowhead=empty, penwidth=0.8'
                    if self.origins else "style=invis")
            # (A loop drawn open is reached through a port, the arrow clipped at its box.)
            ltail = f", ltail=cluster_n{o}" if o in self.open_loops else ""
            self.out.append(f"  {self._ref(o)} -> {self._ref(n)} [dir=back, "
                            f"lhead=cluster_b{o}{ltail}, minlen=0, weight=4, {look}];")
        if done and self.origins:
            self.kinds_used.add("origin")

    def _left_to_right(self):
        """Forward on the left, backward on the right, every time: a flat invisible edge
        (same rank, tail drawn left of head) from each cost to its seed."""
        for s in sorted(self.seeds):
            o = self.G.nodes[s].get("origin")
            if s in self.v.nodes and o in self.v.nodes and o not in self.inline \
                    and o not in self.open_loops and o not in self.box:
                self.out.append(f"  {{ rank=same; n{o}; n{s}; }}")
                self.out.append(f"  n{o} -> n{s} [style=invis];")

    def _legend(self):
        used = [k for k in S.KINDS if k in self.kinds_used]
        if not used:
            return
        w = self.out
        w.append('  subgraph cluster_legend { label=<<B>legend</B>>; fontsize=10; style="rounded"; '
                 'color="#cccccc"; margin=6;')
        w.append('    node [fontsize=9, width=0, height=0, margin="0.06,0.03"];')
        for k in used:
            width = S.min_width(S.KINDS[k][1], 9)
            w.append(f"    leg_{k} [{_attrs(S.KINDS[k][0])}, width={width:.2f}, "
                     f"label=\"{S.KINDS[k][1]}\"];")
        notes = ["edge label: dtype[shape] of the value, ? = size known at call time",
                 "a:, b: = operand order; small text: %node id and attrs"]
        if self.v.stage in ("backward", "all") and "seed" in self.kinds_used:
            notes.append("backward column reads bottom-up: the seed beside the cost, then one "
                         "dashed box per forward op, up to the gradients")
        if "port" in self.kinds_used:
            notes.append("loop box: its body, run once per step; x0[t]: the step's slice of a "
                         "sequence, c0: a carry, k0: a value every step reads")
            notes.append("green arrow: a carry's new value, the next step's c0; y0[t]: "
                         "stacked over the steps")
        if "origin" in self.kinds_used:
            notes.append("dashed grey arrow: a backward box -> the forward node it differentiates")
        text = "".join(_q(t) + "\\l" for t in notes)  # \l: left-justified lines
        # As wide as its longest line in a wide font, so no line is cut.
        w.append(f'    leg_notes [shape=plaintext, fontsize=9, width={S.min_width(text, 9):.2f}, '
                 f'label="{text}"];')
        # Rows of four keep the legend short, so it does not stretch the picture's height.
        rows = [used[i:i + 4] for i in range(0, len(used), 4)]
        for row in rows:
            w.append("    { rank=same; " + " ".join(f"leg_{k};" for k in row) + " }")
        firsts = [f"leg_{row[0]}" for row in rows] + ["leg_notes"]
        w.append(f"    {' -> '.join(firsts)} [style=invis];")
        w.append("  }")


_attrs, _q = S.attrs_text, S.quote
