"""Graph JSON (flowc/io/graph_json.py) keeps what the pictures and the compiler need beyond
plain ops: loops and conds (a tuple type, frozen bodies as nested lists) and each node's
scope. Saving a graph with a loop used to raise a TypeError; scopes were dropped."""
import json

import numpy as np
import pytest

import flowc as fc
from flowc.io.graph_json import GraphFileError, dumps, loads


def rnn_graph():
    x, h0 = fc.input("x", (5, 3)), fc.input("h0", (3,))
    with fc.scope("rnn"):
        W = fc.param("W", np.eye(3) * 0.5)
        hT, hs = fc.scan(lambda h, xt: (fc.tanh(xt + h @ W),) * 2, h0, x)
    with fc.scope("head"):
        c = fc.cond(fc.sum(h0) > 0, lambda a: a * 2.0, lambda a: a - 1.0, hT)
        cost = fc.sum(c) + fc.sum(hs)
    return x, h0, cost, fc.grad(cost, W)


def test_a_graph_with_a_scan_and_a_cond_round_trips_and_computes_the_same():
    with fc.Graph():
        x, h0, cost, g = rnn_graph()
        G, outs, _ = loads(dumps([cost, g]))
        f1 = fc.function([x, h0], [cost, g])
    ins = {d.get("name"): G.tensor(n) for n, d in G.nx.nodes(data=True) if d["op"] == "input"}
    f2 = fc.function([ins["x"], ins["h0"]], outs)
    rng = np.random.default_rng(0)
    for call in range(3):   # both branches of the cond, and a repeat
        X, H = rng.standard_normal((5, 3)), (1.0 if call != 1 else -1.0) * np.ones(3)
        for a, b in zip(f1(X, H), f2(X, H)):
            np.testing.assert_array_equal(a, b)
    ops = {d["op"] for _, d in G.nx.nodes(data=True)}
    assert {"loop", "cond"} <= ops


def test_scopes_are_saved_and_read_back():
    with fc.Graph():
        _, _, cost, g = rnn_graph()
        doc = json.loads(dumps([cost, g]))
    assert {"rnn", "head"} <= {n.get("scope") for n in doc["nodes"]}
    G, _, _ = loads(json.dumps(doc))
    assert {"rnn", "head"} <= {d.get("scope") for _, d in G.nx.nodes(data=True)}


@pytest.mark.parametrize("field,value,expected", [
    ("scope", 3, "scope path"),
    ("type", ["tuple", [["float64"]]], r"\[\"tuple\""),
])
def test_a_bad_scope_or_tuple_type_names_the_node_and_field(field, value, expected):
    with fc.Graph():
        _, _, cost, g = rnn_graph()
        doc = json.loads(dumps([cost, g]))
    node = next(n for n in doc["nodes"] if n["op"] == "loop")
    node[field] = value
    with pytest.raises(GraphFileError, match=rf"<json>:\d+: nodes\[\d+\] \(id {node['id']}\)"
                                             rf"\.{field}: expected .*{expected}"):
        loads(json.dumps(doc, indent=1))
