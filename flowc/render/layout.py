"""A layered (Sugiyama-style) layout in pure Python, near-linear, for the HTML viewer.

Graphviz gives nicer pictures but its pure-Python build takes minutes on 5,000 nodes; the
viewer needs positions in seconds. Layers by longest path (sources pulled down next to their
first use), dummy nodes on short long edges, a few barycenter sweeps to cut crossings, then
x by packing each layer and pulling nodes toward their neighbours.
"""
from __future__ import annotations

from collections import defaultdict

GAP_X, GAP_Y = 24, 40   # space between boxes side by side, and between layers
MAX_SPAN = 8            # longer edges get no dummies (drawn straight) so big graphs stay fast
SWEEPS = 4


def layout(keys, edges, size, column=None):
    """Place boxes: keys in a stable order, edges (u, v) between them, size {key: (w, h)};
    column {key: 0, 1, 2...} (optional): boxes of a higher column lie wholly to the right of
    every box of a lower one (forward | backward | updates).

    Returns (pos {key: (x, y)} top-left corners, routes {edge index: [(x, y), ...]} bend
    points of the edges that got dummies, width, height).
    """
    keys = list(keys)
    if not keys:
        return {}, {}, 0, 0
    order_of = {k: j for j, k in enumerate(keys)}
    succ, pred = defaultdict(list), defaultdict(list)
    for u, v in edges:
        if u != v:
            succ[u].append(v)
            pred[v].append(u)
    layer = _layers(keys, succ, pred, order_of)
    # Dummies: one per layer crossed, so long edges bend around boxes instead of through them.
    nodes = {k: layer[k] for k in keys}
    chains, s2, p2 = {}, defaultdict(list), defaultdict(list)
    budget = 4 * len(keys)
    for e, (u, v) in enumerate(edges):
        span = layer[v] - layer[u]
        chain = [u]
        if 1 < span <= MAX_SPAN and budget > 0:
            budget -= span - 1
            for j in range(1, span):
                d = ("~", e, j)
                nodes[d] = layer[u] + j
                chain.append(d)
            chains[e] = chain[1:]
        chain.append(v)
        for a, b in zip(chain, chain[1:]):
            s2[a].append(b)
            p2[b].append(a)
    rows = defaultdict(list)
    for k in sorted(nodes, key=lambda k: (nodes[k], order_of.get(k, len(keys)))):
        rows[nodes[k]].append(k)
    rows = [rows[r] for r in sorted(rows)]
    _order(rows, s2, p2)
    col = {}
    if column:
        # A dummy belongs to its edge's source's column; within a row, columns in order.
        col = {k: column.get(k if k in size else edges[k[1]][0], 0) for k in nodes}
        for row in rows:
            row.sort(key=col.get)   # stable: keeps the sweeps' order inside a column
    w = {k: (size[k][0] if k in size else 2) for k in nodes}
    x = _xs(rows, w, s2, p2)
    if col:
        _bands(x, w, col)
    ys, y = [], 0.0
    for row in rows:
        ys.append(y)
        y += max(size[k][1] if k in size else 0 for k in row) + GAP_Y
    pos, ypos = {}, {}
    for r, row in enumerate(rows):
        for k in row:
            ypos[k] = ys[r]
            if k in size:
                pos[k] = (x[k], ys[r])
    routes = {e: [(x[d] + 1, ypos[d] + 10) for d in ch] for e, ch in chains.items()}
    width = max(x[k] + w[k] for k in nodes)
    return pos, routes, width, y - GAP_Y


def _bands(x, w, col):
    """Shift each column right, whole, until it clears the columns left of it."""
    right = float("-inf")
    for c in sorted(set(col.values())):
        members = [k for k in x if col[k] == c]
        left = min(x[k] for k in members)
        shift = max(0.0, right + 2 * GAP_X - left) if right > float("-inf") else 0.0
        for k in members:
            x[k] += shift
        right = max(x[k] + w[k] for k in members)


def _layers(keys, succ, pred, order_of):
    """Longest-path layers in topological order; cycles (none expected) are broken by order."""
    indeg = {k: 0 for k in keys}
    for k in keys:
        for v in succ[k]:
            indeg[v] += 1
    ready = [k for k in keys if indeg[k] == 0]
    topo, seen = [], set()
    while len(topo) < len(keys):
        if not ready:  # a cycle: take the earliest unplaced key
            ready = [next(k for k in keys if k not in seen)]
        k = ready.pop()
        if k in seen:
            continue
        seen.add(k)
        topo.append(k)
        for v in succ[k]:
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    layer = {}
    for k in topo:
        layer[k] = max((layer[u] + 1 for u in pred[k] if u in layer), default=0)
    # Sources (params, constants, inputs) sit right above their first use, not all at the top.
    for k in reversed(topo):
        if not pred[k] and succ[k]:
            layer[k] = max(0, min(layer[v] for v in succ[k]) - 1)
    return layer


def _sweeps(rows, succ, pred):
    """(row, neighbours) for SWEEPS alternating passes: down the rows against their
    predecessors, then up against their successors."""
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        for r in (range(1, len(rows)) if down else range(len(rows) - 2, -1, -1)):
            yield rows[r], (pred if down else succ)


def _order(rows, succ, pred):
    """Barycenter sweeps, down then up: each node moves to the mean place of its neighbours."""
    place = {k: j for row in rows for j, k in enumerate(row)}
    for row, nb in _sweeps(rows, succ, pred):
        bary = {}
        for k in row:
            ps = [place[u] for u in nb[k]]
            bary[k] = sum(ps) / len(ps) if ps else place[k]
        row.sort(key=lambda k: bary[k])
        for j, k in enumerate(row):
            place[k] = j


def _xs(rows, w, succ, pred):
    """x of each box: packed in order, then pulled toward its neighbours' centres."""
    x = {}
    for row in rows:
        cur = 0.0
        for k in row:
            x[k] = cur
            cur += w[k] + GAP_X
    for row, nb in _sweeps(rows, succ, pred):
        want = {}
        for k in row:
            cs = [x[u] + w[u] / 2 for u in nb[k]]
            want[k] = (sum(cs) / len(cs) - w[k] / 2) if cs else x[k]
        # Keep the order: a left-to-right pass pushes right, a right-to-left pass pushes
        # left, and the mean of the two stays close to where each box wants to be.
        a, cur = {}, float("-inf")
        for k in row:
            a[k] = max(want[k], cur)
            cur = a[k] + w[k] + GAP_X
        b, cur = {}, float("inf")
        for k in reversed(row):
            b[k] = min(want[k], cur - w[k])
            cur = b[k] - GAP_X
        cur = float("-inf")
        for k in row:
            x[k] = max((a[k] + b[k]) / 2, cur)
            cur = x[k] + w[k] + GAP_X
    left = min(x.values())
    return {k: v - left for k, v in x.items()}
