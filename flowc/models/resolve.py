"""The CLI's MODEL argument: a model file (.toml), a saved graph (.json), or
`module:function` returning tensors (a Tensor, a list of them, a dict with "loss", or a
flowc.nn Task)."""
from __future__ import annotations

import importlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..io.graph_json import GraphFileError, load_graph, save_graph
from ..ir.errors import FlowcError
from ..ir.graph import Graph
from ..ir.tensor import Tensor
from ..nn.task import Task
from .build import Built, load_model_file

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


class ModelError(FlowcError):
    """MODEL names nothing usable (no such file, unknown kind, import failure)."""


class UserCodeError(FlowcError):
    """The user's `module:function` raised."""


@dataclass
class Loaded:
    """What a MODEL argument gave: its graph, inputs and outputs, and a Task if it has a loss."""

    kind: str
    name: str
    graph: Graph
    inputs: List[Tensor]
    outputs: List[Tensor]
    task: Optional[Task] = None
    optimizer: str = "sgd"
    opt_kwargs: Dict = field(default_factory=dict)
    train: Dict = field(default_factory=dict)
    source: str = ""
    trace: Optional[str] = None   # credited to the optimizer's nodes (model files)


def shipped_examples():
    """The model files shipped in flowc/examples, by file name."""
    return sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".toml"))


def resolve(arg, graph=None) -> Loaded:
    """Load MODEL into `graph` (default: a fresh Graph)."""
    g = graph or Graph()
    path = arg
    if not os.path.exists(path) and os.path.basename(path) in shipped_examples():
        path = os.path.join(EXAMPLES, os.path.basename(path))  # the installed copy
    if path.endswith(".toml"):
        if not os.path.isfile(path):
            raise ModelError(f"{arg}: no such model file")
        return from_built(load_model_file(path, g))
    if path.endswith(".json"):
        if not os.path.isfile(path):
            raise ModelError(f"{arg}: no such graph file")
        return from_graph_file(path)
    if ":" in arg and not os.path.exists(arg):
        return from_python(arg, g)
    if os.path.exists(arg):
        raise ModelError(f"{arg}: expected a model file (.toml), a saved graph (.json) or "
                         "module:function")
    raise ModelError(f"{arg}: no such file (MODEL is a model file .toml, a saved graph .json, "
                     "or module:function)")


def from_built(b: Built) -> Loaded:
    """A Loaded for a built model file."""
    t = b.task
    return Loaded("modelfile", b.name, b.graph, list(t.inputs), task_outputs(t), t,
                  b.optimizer, dict(b.opt_kwargs), dict(b.train), b.source, b.trace)


def task_outputs(t: Task):
    """The tensors a Task shows: loss, metrics, evaluation-time output."""
    outs = [t.loss] + list(t.metrics.values())
    return outs + ([t.predict] if t.predict is not None else [])


def from_python(arg, g) -> Loaded:
    """Import `module`, call `function()` inside graph g, and wrap what it returns."""
    mod_name, _, fn_name = arg.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ModelError(f"{arg}: cannot import module {mod_name!r} ({e})") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ModelError(f"{arg}: module {mod_name!r} has no function {fn_name!r}")
    with g:
        try:
            result = fn()
        except FlowcError:
            raise
        except Exception as e:
            raise UserCodeError(f"{arg} raised {type(e).__name__}: {e}") from e
    return from_result(result, arg, fn_name)


def from_result(result, source, name) -> Loaded:
    """A Loaded for what a user's function returned: a Tensor or list of them; a Task; or a
    dict with "task" or "loss" (+ "inputs", "params", "metrics"), and optionally
    "optimizer" ({"type": "adam", "lr": ...}) and "train" ({"epochs": ..., "data": ...})."""
    if isinstance(result, Built):
        return from_built(result)
    opt, train = {"type": "sgd"}, {}
    if isinstance(result, dict) and ("loss" in result or "task" in result):
        opt = dict(result.get("optimizer") or opt)
        train = dict(result.get("train") or {})
        if "task" in result:
            result = result["task"]
        else:
            loss = result["loss"]
            inputs = list(result.get("inputs") or graph_inputs([loss]))
            params = list(result.get("params") or graph_params([loss]))
            result = Task(inputs=inputs, loss=loss, params=params,
                          metrics=dict(result.get("metrics") or {}), name=name)
    if isinstance(result, Task):
        return Loaded("python", result.name, result.graph, list(result.inputs),
                      task_outputs(result), result, opt.pop("type", "sgd"), opt, train,
                      source=source)
    outs = [result] if isinstance(result, Tensor) else \
        list(result) if isinstance(result, (list, tuple)) else None
    if not outs or not all(isinstance(t, Tensor) for t in outs):
        raise ModelError(f"{source}: expected the function to return a Tensor, a list of "
                         f"Tensors, a dict with 'loss', or a flowc.nn Task; got "
                         f"{type(result).__name__}")
    return Loaded("python", name, outs[0].graph, graph_inputs(outs), outs, source=source)


