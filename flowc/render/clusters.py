"""Loops and conds in pictures: one cluster per loop holding its body, carries as back edges.

A drawn loop has port nodes for its operands (in-ports: the step's slice of each sequence,
the carries, the consts) and for its body's outputs (out-ports: new carries, per-step
values); the outer graph's edges end at those ports, so a reader follows a value into the
loop and out again. Each carry's new value goes back to its in-port by a green arrow, the
only cycle in the picture (drawn without a rank constraint, so the body still reads top
down). A cond is a cluster with its branches as sub-clusters. Big bodies, or all loops with
collapse=True, are one box saying the kind, length and carries instead.
"""
from __future__ import annotations

from ..ir.body import thaw
from ..ops.registry import OPS
from . import style as S

COLLAPSE_OVER = 40  # bodies with more nodes than this are drawn as one box
CONTROL = ("loop", "cond")
CARRY = "#1b7837"  # the back edge and the carry ports
PORT = dict(shape="box", style="rounded,filled", fillcolor="#ffffff", fontsize="8",
            margin="0.04,0.02", width="0", height="0")
CARRY_PORT = dict(PORT, fillcolor="#d9f0d3", color=CARRY)
COLLAPSED = dict(shape="box3d", style="filled")


def is_open(G, n, collapse) -> bool:
    """Whether the loop or cond node n is drawn as a cluster (not collapsed to one box)."""
    d = G.nodes[n]
    if d["op"] not in CONTROL or collapse:
        return False
    a = d["attrs"]
    bodies = list(a.get("branches") or ()) + [a.get("body"), a.get("cond")]
    return sum(len(b[1]) for b in bodies if b is not None) <= COLLAPSE_OVER


def kind_text(G, n) -> str:
    """'scan, 5 steps', 'scan (reverse), ? steps', 'while_loop, at most 50 steps', 'cond'."""
    d = G.nodes[n]
    if d["op"] == "cond":
        return "cond"
    a = d["attrs"]
    if a.get("cond") is not None:
        bound = a.get("length")
        return "while_loop" + (f", at most {bound} steps" if bound is not None else "")
    t = d["type"]
    steps = a.get("length")
    ys = t.parts[a["n_carry"]:] if hasattr(t, "parts") else ()
    if steps is None and ys:
        steps = ys[0].shape[a.get("stack_axis", 0)]
    if steps is None and a["n_seq"]:  # no per-step output: the first sequence's length
        first = [u for u, _, p in G.in_edges(n, keys=True) if p == 0]
        shape = G.nodes[first[0]]["type"].shape if first else (None,)
        steps = shape[0] if shape else None
    return "scan" + (" (reverse)" if a.get("reverse") else "") + \
        f", {'?' if steps is None else steps} steps"


def port_names(G, n) -> tuple:
    """(in-port texts per operand, out-port texts per output) of a loop or cond node."""
    d = G.nodes[n]
    a = d["attrs"]
    n_in = G.in_degree(n)
    if d["op"] == "cond":
        n_out = len(d["type"].parts)
        return ["pred"] + [f"a{j}" for j in range(n_in - 1)], [f"r{j}" for j in range(n_out)]
    ns, nc = a["n_seq"], a["n_carry"]
    n_body = len(a["body"][0])
    ins = [f"x{j}[t]" for j in range(ns)] + [f"c{j}" for j in range(nc)] + \
        [f"k{j}" for j in range(n_body - ns - nc)] + [f"cond k{j}" for j in range(n_in - n_body)]
    n_out = len(a["body"][2])
    return ins, [f"c{j} new" for j in range(nc)] + [f"y{j}[t]" for j in range(n_out - nc)]


def in_port(name, port) -> str:
    """The DOT node an outer edge into operand `port` of the loop drawn as `name` ends at."""
    return f"{name}_i{port}"


def out_port(name, index) -> str:
    """The DOT node that part `index` of the loop drawn as `name` leaves from."""
    return f"{name}_o{index}"


def anchor(G, n, name) -> str:
    """A node inside the loop's cluster for edges about the whole loop (with lhead/ltail)."""
    return out_port(name, 0) if len(port_names(G, n)[1]) else in_port(name, 0)


