"""The interactive viewer's layout puts forward | backward | updates in bands, left to right,
as the static pictures do (flowc/render/layout.py's `column`)."""
import json

import numpy as np

import flowc as fc
from flowc.render.html import to_html
from flowc.render.layout import layout


def views(html):
    i = html.index('type="application/json"')
    return json.loads(html[html.index(">", i) + 1: html.index("</script>", i)])["views"]


def test_the_training_step_reads_forward_backward_updates_in_every_view():
    from flowc.examples import logreg
    m = logreg.build()
    f = fc.function([m["x"], m["y"]], [m["cost"]],
                    updates=[(m["w"], m["w"] - 0.1 * m["gw"]), (m["b"], m["b"] - 0.1 * m["gb"])])
    for v in views(to_html(f, stage="all")):
        spans = {}
        for nd in v["nodes"]:
            ph = nd.get("d", {}).get("phase")
            lo, hi = spans.get(ph, (np.inf, -np.inf))
            spans[ph] = (min(lo, nd["x"]), max(hi, nd["x"] + nd["w"]))
        order = [p for p in ("forward", "backward", "update") if p in spans]
        for a, b in zip(order, order[1:]):
            assert spans[a][1] < spans[b][0], (v["stage"], spans)


def test_layout_bands_keep_each_column_whole_and_clear_of_the_others():
    keys = list(range(8))
    edges = [(0, 1), (1, 2), (0, 3), (3, 4), (2, 5), (4, 5), (5, 6), (1, 7)]
    size = {k: (40 + 10 * k, 20) for k in keys}
    column = {0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1, 6: 2, 7: 2}
    pos, _, width, _ = layout(keys, edges, size, column)
    right = {c: max(pos[k][0] + size[k][0] for k in keys if column[k] == c) for c in (0, 1, 2)}
    left = {c: min(pos[k][0] for k in keys if column[k] == c) for c in (0, 1, 2)}
    assert right[0] < left[1] and right[1] < left[2] and width >= right[2]
    plain, _, _, _ = layout(keys, edges, size)   # no columns: the old layout, unchanged
    assert set(plain) == set(keys)
