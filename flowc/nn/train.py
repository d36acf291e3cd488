"""The training loop: shuffled mini-batches per epoch, one compiled training step, held-out
evaluation, a history, checkpoints that resume exactly, and an early stop on NaN that says
where the first non-finite value appeared."""
from __future__ import annotations

import math
import os
import time

import numpy as np

from ..function import function
from ..ir.errors import FlowcError
from . import checkpoint as ckpt
from .history import History
from .progress import Progress
from .task import Task, get_optimizer, training_function

CHECKPOINT_FILE = "checkpoint.npz"


class TrainingDiverged(FlowcError):
    """The loss, a gradient or an updated parameter became NaN or infinite."""

    def __init__(self, message, epoch, batch, where, history):
        super().__init__(message)
        self.epoch, self.batch, self.where, self.history = epoch, batch, where, history


class Trainer:
    """Trains a Task with an fc.optim optimizer (name or function, options as keywords).

    The training step is compiled once, for mini-batches of any size (the inputs' batch
    dimension is None). `seed` seeds the shuffling; its generator state, the epoch counter,
    the history and every parameter (optimizer and random-generator state included) go into
    checkpoints, so a resumed run gives the same result as an uninterrupted one.
    """

    def __init__(self, task: Task, optimizer="sgd", seed=0, optimize="O2", device="cpu",
                 nan_check=True, trace=None, data_parallel=None, **opt_kwargs):
        self.task = task
        self.optimizer = optimizer if isinstance(optimizer, str) else \
            getattr(get_optimizer(optimizer), "__name__", "custom")
        self.opt_kwargs = dict(opt_kwargs)
        self.optimize, self.device = optimize, device
        # data_parallel (True or the pass's options): each process of an MPI job trains on its
        # share of every batch; results equal one process's up to float reassociation.
        self.world = None
        if data_parallel:
            from ..parallel import world
            self.world = world()
        self.step = training_function(task, optimizer, optimize, device, watch=nan_check,
                                      trace=trace, data_parallel=data_parallel, **opt_kwargs)
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self.steps = 0
        self.history = History()
        self._eval = self._predict = None

    # -- state --------------------------------------------------------------------------------
    @property
    def state_params(self):
        """Every parameter the training step reads or updates (model, optimizer, generators)."""
        return [self.task.graph.tensor(p["key"]) for p in self.step.fn.program.params]

    def save(self, path):
        """Write a checkpoint (.npz, atomic) of all parameters and the loop's state."""
        meta = dict(epoch=self.epoch, steps=self.steps, rng=self.rng.bit_generator.state,
                    history=self.history.as_dict(), task=self.task.name,
                    optimizer=dict(type=self.optimizer, **_jsonable(self.opt_kwargs)),
                    world_size=1 if self.world is None else self.world.size)
        if self.world is None or self.world.size == 1:
            return ckpt.save_params(path, self.state_params, meta)
        # One writer (rank 0, temp file then rename); the others wait until it is complete.
        out = ckpt.save_params(path, self.state_params, meta) if self.world.rank == 0 else path
        self.world.barrier()
        return out

    def load(self, path):
        """Restore a checkpoint written by `save`; training continues where it stopped."""
        params = self.state_params
        arrays, meta = ckpt.read_params(path, params)
        try:  # everything is checked before anything changes
            rng = type(self.rng.bit_generator)()
            rng.state = meta["rng"]
            epoch, steps = int(meta["epoch"]), int(meta["steps"])
            history = History(meta["history"])
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
            raise ckpt.CheckpointError(f"{path}: not a readable checkpoint: the file is damaged "
                                       f"(its training state: {type(e).__name__}: {e})") from None
        ckpt.set_params(params, arrays)
        self.rng.bit_generator.state = rng.state
        self.epoch, self.steps, self.history = epoch, steps, history
        return meta

    # -- training -----------------------------------------------------------------------------
    def fit(self, data, epochs, batch_size=32, validation=None, shuffle=True, checkpoint=None,
            progress=None, log=None, stream=None, columns=100):
        """Train until `epochs` epochs are done in total (a resumed trainer continues).

        data / validation: arrays in the order of task.inputs. checkpoint: a folder; the
        state is saved there after every epoch. progress: None shows a bar when `stream`
        (default stdout) is a terminal. log: a function given one line per epoch.
        Returns the History; raises TrainingDiverged on NaN.
        """
        # Overflow is expected when training diverges; it is detected and reported below.
        with np.errstate(all="ignore"):
            return self._fit(data, epochs, batch_size, validation, shuffle, checkpoint,
                             progress, log, stream, columns)

    def _fit(self, data, epochs, batch_size, validation, shuffle, checkpoint, progress, log,
             stream, columns):
        data = self._arrays(data, "data")
        val = self._arrays(validation, "validation") if validation is not None else None
        if val is not None:
            self._check_finite(val, "validation")
        for k, v, lo in (("batch_size", batch_size, 1), ("epochs", epochs, 0)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise FlowcError(f"{k} must be an integer >= {lo}, got {v!r}")
        n = len(data[0])
        nb = max(1, math.ceil(n / batch_size))
        if self.steps == 0:
            self._check_start()
        w = self.world
        if w is not None and w.size > 1:
            from ..parallel import broadcast_params, shard
            shard(batch_size, 0, w.size, f"batch_size {batch_size}")
            if n % batch_size:
                shard(n % batch_size, 0, w.size, f"the last batch of each epoch ({n} samples "
                      f"in batches of {batch_size})")
            broadcast_params(self.state_params, w)  # rank 0's values, whatever each made
        while self.epoch < epochs:
            e = self.epoch + 1
            start = time.perf_counter()
            order = self.rng.permutation(n) if shuffle else np.arange(n)
            k = 1 + len(self.step.metric_names)
            sums, seen = np.zeros(k), 0
            with Progress(nb, f"epoch {e}/{epochs}", stream=stream, enabled=progress,
                          columns=columns) as bar:
                for b in range(nb):
                    idx = order[b * batch_size:(b + 1) * batch_size]
                    if w is not None and w.size > 1:  # this process's rows of the batch
                        idx = idx[shard(len(idx), w.rank, w.size)]
                    batch = [a[idx] for a in data]
                    outs = self.step.fn(*batch)
                    self.steps += 1
                    vals = np.array([float(o) for o in outs])
                    if not np.all(np.isfinite(vals)):
                        self._diverged(vals, batch, e, epochs, b, nb, checkpoint)
                    rows = len(idx) * (1 if w is None else w.size)  # outputs are global means
                    sums += vals[:k] * rows
                    seen += rows
                    bar.update(1, loss=float(sums[0] / seen))
            row = {"epoch": e, "loss": sums[0] / seen}
            row.update({m: sums[1 + i] / seen for i, m in enumerate(self.step.metric_names)})
            if val is not None:
                row.update({f"val_{m}": v for m, v in self.evaluate(val).items()})
            row["seconds"] = time.perf_counter() - start
            self.history.append(row)
            self.epoch = e
            if checkpoint is not None:
                self.save(os.path.join(checkpoint, CHECKPOINT_FILE))
            if log is not None:
                log(format_row(row, epochs))
        return self.history

    def evaluate(self, data, batch_size=1024):
        """Loss and metrics at evaluation time (no dropout), averaged over `data`."""
        data = self._arrays(data, "data")
        if self._eval is None:
            names = list(self.task.eval_metrics)
            self._eval = (names, function(self.task.inputs,
                                          [self.task.eval_loss] + [self.task.eval_metrics[m]
                                                                   for m in names],
                                          optimize=self.optimize, device=self.device,
                                          single_output=False))
        names, f = self._eval
        n = len(data[0])
        sums = np.zeros(1 + len(names))
        for s in range(0, n, batch_size):
            outs = f(*[a[s:s + batch_size] for a in data])
            sums += np.array([float(o) for o in outs]) * min(batch_size, n - s)
        sums /= max(n, 1)
        return dict(zip(["loss"] + names, (float(v) for v in sums)))

    def predict(self, x, batch_size=1024):
        """The model's evaluation-time output (logits) for inputs x."""
        if self.task.predict is None:
            raise FlowcError("this task has no prediction output")
        if self._predict is None:
            self._predict = function([self.task.inputs[0]], self.task.predict,
                                     optimize=self.optimize, device=self.device)
        x = np.asarray(x)
        return np.concatenate([self._predict(x[s:s + batch_size])
                               for s in range(0, len(x), batch_size)])

    # -- helpers ------------------------------------------------------------------------------
    def _arrays(self, data, what):
        want = [t.name or f"input{i}" for i, t in enumerate(self.task.inputs)]
        arrays = []
        for i, a in enumerate(data if isinstance(data, (list, tuple)) else [data]):
            try:
                arrays.append(np.asarray(a))
            except ValueError:  # a ragged nested list
                raise FlowcError(f"{what}: array {i} is a nested list whose rows differ in "
                                 "length") from None
        if len(arrays) != len(want):
            raise FlowcError(f"{what}: expected {len(want)} arrays ({', '.join(want)}), got "
                             f"{len(arrays)}")
        for name, a in zip(want, arrays):
            if a.ndim == 0 or a.dtype.kind not in "biuf":
                raise FlowcError(f"{what}: input {name!r} must be a numeric array with one row "
                                 f"per sample, got {a.dtype.name}{list(a.shape)}")
        sizes = {len(a) for a in arrays}
        if len(sizes) != 1 or 0 in sizes:
            raise FlowcError(f"{what}: the arrays for {', '.join(want)} must be non-empty and "
                             f"of equal length, got lengths {[len(a) for a in arrays]}")
        return arrays

    def _check_finite(self, arrays, what):
        """Held-out data with NaN or inf would only give NaN scores; say where it is."""
        for t, a in zip(self.task.inputs, arrays):
            if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
                row = int(np.argwhere(~np.isfinite(a))[0][0])
                raise FlowcError(f"{what}: input {t.name!r} holds NaN or inf (first in row "
                                 f"{row}); remove or fill those values")

    def _check_start(self):
        for p in self.state_params:
            v = p.get_value(borrow=True)
            if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v)):
                raise TrainingDiverged(f"parameter {p.describe()} holds NaN or inf before "
                                       "training", 0, 0, p.name, self.history)

    def _diverged(self, vals, batch, e, epochs, b, nb, checkpoint):
        where = self._first_bad(vals, batch)
        bad = vals[~np.isfinite(vals)][0]
        msg = (f"training stopped: {_kind(bad)} appeared at epoch {e}/{epochs}, batch "
               f"{b + 1}/{nb} (step {self.steps}); it first shows in {where}. ")
        msg += (f"The loss of that batch was {vals[0]:g}. " if np.isfinite(vals[0]) else "")
        msg += "Parameters were finite before this step; its updates were applied. "
        if checkpoint is not None and self.epoch > 0:
            msg += (f"The last good state is the checkpoint "
                    f"{os.path.join(checkpoint, CHECKPOINT_FILE)} (epoch {self.epoch}). ")
        lr = self.opt_kwargs.get("lr")
        if where.endswith("(the data itself)"):
            msg += "Remove or fill the missing (NaN) and infinite values in the data."
        else:
            msg += "Try a smaller learning rate" + (f" than {lr:g}." if lr is not None else ".")
        raise TrainingDiverged(msg, e, b + 1, where, self.history)

    def _first_bad(self, vals, batch):
        """Name the earliest non-finite value in the step's data flow: input, loss, gradient,
        updated parameter."""
        for t, a in zip(self.task.inputs, batch):
            if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
                return f"input {t.name!r} of this batch (the data itself)"
        k = 1 + len(self.step.metric_names)
        if not np.isfinite(vals[0]):
            return f"the loss [{self.task.loss.describe()}]"
        for i, name in enumerate(self.step.metric_names):
            if not np.isfinite(vals[1 + i]):
                return f"metric {name!r}"
        params, updates = self.step.params, self.step.updates
        for i, p in enumerate(params):
            if not np.isfinite(vals[k + i]):
                return f"the gradient of parameter [{p.describe()}]"
        for i, (p, _) in enumerate(updates):
            if not np.isfinite(vals[k + len(params) + i]):
                return f"the new value of parameter [{p.describe()}]"
        return "an output of the training step"


def _kind(v):
    return "NaN" if np.isnan(v) else "inf"


def _jsonable(d):
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else repr(v))
            for k, v in d.items()}


def format_row(row, epochs=None):
    """'epoch 3/20  loss 0.1234  accuracy 0.9650  val_loss ...  (0.12 s)'."""
    e = int(row["epoch"])
    parts = [f"epoch {e}/{epochs}" if epochs else f"epoch {e}"]
    parts += [f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds")]
    if "seconds" in row:
        parts.append(f"({row['seconds']:.2f} s)")
    return "  ".join(parts)