def collapsed_label(G, n) -> str:
    """One box for a whole loop: its kind and length, its carries, the id and body sizes."""
    d = G.nodes[n]
    lines = [S.b(kind_text(G, n))]
    if d["op"] == "loop":
        nc = d["attrs"]["n_carry"]
        types = [t.short() for t in d["type"].parts[:nc]]
        if types:
            lines.append(S.esc("carries: " + ", ".join(f"c{j} {t}" for j, t in enumerate(types))))
    note = " ".join([f"%{n}"] + S.attr_texts(d["op"], d.get("attrs") or {}))
    return "<" + "<BR/>".join(lines + [S.small(note)]) + ">"


def _sections(G, n, name):
    """(suffix, title, body, input port of each body input, where each output goes)."""
    a = G.nodes[n]["attrs"]
    if G.nodes[n]["op"] == "cond":
        m = G.in_degree(n) - 1
        ins = [in_port(name, j + 1) for j in range(m)]
        outs = [out_port(name, j) for j in range(len(G.nodes[n]["type"].parts))]
        return [("t", "true", a["branches"][0], ins, outs),
                ("f", "false", a["branches"][1], ins, outs)]
    ns, nc = a["n_seq"], a["n_carry"]
    n_body = len(a["body"][0])
    body = a["body"]
    out = [("b", None, body, [in_port(name, j) for j in range(n_body)],
            [out_port(name, j) for j in range(len(body[2]))])]
    if a.get("cond") is not None:
        ins = [in_port(name, ns + j) for j in range(nc)] + \
            [in_port(name, j) for j in range(n_body, G.in_degree(n))]
        out.append(("c", "condition (checked before each step)", a["cond"], ins,
                    [f"{name}_go"]))
    return out


def draw(G, n, name, ind, phase, backward, collapse):
    """(node lines, edge lines) for the loop or cond node n of G drawn as `name`.

    phase: the palette key (forward/backward) or "context" for faded background. backward:
    the picture's backward column runs bottom-up, so body edges are drawn reversed there
    too. Nested loops become nested clusters; a stack, not recursion, walks the nesting.
    Edges are returned apart: an edge written inside a cluster would pull its ends into it.
    """
    pal = S.CONTEXT if phase == "context" else S.PHASE[phase]
    node_look = dict(S.KINDS["backward" if phase == "backward" else "forward"][0])
    if phase == "context":
        node_look.update(fillcolor=S.CONTEXT["node"], color=S.CONTEXT["border"],
                         fontcolor=S.CONTEXT["font"], style="rounded,filled,dashed")
    lines, edges = [], []
    stack = [("open", G, n, name, ind)]
    while stack:
        task = stack.pop()
        if task[0] == "line":
            lines.append(task[1])
            continue
        _, G, n, name, ind = task
        todo = _open_loop(G, n, name, ind, pal, lines, edges)
        for suffix, title, body, ins, outs in _sections(G, n, name):
            H = thaw(body)
            sub = ind + "  "
            if title is not None:
                todo.append(("line", f'{sub}subgraph cluster_{name}_{suffix} {{ '
                                     f'label=<{S.small(title, pal["edge"])}>; '
                                     f'style="dashed,rounded"; color="{pal["border"]}";'))
            if suffix == "c":
                todo.append(("line", f'{sub}  {name}_go [{S.attrs_text(PORT)}, '
                                     f'label="continue?"];'))
            inner = sub + ("  " if title is not None else "")
            names = {k: ins[k] for k in range(len(body[0]))}
            for k in sorted(H.nodes):
                if k in names:
                    continue
                names[k] = f"{name}_{suffix}{k}"
                if is_open(H, k, collapse):
                    todo.append(("open", H, k, names[k], inner))
                else:
                    todo.append(("line", _body_node(H, k, names[k], inner, node_look)))
            edges.extend(_body_edges(H, names, outs, collapse, pal, backward))
            if title is not None:
                todo.append(("line", f"{sub}}}"))
        todo.append(("line", f"{ind}}}"))
        stack.extend(reversed(todo))
    return lines, edges