def graph_inputs(outputs):
    """The input tensors the outputs depend on, in creation order."""
    import networkx as nx
    g = outputs[0].graph
    need = set()
    for t in outputs:
        need |= nx.ancestors(g.nx, t.id) | {t.id}
    return [g.tensor(n) for n in sorted(need) if g.nx.nodes[n]["op"] == "input"]


def graph_params(outputs):
    """The float param tensors the outputs depend on, in creation order."""
    import networkx as nx
    import numpy as np
    g = outputs[0].graph
    need = set()
    for t in outputs:
        need |= nx.ancestors(g.nx, t.id)
    return [g.tensor(n) for n in sorted(need) if g.nx.nodes[n]["op"] == "param"
            and np.issubdtype(np.dtype(g.nx.nodes[n]["type"].dtype), np.floating)]


# -- graph files ---------------------------------------------------------------------------------
def task_roles(loaded: Loaded) -> dict:
    """Plain data naming the node ids of a Task (and the training settings) for graph JSON."""
    t = loaded.task
    roles = {"name": loaded.name}
    if t is None:
        return roles
    roles.update(
        inputs=[x.id for x in t.inputs], loss=t.loss.id, params=[p.id for p in t.params],
        metrics={k: v.id for k, v in t.metrics.items()}, eval_loss=t.eval_loss.id,
        eval_metrics={k: v.id for k, v in t.eval_metrics.items()},
        state_updates=[[p.id, v.id] for p, v in t.state_updates],
        predict=t.predict.id if t.predict is not None else None,
        optimizer={"type": loaded.optimizer, **loaded.opt_kwargs}, train=loaded.train,
        trace=loaded.trace)
    return roles


def export(loaded: Loaded, path) -> str:
    """Save a loaded model's graph (with its Task's roles) as graph JSON."""
    extra = []
    if loaded.task is not None:
        t = loaded.task
        extra = [t.eval_loss.id] + [v.id for v in t.eval_metrics.values()] + \
            [v.id for _, v in t.state_updates] + [p.id for p in t.params]
    return save_graph(loaded.outputs, path, roles=task_roles(loaded), extra_nodes=extra)


def from_graph_file(path) -> Loaded:
    """A Loaded for a graph JSON file (a Task when it records a loss)."""
    g, outs, roles = load_graph(path)
    name = roles.get("name") or os.path.splitext(os.path.basename(path))[0]
    if "loss" not in roles:
        if not outs:
            raise ModelError(f"{path}: the graph names no outputs (graph.outputs is empty)")
        return Loaded("graph", name, g, graph_inputs(outs), outs, source=path)
    _check_roles(g, roles, path)
    try:
        T = g.tensor
        task = Task(inputs=[T(i) for i in roles["inputs"]], loss=T(roles["loss"]),
                    params=[T(i) for i in roles["params"]],
                    metrics={k: T(v) for k, v in roles.get("metrics", {}).items()},
                    eval_loss=T(roles["eval_loss"]) if roles.get("eval_loss") is not None
                    else None,
                    eval_metrics={k: T(v) for k, v in roles["eval_metrics"].items()}
                    if roles.get("eval_metrics") is not None else None,
                    state_updates=[(T(p), T(v)) for p, v in roles.get("state_updates", [])],
                    predict=T(roles["predict"]) if roles.get("predict") is not None else None,
                    name=name)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{path}: graph.roles is damaged ({type(e).__name__}: {e})") from None
    opt, train = _check_settings(roles, path)
    return Loaded("graph", name, g, list(task.inputs), task_outputs(task), task,
                  opt.pop("type"), opt, train, path, roles.get("trace"))


