"""theano.scan on flowc's loop op (fc.scan): sequences with taps, outputs_info with
initial values and negative taps, non_sequences, n_steps, go_backwards.

Every outputs_info entry with an initial value is a carry; several negative taps (an output
fed back from two steps before and one step before) are a shift register of carries, the
newest last. Each output of fn is also stacked per step, which is what Theano returns."""
from __future__ import annotations

from collections import OrderedDict

from ..ir.tensor import Tensor
from ..ops import api as F
from ..ops.api_control import scan as fc_scan
from ..ops.build import apply, as_tensor
from .unsupported import unsupported


def _seq_spec(s):
    """(tensor, taps) of a sequences entry."""
    if isinstance(s, dict):
        taps = list(s.get("taps", [0]))
        return as_tensor(s["input"]), taps
    return as_tensor(s), [0]


def _out_spec(o):
    """(initial or None, taps) of an outputs_info entry."""
    if o is None:
        return None, []
    if isinstance(o, dict):
        if "initial" not in o or o["initial"] is None:
            return None, []
        return as_tensor(o["initial"]), list(o.get("taps", [-1]))
    return as_tensor(o), [-1]


def scan(fn, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient=-1, go_backwards=False, mode=None, name=None, profile=False,
         allow_gc=None, strict=False, return_list=False):
    """theano.scan: (outputs stacked over the steps, updates)."""
    if profile:
        unsupported("theano.scan(profile=True)")
    seqs = [_seq_spec(s) for s in _as_list(sequences)]
    open_outputs = outputs_info is None  # then fn's outputs are all per-step only
    outs = [_out_spec(o) for o in _as_list(outputs_info)]
    nonseq = _as_list(non_sequences)
    for _, taps in outs:
        if any(t >= 0 for t in taps):
            raise ValueError(f"outputs_info taps must be negative, got {taps}")
    # Sequences with taps: one shifted view per tap, all of the common length.
    lo = min([min(t) for _, t in seqs] + [0])
    hi = max([max(t) for _, t in seqs] + [0])
    views = []
    for i, (x, taps) in enumerate(seqs):
        n = x.type.shape[0] if x.ndim else None
        if n is not None and n < hi - lo + 1:
            raise ValueError(f"scan: sequence {i} has {n} steps, but its taps {taps} need at "
                             f"least {hi - lo + 1}")
    for i, (x, taps) in enumerate(seqs):
        n = _checked_steps(x, i, taps, hi - lo + 1)
        for t in taps:
            if n is not None:  # the length is known at run time only: bounds from it
                views.append(x[t - lo:n - (hi - t)])
                continue
            end = t - hi if t - hi else None
            views.append(x[t - lo:end])
    if n_steps is not None and views:
        views = [v[:n_steps] for v in views]
    if len(views) > 1 and len({v.type.shape[0] for v in views}) != 1 or None in {
            v.type.shape[0] for v in views} and len(views) > 1:
        n = views[0].shape[0]  # Theano runs as many steps as the shortest sequence has
        for v in views[1:]:
            n = F.minimum(n, v.shape[0])
        views = [v[:n] for v in views]
    carries, layout = [], []
    for init, taps in outs:
        if init is None:
            layout.append(None)
            continue
        depth = -min(taps)
        if depth == 1:
            regs = [init]
        else:  # initial holds the last `depth` values, oldest first
            regs = [init[i] for i in range(depth)]
        layout.append((len(carries), depth, taps))
        carries.extend(regs)

    base, shared = len(carries), []  # shared variables fn updates: carries after the others

    def step(c, x):
        xs = list(x) if x is not None and not counter_only else []
        args = list(xs)
        for spec in layout:
            if spec is not None:
                first, depth, taps = spec
                args.extend(c[first + depth + t] for t in taps)
        res, upd, stop = _split(fn(*args, *nonseq))
        if any(all(p is not q for q in shared) for p in upd):
            raise _Shared(list(upd))
        if (stop is not None) != bool(flag):
            raise _Until()
        if open_outputs and not outs:
            outs.extend([(None, [])] * len(res))
            layout.extend([None] * len(res))
        if len(res) != len(outs):
            raise ValueError(f"scan: fn returned {len(res)} outputs, outputs_info has "
                             f"{len(outs)}")
        new = list(c)
        for spec, r in zip(layout, res):
            if spec is not None:
                first, depth, _ = spec
                r = as_tensor(r, like=c[first + depth - 1])
                if r.dtype != c[first].dtype:
                    r = F.cast(r, c[first].dtype) if not strict else r
                new[first:first + depth] = list(c[first + 1:first + depth]) + [r]
        for i, p in enumerate(shared):
            v = next((v for q, v in upd.items() if q is p), c[base + i])
            v = as_tensor(v, like=c[base + i])
            new[base + i] = v if v.dtype == p.dtype else F.cast(v, p.dtype)
        if flag:  # the last carry: whether `until` has become true
            new[-1] = stop if stop.dtype == "bool" else F.cast(stop, "bool")
        return tuple(new), tuple(as_tensor(r) for r in res)

    length, counter_only = None, False
    if not views:
        if n_steps is None:
            raise ValueError("scan needs sequences or n_steps")
        if isinstance(n_steps, Tensor):  # a counter sequence sets the length; fn sees none
            from ..ops.api_make import arange
            views, counter_only = [arange(n_steps)], True
        else:
            length = int(n_steps)
    flag = []  # [the until flag's initial value] once fn turned out to return until(...)
    for _ in range(3):  # again once fn's shared-variable updates and until are known
        try:
            cond = (lambda c: F.equal(c[-1], False)) if flag else None  # noqa: E731
            final, ys = fc_scan(step, tuple(carries + shared + flag),
                                tuple(views) if views else None, length=length,
                                reverse=bool(go_backwards), truncate=truncate_gradient,
                                carried={p: base + i for i, p in enumerate(shared)}, cond=cond,
                                allowed_params=_params_in(nonseq, seqs) if strict else None)
            break
        except _Shared as e:
            shared = list(e.keys)
        except _Until:
            from ..ops.build import constant
            flag = [] if flag else [constant(False)]
    ys = list(ys)
    if go_backwards:  # Theano stacks in the order the steps ran
        ys = [y[::-1] for y in ys]
    result = ys if (return_list or len(ys) != 1) else (ys[0] if ys else [])
    return result, OrderedDict((p, final[base + i]) for i, p in enumerate(shared))