def _open_loop(G, n, name, ind, pal, lines, edges):
    """Open the cluster of one loop, write its ports and carry back edges; the rest to do."""
    ins, outs = port_names(G, n)
    note = " ".join([f"%{n}"] + S.attr_texts(G.nodes[n]["op"], G.nodes[n]["attrs"]))
    lines.append(f'{ind}subgraph cluster_{name} {{ label=<{S.b(kind_text(G, n))}<BR/>'
                 f'{S.small(note)}>; '
                 f'fontsize=11; style="rounded,filled"; fillcolor="#ffffff"; '
                 f'color="{pal["border"]}"; penwidth=1.5; margin=8;')
    carries = set()
    if G.nodes[n]["op"] == "loop":
        ns, nc = G.nodes[n]["attrs"]["n_seq"], G.nodes[n]["attrs"]["n_carry"]
        carries = set(range(ns, ns + nc))
        for j in range(nc):
            # A carry's new value is the next step's input: the one cycle, kept out of ranking.
            edges.append(f'  {out_port(name, j)} -> {in_port(name, ns + j)} [constraint=false, '
                         f'color="{CARRY}", fontcolor="{CARRY}", penwidth=1.6, style=bold, '
                         f'label="carry c{j}"];')
    todo = []
    for p, text in enumerate(ins):
        look = CARRY_PORT if p in carries else PORT
        todo.append(("line", f'{ind}  {in_port(name, p)} [{S.attrs_text(look)}, '
                             f'label="{S.quote(text)}"];'))
    nc = len(carries)
    for j, text in enumerate(outs):
        look = CARRY_PORT if j < nc else PORT
        todo.append(("line", f'{ind}  {out_port(name, j)} [{S.attrs_text(look)}, '
                             f'label="{S.quote(text)}"];'))
    return todo


def _body_node(H, k, dot_name, ind, look):
    d = H.nodes[k]
    if d["op"] in CONTROL:  # a nested loop drawn collapsed
        attrs = dict(look, **COLLAPSED)
        return f"{ind}{dot_name} [{S.attrs_text(attrs)}, label={collapsed_label(H, k)}];"
    if d["op"] == "const":
        label = S.node_label(H, k, "const", {})
        return f"{ind}{dot_name} [{S.attrs_text(S.KINDS['const'][0])}, label={label}];"
    if d["op"] in ("conv", "conv_bias", "fused", "fused_reduce"):  # their own labels: geometry, expression
        label = S.node_label(H, k, "forward", {})
    else:  # no %id: a body's ids are its own and would read as the outer graph's
        note = " ".join(S.attr_texts(d["op"], d.get("attrs") or {}))
        label = "<" + S.esc(d["op"]) + (f"<BR/>{S.small(note)}" if note else "") + ">"
    return f"{ind}{dot_name} [{S.attrs_text(look)}, label={label}];"


def _body_edges(H, names, outs, collapse, pal, backward):
    """Edges between a body's nodes, from its inputs' ports, and to its output ports."""
    colour = f'color="{pal["edge"]}", fontcolor="{pal["edge"]}"'

    def tail(u, v):
        if is_open(H, u, collapse):  # a nested loop: leave from the part's out-port
            idx = H.nodes[v]["attrs"].get("index", 0) if H.nodes[v]["op"] == "part" else 0
            return out_port(names[u], idx)
        return names[u]

    def edge(t, h, label):
        lab = f', label="{S.quote(label)}"' if label else ""
        if backward:
            return f"  {h} -> {t} [dir=back, {colour}{lab}];"
        return f"  {t} -> {h} [{colour}{lab}];"

    out = []
    for v in sorted(H.nodes):
        if H.nodes[v]["op"] == "input":
            continue
        ops = sorted(((u, p) for u, _, p in H.in_edges(v, keys=True)), key=lambda e: e[1])
        op = OPS.get(H.nodes[v]["op"])
        ordered = len(ops) > 1 and not (op is not None and op.commutative)
        for u, p in ops:
            head = in_port(names[v], p) if is_open(H, v, collapse) else names[v]
            label = H.nodes[u]["type"].short() if H.nodes[u]["op"] != "input" else ""
            if ordered:
                label = f"{chr(97 + p) if p < 26 else p}: {label}".rstrip(": ")
            out.append(edge(tail(u, v), head, label))
    graph_outs = H.graph["outputs"]
    for j, u in enumerate(graph_outs):
        t = out_port(names[u], 0) if is_open(H, u, collapse) else names[u]
        out.append(edge(t, outs[j], ""))
    return out
