"""Readable one-line text of an expression (Theano's `pp`)."""
from __future__ import annotations

INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@",
         "less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=",
         "equal": "==", "not_equal": "!="}


def pp(t, max_depth=40) -> str:
    """The expression computing tensor `t` as text; named nodes print as their name."""
    G = t.graph.nx
    memo = {}

    def text(n, depth, top=False):
        d = G.nodes[n]
        if d.get("name") and not top and d["op"] != "const":
            return d["name"]
        if d["op"] in ("input", "param"):
            return d.get("name") or f"%{n}"
        if d["op"] == "const":
            v = d["value"]
            return repr(v.item()) if v.size == 1 else f"const{list(v.shape)}"
        if depth > max_depth:
            return "..."
        if (n, top) in memo:
            return memo[(n, top)]
        args = [u for _, u in sorted((k, u) for u, _, k in G.in_edges(n, keys=True))]
        parts = [text(a, depth + 1) for a in args]
        op = d["op"]
        if op in INFIX and len(parts) == 2:
            s = f"({parts[0]} {INFIX[op]} {parts[1]})"
        elif op == "neg":
            s = f"-{parts[0]}"
        else:
            attrs = [f"{k}={v}" for k, v in sorted(d["attrs"].items()) if v is not None
                     and v is not False and k != "index"]
            s = f"{op}({', '.join(parts + attrs)})"
        memo[(n, top)] = s
        return s

    return text(t.id, 0, top=True)
