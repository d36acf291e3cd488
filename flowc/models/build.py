"""Turn a checked model-file spec into the graph: inputs, a Sequential model, the loss and
metrics (a flowc.nn Task), the optimizer and the training settings. Every node carries the
model file's `file:line` that declared it, so pictures and errors point into the file."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Dict, Optional

from ..ir.errors import FlowcError
from ..ir.graph import Graph, default_graph
from ..leaves import input as make_input
from ..nn import conv as NC
from ..nn import layers as NL
from ..nn import norm as NN
from ..nn import recurrent as NR
from ..nn.task import Task, supervised
from .modelfile import ModelFileError, fmt_field, read


@dataclass
class Built:
    """A model ready to train: the Task, its optimizer and training settings."""

    name: str
    task: Task
    graph: Graph
    optimizer: str = "sgd"
    opt_kwargs: Dict = field(default_factory=dict)
    train: Dict = field(default_factory=dict)
    model: Optional[object] = None
    source: str = ""
    trace: Optional[str] = None   # 'file:line' credited to the optimizer's nodes

    @property
    def inputs(self):
        return self.task.inputs

    @property
    def outputs(self):
        """The tensors to show: the loss, the metrics and the evaluation-time output."""
        outs = [self.task.loss] + list(self.task.metrics.values())
        return outs + ([self.task.predict] if self.task.predict is not None else [])


def load_model_file(path, graph=None) -> Built:
    """Read, check and build a model file into `graph` (default: the current graph)."""
    return build(read(path), graph)


def build(spec, graph=None) -> Built:
    """Build a checked spec (from modelfile.read) into `graph`."""
    g = graph or default_graph()
    path = spec["path"]
    base = os.path.basename(path)

    def at(line):
        return g.emitting("forward", trace=f"{base}:{line}") if line else \
            contextlib.nullcontext()

    inputs = {}
    for name, s in spec["inputs"].items():
        with at(s["line"]):
            inputs[name] = make_input(name, s["shape"], s["dtype"], graph=g)
    x = inputs[spec["input"]]
    if x.ndim == 0 or x.type.shape[-1] is None:
        raise ModelFileError(path, spec["inputs"][spec["input"]]["line"],
                             fmt_field(("inputs", spec["input"], "shape")),
                             "a known last dimension (the number of features)",
                             spec["inputs"][spec["input"]]["text"])
    layers = []
    for i, s in enumerate(spec["layers"]):
        try:
            layer = _layer(s)
        except FlowcError as e:  # arguments the checker lets through (filters % groups)
            raise ModelFileError(path, s["line"], fmt_field(("layers", i)),
                                 message=getattr(e, "detail", str(e))) from None
        layer.trace = f"{base}:{s['line']}" if s["line"] else None
        layers.append(layer)
    model = NL.Sequential(layers, seed=spec["seed"], name=spec["name"])
    loss = spec["loss"]
    y = inputs[loss["target"]]
    try:
        with at(loss["line"]):
            task = supervised(model, x, y, loss=loss["type"], metrics=spec["train"]["metrics"],
                              name=spec["name"])
    except FlowcError as e:
        i = getattr(e, "layer_index", None)
        if i is not None:
            raise ModelFileError(path, spec["layers"][i]["line"], fmt_field(("layers", i)),
                                 message=str(e)) from None
        raise ModelFileError(path, loss["line"], "loss", message=str(e)) from None
    return Built(name=spec["name"], task=task, graph=g, optimizer=spec["optimizer"]["type"],
                 opt_kwargs=dict(spec["optimizer"]["options"]), train=dict(spec["train"]),
                 model=model, source=path,
                 trace=f"{base}:{spec['optimizer']['line'] or loss['line']}")


def _layer(s):
    kind = s["type"]
    common = {k: s[k] for k in ("name", "seed") if k in s}
    if kind == "dense":
        return NL.Dense(s["units"], activation=s.get("activation"),
                        init=s.get("init", "glorot_uniform"),
                        bias_init=s.get("bias_init", "zeros"),
                        use_bias=s.get("use_bias", True), **common)
    if kind == "dropout":
        return NL.Dropout(s["rate"], **common)
    if kind == "reshape":
        return NR.Reshape(s["shape"], name=common.get("name"))
    if kind in ("rnn", "lstm", "gru"):
        cls = {"rnn": NR.RNN, "lstm": NR.LSTM, "gru": NR.GRU}[kind]
        return cls(s["units"], return_sequences=s.get("return_sequences", False),
                   init=s.get("init", "glorot_uniform"),
                   recurrent_init=s.get("recurrent_init", "orthogonal"), **common)
    if kind in ("conv1d", "conv2d", "conv_transpose2d"):
        cls = {"conv1d": NC.Conv1D, "conv2d": NC.Conv2D,
               "conv_transpose2d": NC.ConvTranspose2D}[kind]
        opts = {k: s[k] for k in ("stride", "padding", "dilation", "groups", "use_bias",
                                  "activation", "init", "bias_init", "output_padding") if k in s}
        return cls(s["filters"], s["kernel_size"], **opts, **common)
    if kind in ("maxpool2d", "avgpool2d"):
        cls = NC.MaxPool2D if kind == "maxpool2d" else NC.AvgPool2D
        opts = {k: s[k] for k in ("stride", "padding", "ceil_mode", "count_include_pad")
                if k in s}
        return cls(s["kernel_size"], **opts, name=common.get("name"))
    if kind == "globalavgpool":
        return NC.GlobalAvgPool(name=common.get("name"))
    if kind == "flatten":
        return NC.Flatten(name=common.get("name"))
    if kind == "batchnorm":
        return NN.BatchNorm(eps=s.get("eps", 1e-5), momentum=s.get("momentum", 0.1),
                            affine=s.get("affine", True), **common)
    if kind == "layernorm":
        return NN.LayerNorm(eps=s.get("eps", 1e-5),
                            elementwise_affine=s.get("elementwise_affine", True), **common)
    fn = s["function"] if kind == "activation" else kind
    return NL.Activation(fn, name=common.get("name"))