def _params_in(nonseq, seqs):
    """The shared variables given as non_sequences or sequences (strict=True's allowance)."""
    return [t for t in list(nonseq) + [x for x, _ in seqs]
            if isinstance(t, Tensor) and t.op == "param"]


class _Until(Exception):
    """fn returned until(...) (or stopped returning it): scan adds the flag and tries again."""


class _Shared(Exception):
    """fn updates shared variables the loop does not carry yet (scan tries again)."""

    def __init__(self, keys):
        super().__init__("shared variables updated in scan's fn")
        self.keys = keys


def _as_list(v):
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


class until:
    """theano.scan_module.until(condition): the scan ends after the step where it is true."""

    def __init__(self, condition):
        self.condition = as_tensor(condition)


def _split(res):
    """(outputs, {shared: new value}, until condition or None) of what fn returned, in any
    of the orders Theano accepts."""
    parts = list(res) if isinstance(res, tuple) else [res]
    stop = next((p.condition for p in parts if isinstance(p, until)), None)
    updates = next((p for p in parts if isinstance(p, dict)), {})
    outs = [p for p in parts if not isinstance(p, (until, dict))]
    if len(outs) == 1 and isinstance(outs[0], (list, tuple)):
        outs = list(outs[0])
    return outs, dict(updates), stop


def _checked_steps(x, i, taps, need):
    """None when x's length is known (checked at build time) or no tap reaches back; else
    its length as an int64 scalar that fails the call, naming the sequence, when shorter
    than its taps need (slicing would quietly run no steps)."""
    if need <= 1 or not x.ndim or x.type.shape[0] is not None:
        return None
    n = apply("random_check", [F.cast(x.shape[0], "float64")], lo=float(need), hi=1e18,
              what=f"scan: the length of sequence {i} (its taps {list(taps)} need at least "
                   f"{need} steps)")
    return F.cast(n, "int64")
