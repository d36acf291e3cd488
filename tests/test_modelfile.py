"""Model files (TOML) and graph JSON: good files build the same graph as Python code, bad
files get errors naming the file, the line, the field, what was expected and what came."""
import json
import os

import networkx as nx
import numpy as np
import pytest

import flowc as fc
from flowc import nn
from flowc.io import GraphFileError, load_graph, loads, save_graph
from flowc.models import ModelFileError, load_model_file
from flowc.models.resolve import EXAMPLES, export, from_graph_file, resolve

GOOD = """\
[model]
name = "tiny"
seed = 1

[inputs.x]
shape = ["batch", 4]

[inputs.y]
shape = ["batch"]
dtype = "int64"

[[layers]]
type = "dense"
units = 8
activation = "relu"

[[layers]]
type = "dropout"
rate = 0.2

[[layers]]
type = "dense"
units = 3

[loss]
type = "categorical_crossentropy"
target = "y"

[optimizer]
type = "adam"
lr = 0.01

[train]
epochs = 3
batch_size = 16
"""


def write(tmp_path, text, name="model.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def line_of(text, piece):
    return text[:text.index(piece)].count("\n") + 1


def test_a_good_file_builds_the_model(tmp_path):
    path = write(tmp_path, GOOD)
    b = load_model_file(path)
    assert b.name == "tiny" and b.optimizer == "adam" and b.opt_kwargs == {"lr": 0.01}
    assert b.train["epochs"] == 3 and b.train["batch_size"] == 16
    assert [p.name for p in b.task.params] == ["dense1.W", "dense1.b", "dense2.W", "dense2.b"]
    assert [t.name for t in b.task.inputs] == ["x", "y"]
    assert b.task.inputs[1].dtype == "int64" and b.task.inputs[0].shape == (None, 4)
    assert b.task.predict.shape == (None, 3)
    # Nodes point at the model file's lines.
    assert b.task.params[0].node["trace"] == f"model.toml:{line_of(GOOD, '[[layers]]')}"
    assert b.task.loss.node["trace"] == f"model.toml:{line_of(GOOD, '[loss]')}"
    assert [u[0].name for u in b.task.state_updates] == ["dropout1.rng"]


def test_the_file_builds_the_same_graph_as_python(tmp_path):
    b = load_model_file(write(tmp_path, GOOD))
    with fc.Graph():
        x = fc.input("x", (None, 4))
        y = fc.input("y", (None,), "int64")
        m = nn.Sequential([nn.Dense(8, "relu"), nn.Dropout(0.2), nn.Dense(3)], seed=1)
        task = nn.supervised(m, x, y)
    for p, q in zip(b.task.params, task.params):
        assert p.name == q.name and np.array_equal(p.get_value(), q.get_value())
    X = np.random.default_rng(0).standard_normal((5, 4))
    Y = np.array([0, 1, 2, 1, 0])
    f1 = fc.function(b.task.inputs, [b.task.loss, b.task.eval_loss])
    f2 = fc.function(task.inputs, [task.loss, task.eval_loss])
    assert np.allclose(f1(X, Y), f2(X, Y))


def test_the_shipped_model_files_load():
    from flowc.models.data import BUILTIN
    shipped = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".toml"))
    assert {"digits_mlp.toml", "digits_cnn.toml", "lenet5.toml"} <= set(shipped)
    for name in shipped:
        with fc.Graph():
            b = load_model_file(os.path.join(EXAMPLES, name))
            assert b.train["data"] in BUILTIN


