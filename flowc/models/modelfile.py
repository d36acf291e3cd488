"""Model files: a small TOML format (inputs with shapes, layers, loss, optimizer, training
settings), checked field by field. A bad file gets a ModelFileError naming the file, the
line, the field, what was expected and what came.

    [model]                      # optional: name, seed, input (the layers' input)
    name = "digits_mlp"
    seed = 0

    [inputs.x]                   # one table per input; a string dimension is a size known
    shape = ["batch", 64]        # only at call time (the batch)
    [inputs.y]
    shape = ["batch"]
    dtype = "int64"              # default float64

    [[layers]]                   # applied in order
    type = "dense"               # dense | dropout | activation | relu | tanh | sigmoid | ...
                                 # | reshape (shape) | rnn | lstm | gru (units, return_sequences)
                                 # | conv1d | conv2d | conv_transpose2d (filters, kernel_size,
                                 #   stride, padding, dilation, groups, output_padding)
                                 # | maxpool2d | avgpool2d (kernel_size, stride, padding,
                                 #   ceil_mode, count_include_pad) | globalavgpool | flatten
                                 # | batchnorm (eps, momentum, affine)
                                 # | layernorm (eps, elementwise_affine)
    units = 64
    activation = "tanh"

    [loss]
    type = "categorical_crossentropy"   # mse | binary_crossentropy | categorical_crossentropy
    target = "y"

    [optimizer]
    type = "momentum"            # sgd | momentum | adagrad | rmsprop | adam, and its options
    lr = 0.1

    [train]                      # defaults for `flowc train`
    epochs = 20
    batch_size = 32
    metrics = ["accuracy"]
    data = "digits"
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
import sys

import numpy as np

from ..ir.errors import FlowcError
from ..nn import init as I
from ..nn import losses as L
from ..nn import metrics as M
from ..nn.layers import ACTIVATIONS
from ..nn.task import OPTIMIZERS, optimizer_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ModelFileError(FlowcError):
    """A model file cannot be read or does not follow the format."""

    def __init__(self, path, line, field, expected=None, got=None, message=None):
        self.path, self.line, self.field = path, line, field
        where = f"{path}:{line}" if line else f"{path}"
        what = message if message is not None else f"expected {expected}, got {got}"
        super().__init__(f"{where}: {field}: {what}" if field else f"{where}: {what}")


# Fields of each table: name -> (required, check). Checks are defined below.
LAYER_TYPES = {
    "dense": {"units": True, "activation": False, "init": False, "bias_init": False,
              "use_bias": False},
    "dropout": {"rate": True},
    "activation": {"function": True},
    "reshape": {"shape": True},
}
for _k in ("rnn", "lstm", "gru"):  # recurrent layers over (batch, steps, features)
    LAYER_TYPES[_k] = {"units": True, "return_sequences": False, "init": False,
                       "recurrent_init": False}
_CONV = {"filters": True, "kernel_size": True, "stride": False, "padding": False,
         "dilation": False, "groups": False, "use_bias": False, "activation": False,
         "init": False, "bias_init": False}
LAYER_TYPES.update(
    conv1d=dict(_CONV), conv2d=dict(_CONV),
    conv_transpose2d=dict(_CONV, output_padding=False),
    maxpool2d={"kernel_size": True, "stride": False, "padding": False, "ceil_mode": False},
    avgpool2d={"kernel_size": True, "stride": False, "padding": False, "ceil_mode": False,
               "count_include_pad": False},
    globalavgpool={}, flatten={})
# Spatial dims of each kind: its sizes are one int (every dim) or an array of this many.
SPATIAL = {"conv1d": 1, "conv2d": 2, "conv_transpose2d": 2, "maxpool2d": 2, "avgpool2d": 2}
# Normalization over the features (axis 1 for batchnorm, the last axis for layernorm).
LAYER_TYPES.update(batchnorm={"eps": False, "momentum": False, "affine": False},
                   layernorm={"eps": False, "elementwise_affine": False})
LAYER_TYPES.update({a: {} for a in ACTIVATIONS})
for _t in LAYER_TYPES.values():
    _t.update(name=False, seed=False)


def describe(v) -> str:
    """A value as the error message shows it: its TOML text and kind."""
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)
    if isinstance(v, dict):
        return f"{kind} with fields {', '.join(v) or '(none)'}"
    text = json.dumps(v, default=str) if isinstance(v, (str, list)) else repr(v)
    if isinstance(v, bool):
        text = str(v).lower()
    return f"{text} ({kind})"


MISSING = "nothing (the field is missing)"


class _Checker:
    """Reads one parsed file, raising ModelFileError with the line of the offending field."""

    def __init__(self, path, text, prefix=()):
        # prefix: where the fields sit in the file (graph JSON keeps them in graph.roles)
        self.path, self.lines, self.prefix = path, locate(text), tuple(prefix)

    def line(self, field):
        for n in range(len(field), 0, -1):
            if tuple(field[:n]) in self.lines:
                return self.lines[tuple(field[:n])]
        return None

    def fail(self, field, expected=None, got=None, message=None):
        raise ModelFileError(self.path, self.line(field), fmt_field(self.prefix + tuple(field)),
                             expected, got, message)

    def table(self, v, field, allowed=None, required=()):
        if not isinstance(v, dict):
            self.fail(field, "a table", describe(v))
        if allowed is not None:
            for k in v:
                if k not in allowed:
                    near = difflib.get_close_matches(k, allowed, n=1)
                    self.fail(tuple(field) + (k,), message="unknown field"
                              + (f" (did you mean {near[0]!r}?)" if near else "")
                              + "; expected one of " + ", ".join(sorted(allowed)))
        for k in required:
            if k not in v:
                self.fail(tuple(field) + (k,), _expect(field, k), MISSING)
        return v

    def integer(self, v, field, lo=None):
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
            self.fail(field, "an integer" + (f" >= {lo}" if lo is not None else ""), describe(v))
        return v

    def number(self, v, field, lo=None, hi=None, hi_open=False, lo_open=False):
        # nan passes every comparison and inf every lower bound: refuse both first.
        bad = isinstance(v, bool) or not isinstance(v, (int, float))
        if not bad and not math.isfinite(v):
            bad = True
        elif not bad:
            bad = (lo is not None and (v <= lo if lo_open else v < lo)) or \
                (hi is not None and (v >= hi if hi_open else v > hi))
        if bad:
            self.fail(field, _number_range(lo, hi, lo_open, hi_open, v), describe(v))
        return float(v)

    def choice(self, v, field, options, what="one of"):
        if not isinstance(v, str) or v not in options:
            self.fail(field, f"{what} {', '.join(sorted(options))}", describe(v))
        return v

    def string(self, v, field):
        if not isinstance(v, str) or not v:
            self.fail(field, "a non-empty string", describe(v))
        return v

    def boolean(self, v, field):
        if not isinstance(v, bool):
            self.fail(field, "true or false", describe(v))
        return v


def _number_range(lo, hi, lo_open, hi_open, v):
    """'a number >= 0', 'a number in [0, 1)', ...; 'a finite number ...' when v is nan or inf."""
    kind = "a finite number" if isinstance(v, float) and not math.isfinite(v) else "a number"
    if lo is None and hi is None:
        return kind
    if hi is None:
        return f"{kind} {'>' if lo_open else '>='} {lo:g}"
    return f"{kind} in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def _expect(field, k):
    return {"units": "a positive integer", "rate": "a number in [0, 1)", "type": "a string",
            "shape": "an array of dimensions", "function": "an activation name",
            "filters": "a positive integer", "kernel_size": "an integer >= 1 or an array"}.get(
        k, "a value")


def fmt_field(field) -> str:
    """('layers', 2, 'units') -> 'layers[2].units'."""
    out = ""
    for part in field:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read(path):
    """Parse and check a model file; return the checked spec (a dict of plain values)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ModelFileError(path, None, None, message=f"cannot read the file ({e.strerror})") \
            from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFileError(path, None, None, message=f"not UTF-8 text ({e})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ModelFileError(path, int(m.group(1)) if m else None, None,
                             message=f"invalid TOML: {e}") from None
    return check(doc, path, text)