# role -> (what its node must be, the ops it may not be, must it be a scalar)
_ROLE_NODES = {
    "inputs": ("an input node", lambda op: op == "input", False),
    "params": ("a param node", lambda op: op == "param", False),
    "loss": ("a scalar node computed from the inputs and params (the loss)",
             lambda op: op not in ("input", "param", "const"), True),
    "eval_loss": ("a scalar node computed from the inputs and params (the loss)",
                  lambda op: op not in ("input", "param", "const"), True),
    "metrics": ("a scalar node", lambda op: True, True),
    "eval_metrics": ("a scalar node", lambda op: True, True),
    "predict": ("a node of the graph", lambda op: True, False),
}


def _check_roles(g, roles, path):
    """Each role names nodes of the right kind; a GraphFileError (exit 2) names the field."""
    if not isinstance(roles, dict):
        _role_fail(path, "graph.roles", "an object", roles)
    for role, (what, op_ok, scalar) in _ROLE_NODES.items():
        v = roles.get(role)
        if v is None and role not in ("inputs", "params", "loss"):
            continue
        ids = v if role in ("inputs", "params") else \
            v if role in ("metrics", "eval_metrics") else {role: v}
        if role in ("inputs", "params") and not isinstance(v, list):
            _role_fail(path, f"graph.roles.{role}", "a list of node ids", v)
        if role in ("metrics", "eval_metrics") and not isinstance(v, dict):
            _role_fail(path, f"graph.roles.{role}", "an object of name: node id", v)
        items = enumerate(ids) if isinstance(ids, list) else ids.items()
        for k, nid in items:
            field = f"graph.roles.{role}" + ("" if k == role else f"[{k!r}]" if
                                              isinstance(k, str) else f"[{k}]")
            _check_role_node(g, path, field, nid, what, op_ok, scalar)
    ups = roles.get("state_updates", [])
    if not isinstance(ups, list) or not all(isinstance(u, list) and len(u) == 2 for u in ups):
        _role_fail(path, "graph.roles.state_updates", "a list of [param id, node id] pairs", ups)
    for i, (p, v) in enumerate(ups):
        _check_role_node(g, path, f"graph.roles.state_updates[{i}][0]", p, "a param node",
                         lambda op: op == "param", False)
        _check_role_node(g, path, f"graph.roles.state_updates[{i}][1]", v, "a node of the graph",
                         lambda op: True, False)


def _check_role_node(g, path, field, nid, what, op_ok, scalar):
    if not isinstance(nid, int) or isinstance(nid, bool) or nid not in g.nx:
        _role_fail(path, field, f"the id of {what}", nid)
    t = g.tensor(nid)
    if not op_ok(t.op) or (scalar and t.ndim != 0):
        _role_fail(path, field, f"the id of {what}", nid, f"node {nid}, {t.describe()}")


def _role_fail(path, field, expected, got, shown=None):
    key = field.split(".")[-1].split("[")[0]
    raise GraphFileError(f"{path}{_roles_line(path, key)}: {field}: expected {expected}, got "
                         f"{shown or json.dumps(got, default=str)}")


def _roles_line(path, key):
    """':line' of `key` inside the file's graph.roles object, or '' if not found."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    start = text.find('"roles"')
    m = re.compile(rf'"{re.escape(key)}"\s*:').search(text, max(start, 0))
    return f":{text.count(chr(10), 0, m.start()) + 1}" if start >= 0 and m else ""


def _check_settings(roles, path):
    """(optimizer options, train settings) of graph.roles, checked as a model file's are."""
    from .modelfile import _Checker, _optimizer, _train
    c = _Checker(path, "", prefix=("graph", "roles"))
    opt = _optimizer(c, roles.get("optimizer") or {"type": "sgd"})
    given = roles.get("train") or {}
    if isinstance(given, dict):  # (anything else gets the checker's error)
        given = {k: v for k, v in given.items() if v is not None}
    train = _train(c, given)
    return {"type": opt["type"], **opt["options"]}, {k: train[k] for k in given}