# Each bad file: (text replaced, replacement, the marker whose line is named, the message).
BAD = [
    ('units = 8', 'units = "eight"', 'units = "eight"',
     'layers[0].units: expected an integer >= 1, got "eight" (a string)'),
    ('units = 8\n', '', '[[layers]]',
     'layers[0].units: expected a positive integer, got nothing (the field is missing)'),
    ('units = 8', 'unitz = 8', 'unitz',
     "layers[0].unitz: unknown field (did you mean 'units'?); expected one of activation, "
     "bias_init, init, name, seed, type, units, use_bias"),
    ('type = "dropout"', 'type = "dropot"', 'type = "dropot"',
     'layers[1].type: expected a layer type: activation, avgpool2d, batchnorm, conv1d, '
     'conv2d, conv_transpose2d, dense, dropout, elu, flatten, globalavgpool, gru, layernorm, '
     'leaky_relu, linear, log_softmax, lstm, maxpool2d, relu, reshape, rnn, sigmoid, softmax, '
     'softplus, tanh, '
     'got "dropot" (a string)'),
    ('rate = 0.2', 'rate = 1.5', 'rate', 'layers[1].rate: expected a number in [0, 1), got 1.5 '
     '(a number)'),
    ('shape = ["batch", 4]', 'shape = ["batch", -4]', 'shape = ["batch", -4]',
     'inputs.x.shape[1]: expected a dimension: an integer >= 0, or a string such as "batch" '
     'for a size known at call time, got -4 (an integer)'),
    ('shape = ["batch", 4]', 'shape = ["batch", "features"]', '[inputs.x]',
     'inputs.x.shape: expected a known last dimension (the number of features), got '
     '["batch", "features"] (an array)'),
    ('lr = 0.01', 'momentum = 0.9', 'momentum',
     'optimizer.momentum: unknown field; expected one of beta1, beta2, eps, lr, type'),
    ('lr = 0.01', 'lr = "fast"', 'lr', 'optimizer.lr: expected a number >= 0, got "fast" '
     '(a string)'),
    ('target = "y"', 'target = "z"', 'target', 'loss.target: expected an input: x, y, got "z" '
     '(a string)'),
    ('dtype = "int64"', 'dtype = "int65"', 'dtype', 'inputs.y.dtype: expected a numeric NumPy '
     'dtype name (float64, float32, int64, ...), got "int65" (a string)'),
    ('[optimizer]', '[optimiser]', '[optimiser]', "optimiser: unknown field (did you mean "
     "'optimizer'?); expected one of inputs, layers, loss, model, optimizer, train"),
    ('batch_size = 16', 'batch_size = 0', 'batch_size',
     'train.batch_size: expected an integer >= 1, got 0 (an integer)'),
    ('units = 8', 'units = 8 8', 'units = 8 8', 'invalid TOML: Expected newline or end of '
     'document after a statement (at line 14, column 11)'),
    ('[inputs.x]\nshape = ["batch", 4]\n\n', '', '[inputs.y]',
     'inputs: expected a feature input for the layers to read besides the loss\'s target '
     '\'y\' (e.g. [inputs.x] with shape = ["batch", 4]), got only \'y\''),
]


@pytest.mark.parametrize("old, new, marker, message", BAD, ids=[b[1] or "missing" for b in BAD])
def test_bad_files_name_file_line_field_expected_and_got(tmp_path, old, new, marker, message):
    text = GOOD.replace(old, new, 1)
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(ModelFileError) as e:
        load_model_file(path)
    assert str(e.value) == f"{path}:{line_of(text, marker)}: {message}"


def test_shape_errors_in_the_graph_point_at_the_file(tmp_path):
    text = GOOD.replace('shape = ["batch"]\ndtype = "int64"', 'shape = ["batch", 5]')
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(ModelFileError) as e:
        load_model_file(path)
    assert str(e.value) == (
        f"{path}:{line_of(text, '[loss]')}: loss: the target y: f64[?,5] (input, made at "
        f"bad.toml:{line_of(text, '[inputs.y]')}) does not match the model's output dense2: "
        f"f64[?,3] (add, made at bad.toml:{line_of(text, 'units = 3') - 2})")


def test_unreadable_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read the file"):
        load_model_file(str(tmp_path / "missing.toml"))
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(ModelFileError, match="bin.toml: not UTF-8 text"):
        load_model_file(str(p))


# -- graph JSON ----------------------------------------------------------------------------------
def small_graph():
    x = fc.input("x", (None, 3))
    w = fc.param("w", np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]]))
    h = fc.tanh(x @ w)
    cost = fc.mean(fc.sum(h[:, 0:1] ** 2, axis=1)) + fc.sum(fc.constant([1.0, 2.0]) * h.mean(0))
    gw = fc.grad(cost, w)
    return x, w, cost, gw