def check(doc, path="<model>", text=""):
    """Check a parsed model document; return the normalized spec."""
    c = _Checker(path, text)
    c.table(doc, (), allowed={"model", "inputs", "layers", "loss", "optimizer", "train"},
            required=("inputs", "layers", "loss"))
    spec = {"path": path, "lines": c.lines}
    model = c.table(doc.get("model", {}), ("model",),
                    allowed={"name", "seed", "input", "description"})
    stem = os.path.splitext(os.path.basename(path))[0]
    spec["name"] = c.string(model["name"], ("model", "name")) if "name" in model else stem
    spec["seed"] = c.integer(model.get("seed", 0), ("model", "seed"), lo=0)
    spec["inputs"] = _inputs(c, doc["inputs"])
    spec["layers"] = _layers(c, doc["layers"])
    spec["loss"], target = _loss(c, doc["loss"], spec["inputs"])
    names = list(spec["inputs"])
    if "input" in model:
        spec["input"] = c.choice(model["input"], ("model", "input"), names, "an input:")
    else:
        rest = [n for n in names if n != target]
        if not rest:
            c.fail(("inputs",), f"a feature input for the layers to read besides the loss's "
                   f"target {target!r} (e.g. [inputs.x] with shape = [\"batch\", 4])",
                   "only " + ", ".join(repr(n) for n in names))
        if len(rest) > 1:
            c.fail(("model", "input"), "the name of the input the layers read (needed when "
                   "there is more than one candidate: " + ", ".join(rest) + ")", MISSING)
        spec["input"] = rest[0]
    if spec["input"] == target:
        c.fail(("loss", "target"), f"an input other than the model's input {target!r}",
               describe(target))
    spec["optimizer"] = _optimizer(c, doc.get("optimizer", {"type": "sgd"}))
    spec["train"] = _train(c, doc.get("train", {}))
    return spec


