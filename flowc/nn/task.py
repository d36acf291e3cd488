"""A Task says what to train: the inputs fed per batch, the loss, the trainable parameters,
metrics, and the evaluation-time (no dropout) versions. `training_function` compiles one
training step from it."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..autodiff.reverse import grad
from ..function import function
from ..ir.errors import FlowcError
from ..ir.tensor import Tensor
from ..ops import api as F
from . import losses as L
from . import metrics as M
from . import optim


@dataclass
class Task:
    """What a Trainer trains. `inputs` are fed in this order (model input, then target)."""

    inputs: List[Tensor]
    loss: Tensor
    params: List[Tensor]
    metrics: Dict[str, Tensor] = field(default_factory=dict)
    eval_loss: Optional[Tensor] = None
    eval_metrics: Optional[Dict[str, Tensor]] = None
    state_updates: List[Tuple[Tensor, Tensor]] = field(default_factory=list)
    predict: Optional[Tensor] = None      # evaluation-time model output (logits)
    name: str = "model"

    def __post_init__(self):
        if not isinstance(self.loss, Tensor) or self.loss.ndim != 0:
            raise FlowcError("a Task's loss must be a scalar Tensor, got "
                             + (self.loss.describe() if isinstance(self.loss, Tensor)
                                else type(self.loss).__name__))
        if self.eval_loss is None:
            self.eval_loss = self.loss
        if self.eval_metrics is None:
            self.eval_metrics = dict(self.metrics)

    @property
    def graph(self):
        return self.loss.graph


def supervised(model, x, y, loss="categorical_crossentropy", metrics=("accuracy",),
               name=None) -> Task:
    """The Task of fitting model(x) to targets y: loss and metrics from logits."""
    loss_fn = L.get(loss)
    metric_fns = {m if isinstance(m, str) else m.__name__: M.get(m) for m in metrics}
    out = model(x, training=True)
    out_eval = model(x, training=False) if getattr(model, "stochastic", False) else out
    loss_t = _named(loss_fn(out, y), "loss")
    train_metrics = {k: _named(f(out, y), k) for k, f in metric_fns.items()}
    two = out_eval is not out
    return Task(inputs=[x, y], loss=loss_t, params=list(model.params),
                metrics=train_metrics,
                eval_loss=_named(loss_fn(out_eval, y), "eval_loss") if two else None,
                eval_metrics={k: _named(f(out_eval, y), f"eval_{k}")
                              for k, f in metric_fns.items()} if two else None,
                state_updates=list(model.state_updates()), predict=out_eval,
                name=name or getattr(model, "name", None) or "model")


def _named(t, name):
    """Give a tensor a name for pictures and errors, unless it has one."""
    if not t.name:
        t.node["name"] = name
    return t


OPTIMIZERS = {"sgd": optim.sgd, "momentum": optim.momentum, "adagrad": optim.adagrad,
              "rmsprop": optim.rmsprop, "adam": optim.adam}


def get_optimizer(opt):
    """An fc.optim function from its name, or the callable itself."""
    if callable(opt):
        return opt
    try:
        return OPTIMIZERS[opt]
    except KeyError:
        raise FlowcError(f"unknown optimizer {opt!r}; known: "
                         f"{', '.join(sorted(OPTIMIZERS))}") from None


def optimizer_options(opt) -> List[str]:
    """The keyword options an optimizer takes (lr, mu, beta1, ...)."""
    sig = inspect.signature(get_optimizer(opt))
    return [p for p in list(sig.parameters)[2:]]


@dataclass
class Step:
    """A compiled training step and where its outputs are: loss, metrics, then (with watch)
    the sum of each gradient and of each update value, for finding the first NaN."""

    fn: object
    metric_names: List[str]
    params: List[Tensor]
    updates: List[Tuple[Tensor, Tensor]]
    watch: bool


def training_function(task: Task, optimizer="sgd", optimize="O2", device="cpu", watch=False,
                      trace=None, data_parallel=None, **opt_kwargs) -> Step:
    """Compile loss + metrics + parameter updates (optimizer and state) as one function.

    `trace` ('file:line', for models declared outside Python) credits the nodes this adds:
    gradient nodes get their forward node's line, the optimizer's nodes get `trace`.
    """
    opt = get_optimizer(optimizer)
    G = task.graph.nx
    first = task.graph._next_id
    grads = grad(task.loss, task.params) if task.params else []
    updates = list(opt(grads, task.params, **opt_kwargs)) + list(task.state_updates)
    names = list(task.metrics)
    outputs = [task.loss] + [task.metrics[k] for k in names]
    if watch:
        outputs += [F.sum(g) for g in grads] + [F.sum(v) for _, v in updates]
    if trace is not None:
        for n in range(first, task.graph._next_id):
            d = G.nodes.get(n) if n in G else None
            if d is None:
                continue
            o = d.get("origin")
            d["trace"] = G.nodes[o].get("trace") or trace if o in G else trace
    fn = function(task.inputs, outputs, updates=updates, optimize=optimize, device=device,
                  single_output=False, data_parallel=data_parallel)
    return Step(fn, names, list(task.params), updates, watch)