def test_graph_json_round_trip(tmp_path):
    x, w, cost, gw = small_graph()
    path = save_graph([cost, gw], str(tmp_path / "g.json"))
    doc = json.load(open(path))
    assert doc["directed"] and doc["multigraph"] and doc["graph"]["format"] == "flowc-graph"
    node = {n["name"]: n for n in doc["nodes"] if n.get("name")}
    assert node["w"]["value"] == {"dtype": "float64", "shape": [3, 2],
                                  "data": [[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]]}
    assert node["x"]["type"] == ["float64", [None, 3]]
    # It is networkx node-link data: networkx itself reads it back.
    G = nx.node_link_graph(doc, edges="edges")
    assert isinstance(G, nx.MultiDiGraph) and G.number_of_edges() == len(doc["edges"])
    g, outs, _ = load_graph(path)
    src = cost.graph.nx
    for n in g.nx.nodes:
        for k in ("op", "attrs", "type", "name", "phase", "trace"):
            assert g.nx.nodes[n][k] == src.nodes[n][k], (n, k)
    assert sorted(g.nx.edges(keys=True)) == sorted(src.subgraph(g.nx.nodes).edges(keys=True))
    X = np.random.default_rng(0).standard_normal((4, 3))
    xin = [t for t in (g.tensor(n) for n in g.nx.nodes) if t.op == "input"]
    a = fc.function([x], [cost, gw])(X)
    b = fc.function(xin, outs)(X)
    assert all(np.allclose(u, v) for u, v in zip(a, b))


def test_a_model_exported_as_json_trains_the_same(tmp_path):
    path = write(tmp_path, GOOD)
    loaded = resolve(path)
    jpath = export(loaded, str(tmp_path / "tiny.json"))
    again = from_graph_file(jpath)
    assert again.optimizer == "adam" and again.opt_kwargs == {"lr": 0.01}
    assert [p.name for p in again.task.params] == [p.name for p in loaded.task.params]
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    h = []
    for L in (loaded, again):
        tr = nn.Trainer(L.task, L.optimizer, **L.opt_kwargs)
        h.append(tr.fit([X, Y], epochs=2, batch_size=16).as_dict()["loss"])
    assert h[0] == h[1]


def test_bad_graph_json_is_named(tmp_path):
    x, w, cost, gw = small_graph()
    text = json.dumps(json.loads(open(save_graph(cost, str(tmp_path / "g.json"))).read()),
                      indent=1)
    with pytest.raises(GraphFileError, match=r"g.json:3: invalid JSON: Expecting"):
        loads(text.replace('"multigraph": true', '"multigraph": tru'), "g.json")
    doc = json.loads(text)
    i = next(k for k, n in enumerate(doc["nodes"]) if n["op"] == "matmul")
    nid = doc["nodes"][i]["id"]
    bad = json.loads(text)
    bad["nodes"][i]["type"] = ["float64", [None, 5]]
    with pytest.raises(GraphFileError) as e:
        loads(json.dumps(bad, indent=1), "g.json")
    assert f"node {nid} made at " in str(e.value)
    assert "stored type f64[?,5] but matmul of its operands gives f64[?,2]" in str(e.value)
    assert str(e.value).startswith("g.json:")
    bad = json.loads(text)
    bad["nodes"][i]["op"] = "matmull"
    with pytest.raises(GraphFileError) as e:
        loads(json.dumps(bad, indent=1), "g.json")
    line = json.dumps(bad, indent=1)[:json.dumps(bad, indent=1).index('"matmull"')].count("\n")
    assert str(e.value) == (f"g.json:{line}: nodes[{i}] (id {nid}).op: expected a known op "
                            "(did you mean 'matmul'?); `flowc ops` lists them, got \"matmull\"")
    bad = json.loads(text)
    bad["nodes"][i]["type"] = "f64"
    with pytest.raises(GraphFileError, match=rf'g.json:\d+: nodes\[{i}\] \(id {nid}\).type: '
                       r'expected \[dtype, shape\] such as \["float64", \[null, 3\]\] '
                       r'\(or \["tuple", \[\[dtype, shape\], \.\.\.\]\] for a loop\), got "f64"'):
        loads(json.dumps(bad, indent=1), "g.json")
    bad = json.loads(text)
    bad["graph"]["format"] = "other"
    with pytest.raises(GraphFileError, match='graph.format: expected "flowc-graph", got "other"'):
        loads(json.dumps(bad), "g.json")
    bad = json.loads(text)
    bad["edges"][0]["source"] = 999
    with pytest.raises(GraphFileError, match=r"edges\[0\].source: expected the id of a node"):
        loads(json.dumps(bad), "g.json")


def test_module_function_models_resolve():
    loaded = resolve("flowc.examples.nn_mlp:task")
    assert loaded.kind == "python" and loaded.name == "digits_mlp"
    assert loaded.optimizer == "adam" and loaded.opt_kwargs == {"lr": 0.003}
    assert loaded.train["epochs"] == 30 and loaded.train["data"] == "digits"
    assert [p.name for p in loaded.task.params] == ["dense1.W", "dense1.b", "dense2.W",
                                                    "dense2.b"]
    assert loaded.task.params[0].node["trace"].startswith("nn_mlp.py:")