def _inputs(c, v):
    c.table(v, ("inputs",))
    if not v:
        c.fail(("inputs",), "at least one input table such as [inputs.x]", "an empty table")
    out = {}
    for name, t in v.items():
        f = ("inputs", name)
        c.table(t, f, allowed={"shape", "dtype"}, required=("shape",))
        shape = t["shape"]
        if not isinstance(shape, list):
            c.fail(f + ("shape",), "an array of dimensions (integers, or a string such as "
                   '"batch" for a size known at call time)', describe(shape))
        dims = []
        for i, d in enumerate(shape):
            if isinstance(d, str):
                dims.append(None)
            elif isinstance(d, int) and not isinstance(d, bool) and d >= 0:
                dims.append(d)
            else:
                c.fail(f + ("shape", i), 'a dimension: an integer >= 0, or a string such as '
                       '"batch" for a size known at call time', describe(d))
        dtype = t.get("dtype", "float64")
        try:
            ok = isinstance(dtype, str) and np.dtype(dtype).kind in "biuf"
        except TypeError:
            ok = False
        if not ok:
            c.fail(f + ("dtype",), "a numeric NumPy dtype name (float64, float32, int64, ...)",
                   describe(dtype))
        out[name] = {"shape": tuple(dims), "dtype": np.dtype(dtype).name,
                     "line": c.line(f), "text": describe(shape)}
    return out


def _layers(c, v):
    if not isinstance(v, list) or not v:
        c.fail(("layers",), "one or more [[layers]] tables", describe(v))
    out = []
    for i, t in enumerate(v):
        f = ("layers", i)
        c.table(t, f, required=("type",))
        kind = c.choice(t["type"], f + ("type",), LAYER_TYPES, "a layer type:")
        fields = LAYER_TYPES[kind]
        c.table(t, f, allowed=set(fields) | {"type"},
                required=[k for k, req in fields.items() if req])
        layer = {"type": kind, "line": c.line(f)}
        for k, val in t.items():
            g = f + (k,)
            if k in ("units", "filters", "groups"):
                layer[k] = c.integer(val, g, lo=1)
            elif k in ("kernel_size", "stride", "dilation", "padding", "output_padding"):
                layer[k] = _sizes(c, val, g, SPATIAL[kind], kind, k)
            elif k == "rate":
                layer[k] = c.number(val, g, 0.0, 1.0, hi_open=True)
            elif k in ("activation", "function"):
                layer[k] = c.choice(val, g, ACTIVATIONS, "an activation:")
            elif k in ("init", "bias_init", "recurrent_init"):
                layer[k] = c.choice(val, g, I.INITIALIZERS, "an initializer:")
            elif k in ("use_bias", "return_sequences", "ceil_mode", "count_include_pad"):
                layer[k] = c.boolean(val, g)
            elif k == "eps":
                layer[k] = c.number(val, g, lo=0.0, lo_open=True)
            elif k == "momentum":
                layer[k] = c.number(val, g, 0.0, 1.0)
            elif k in ("affine", "elementwise_affine"):
                layer[k] = c.boolean(val, g)
            elif k == "shape":
                if not isinstance(val, list) or not val or not all(
                        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in val):
                    c.fail(g, "an array of positive integers", describe(val))
                layer[k] = tuple(val)
            elif k == "name":
                layer[k] = c.string(val, g)
            elif k == "seed":
                layer[k] = c.integer(val, g, lo=0)
        out.append(layer)
    return out


