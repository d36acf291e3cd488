"""Readable pictures: folded backward bookkeeping, fixed placement, scopes, sizes, titles."""
import re

import numpy as np
import pytest

import flowc as fc
from flowc.examples import logreg
from flowc.render import scopes, style
from flowc.render.select import pick


def _logreg():
    m = logreg.build()
    return [m["cost"], m["gw"], m["gb"]]


def _backward_ops(v):
    return [n for n in v.nodes if v.G.nodes[n].get("phase") == "backward"]


def test_logreg_backward_node_counts_before_and_after_folding():
    with fc.Graph():
        outs = _logreg()
        raw, folded = pick(outs, "backward", True, raw=True), pick(outs, "backward", True)
    assert len(_backward_ops(raw)) == 33   # what autodiff made
    assert len(_backward_ops(folded)) == 23
    assert folded.folded == 10
    ops = [folded.G.nodes[n]["op"] for n in _backward_ops(folded)]
    assert "expand_dims" not in ops and "broadcast_like" not in ops


def test_folded_broadcast_is_an_edge_label_and_raw_keeps_the_nodes():
    with fc.Graph():
        outs = _logreg()
        text = fc.to_dot(outs, stage="backward")
        literal = fc.to_dot(outs, stage="backward", raw=True)
    assert "broadcast to f64[784]" in text and "expand_dims" not in text
    assert "expand_dims" in literal and "broadcast_like" in literal


def test_folded_gradients_still_compute_the_same_values():
    # Folding is a drawing choice: the graph the user holds is not changed.
    with fc.Graph() as g:
        outs = _logreg()
        before = g.nx.number_of_nodes()
        fc.to_dot(outs, stage="backward")
        assert g.nx.number_of_nodes() == before


def test_forward_is_placed_left_of_backward_in_the_dot():
    with fc.Graph():
        m = logreg.build()
        text = fc.to_dot([m["cost"], m["gw"], m["gb"]], stage="all")
        cost = m["cost"].id
    seed = re.search(r"\{ rank=same; n(\d+); n(\d+); \}", text)
    assert seed and int(seed.group(1)) == cost  # tail (left) is the forward cost
    assert f"n{cost} -> n{seed.group(2)} [style=invis];" in text
    assert text.index("subgraph cluster_forward") < text.index("subgraph cluster_backward")


def _mlp():
    x = fc.input("x", shape=(None, 4))
    y = fc.input("y", shape=(None, 2))
    h = fc.nn.Dense(8, activation="tanh", name="dense1")(x)
    out = fc.nn.Dense(2, name="dense2")(h)
    loss = fc.mean((out - y) ** 2)
    params = [p for n in (1, 2) for p in (f"dense{n}.W", f"dense{n}.b")]
    return x, y, loss, params


def _params_of(graph, names):
    by = {d.get("name"): n for n, d in graph.nx.nodes(data=True)}
    return [graph.tensor(by[p]) for p in names]


def test_scope_api_tags_nodes_and_nests():
    with fc.Graph() as g:
        x = fc.input("x", shape=(3,))
        with fc.scope("encoder"):
            a = fc.tanh(x)
            with fc.scope("inner"):
                b = a * 2.0
        c = b + 1.0
    assert g.nx.nodes[a.id]["scope"] == "encoder"
    assert g.nx.nodes[b.id]["scope"] == "encoder/inner"
    assert "scope" not in g.nx.nodes[c.id] and "scope" not in g.nx.nodes[x.id]
    with pytest.raises(ValueError):
        with fc.scope("a/b"):
            pass


def test_layers_and_optimizers_are_drawn_as_clusters_when_expanded():
    with fc.Graph() as g:
        x, y, loss, names = _mlp()
        params = _params_of(g, names)
        assert g.nx.nodes[params[0].id]["scope"] == "dense1"
        ups = fc.optim.adam(loss, params)
        f = fc.function([x, y], loss, updates=ups)
        text = fc.to_dot(f, collapse=False)
    labels = re.findall(r"subgraph cluster_scope\d+_\w+ \{ label=<<FONT[^>]*>([^<]+)<", text)
    assert {"dense1", "dense2", "adam"} <= set(labels)
    assert "box3d" not in text


def test_large_graphs_collapse_to_one_box_per_scope():
    with fc.Graph() as g:
        x, y, loss, names = _mlp()
        ups = fc.optim.adam(loss, _params_of(g, names))
        f = fc.function([x, y], loss, updates=ups)
        auto, boxed = fc.to_dot(f), fc.to_dot(f, collapse=True)
        n_drawn = len(pick(f, "all").nodes)
    assert n_drawn > scopes.COLLAPSE_OVER  # so "auto" collapses
    assert auto == boxed
    boxes = re.findall(r"^\s+(scope\d+) \[.*label=<<B>([^<]+)</B>", boxed, re.M)
    assert sorted(b for _, b in boxes) == ["adam", "dense1", "dense2"]  # one box each
    # The optimizer's state is inside its box: only the model's params get update targets.
    targets = re.findall(r"new ([\w.]+)</B>", boxed)
    assert sorted(targets) == sorted(names)
    with pytest.raises(fc.FlowcError):
        fc.to_dot(f, collapse="sometimes")


def test_small_graphs_stay_expanded_on_auto():
    with fc.Graph():
        x, y, loss, _ = _mlp()
        text = fc.to_dot(loss, stage="forward")
    assert "cluster_scope" in text and "box3d" not in text


def test_title_says_forward_graph_without_gradients():
    with fc.Graph():
        x = fc.input("x", shape=(3,))
        w = fc.param("w", np.ones(3))
        cost = fc.sum(x * w)
        assert "forward graph" in fc.to_dot(cost, stage="all").split("\n")[1]
        gw = fc.grad(cost, [w])[0]
        assert "forward + backward graph" in fc.to_dot([cost, gw], stage="all")
        assert "backward graph" in fc.to_dot([cost, gw], stage="backward")


def test_node_and_legend_widths_fit_a_wide_font():
    with fc.Graph():
        text = fc.to_dot(_logreg(), stage="backward")
    # A fallback font ~0.6 em per character: every box is at least that wide.
    for line in text.splitlines():
        m = re.search(r'width="?([\d.]+)"?, .*label=(<.*>)\];$', line)
        if m:
            assert float(m.group(1)) >= style.min_width(m.group(2)) - 0.01, line
    notes = re.search(r'leg_notes \[.*width=([\d.]+), label="(.*)"\];', text)
    longest = max(len(t) for t in notes.group(2).split("\\l"))
    assert float(notes.group(1)) >= longest * 9 * 0.6 / 72