def _sizes(c, v, field, nd, kind, key):
    """A conv or pool size: one int (every spatial dim) or an array of nd; padding may also
    be "valid" (and "same" for a conv)."""
    lo = 0 if key in ("padding", "output_padding") else 1
    words = {"conv1d": ("same", "valid"), "conv2d": ("same", "valid"),
             "conv_transpose2d": ("valid",)}.get(kind, ()) if key == "padding" else ()
    if isinstance(v, str) and v in words:
        return v
    ok = lambda d: isinstance(d, int) and not isinstance(d, bool) and d >= lo  # noqa: E731
    if ok(v):
        return v
    if isinstance(v, list) and len(v) == nd and all(ok(d) for d in v):
        return tuple(v)
    c.fail(field, f"an integer >= {lo} or an array of {nd}"
           + "".join(f' or "{w}"' for w in words), describe(v))


def _loss(c, v, inputs):
    f = ("loss",)
    c.table(v, f, allowed={"type", "target"}, required=("type",))
    kind = c.choice(v["type"], f + ("type",), L.LOSSES, "a loss:")
    if "target" in v:
        target = c.choice(v["target"], f + ("target",), inputs, "an input:")
    elif len(inputs) == 2:
        target = list(inputs)[1]
    else:
        c.fail(f + ("target",), "the name of the input holding the targets", MISSING)
    return {"type": kind, "target": target, "line": c.line(f)}, target


# Decay rates below 1 (at 1 nothing decays: momentum grows without bound, Adam's bias
# correction divides by 0); eps > 0 (it guards a division by a running square).
OPTION_RANGES = {"mu": dict(lo=0.0, hi=1.0, hi_open=True),
                 "rho": dict(lo=0.0, hi=1.0, hi_open=True),
                 "beta1": dict(lo=0.0, hi=1.0, hi_open=True),
                 "beta2": dict(lo=0.0, hi=1.0, hi_open=True),
                 "eps": dict(lo=0.0, lo_open=True)}


def _optimizer(c, v):
    f = ("optimizer",)
    c.table(v, f, required=("type",))
    kind = c.choice(v["type"], f + ("type",), OPTIMIZERS, "an optimizer:")
    options = optimizer_options(kind)
    c.table(v, f, allowed=set(options) | {"type"})
    out = {"type": kind, "options": {}, "line": c.line(f)}
    for k, val in v.items():
        if k == "type":
            continue
        if k == "nesterov":
            out["options"][k] = c.boolean(val, f + (k,))
        else:
            out["options"][k] = c.number(val, f + (k,), **OPTION_RANGES.get(k, {"lo": 0.0}))
    return out


def _train(c, v):
    f = ("train",)
    c.table(v, f, allowed={"epochs", "batch_size", "metrics", "data", "seed", "test_size"})
    out = {"epochs": 10, "batch_size": 32, "metrics": ["accuracy"], "data": None, "seed": 0,
           "test_size": 0.25}
    for k, val in v.items():
        g = f + (k,)
        if k in ("epochs", "batch_size"):
            out[k] = c.integer(val, g, lo=1)
        elif k == "seed":
            out[k] = c.integer(val, g, lo=0)
        elif k == "test_size":
            out[k] = c.number(val, g, 0.0, 1.0, hi_open=True)
        elif k == "data":
            out[k] = c.string(val, g)
        elif k == "metrics":
            if not isinstance(val, list):
                c.fail(g, "an array of metric names", describe(val))
            out[k] = [c.choice(m, g + (i,), M.METRICS, "a metric:") for i, m in enumerate(val)]
    return out


# -- where each field is written: a light scan of the text (tomllib gives no positions) --------
_KEY = r'(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_\-]+)'


def _split_key(s):
    return tuple(p.strip().strip("\"'") for p in re.findall(_KEY, s))


def _strip_comment(s):
    out, quote = [], None
    for ch in s:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out).strip()


def locate(text):
    """{field path: first line number} for the tables and keys written in a TOML text."""
    lines, current, counts = {}, (), {}
    for no, raw in enumerate(text.splitlines(), 1):
        s = _strip_comment(raw)
        if s.startswith("[[") and "]]" in s:
            path = _split_key(s[2:s.index("]]")])
            counts[path] = counts.get(path, -1) + 1
            current = path + (counts[path],)
            lines.setdefault(path, no)
            lines.setdefault(current, no)
        elif s.startswith("[") and "]" in s:
            current = _split_key(s[1:s.index("]")])
            for n in range(1, len(current) + 1):
                lines.setdefault(current[:n], no)
        elif "=" in s:
            key, rest = s.split("=", 1)
            path = current + _split_key(key)
            for n in range(len(current) + 1, len(path) + 1):
                lines.setdefault(path[:n], no)
            if rest.strip().startswith("{"):
                for m in re.finditer(rf"({_KEY})\s*=", rest):
                    lines.setdefault(path + _split_key(m.group(1)), no)
    return lines
