#!/usr/bin/env python
"""Differential fuzzer: random graphs through flowc's public API, checked every way we can.

    python tools/fuzz.py --graphs 500 --seed 1          # a fixed number of graphs
    python tools/fuzz.py --minutes 10 --seed 7 --large 0.2 --skip B1,EQ
    python tools/fuzz.py --minutes 5 --seed 9 --fake-gpu 0.3  # also on the fake GPU

A graph is a `Spec`: a list of nodes, each a leaf (input, constant or param) or a step whose
flowc expression and NumPy reference are short code strings. The same strings build the graph,
evaluate the reference, and print a standalone repro, so the three never drift apart.

Checks per graph: O0 = O1 = O2 = NumPy on the first, second and third call (draws A, B, A; the
third must equal the first bit for bit, and the first call's arrays must not change later);
the same graph with constants fed as inputs; gradients at every level against central
differences (a random direction); jvp against vjp; grad of grad; hessian against hvp; a few
training steps with `updates=` at O0 against O2; save -> `runtime.load` in a fresh process
that cannot import flowc; with --fake-gpu P, that share of graphs (and a gradient) linked
for the fake GPU (tests/fake_cupy.py) against the CPU. A finding is shrunk (ops cut into
inputs, outputs dropped, layouts simplified) and printed as a Python snippet.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, replace

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import flowc as fc  # noqa: E402
from flowc.nn.random import uniform_like  # noqa: E402

LEVELS = ("O0", "O1", "O2")
MAX_SIZE = (1 << 21) + 64  # elements of any one value: just above the largest threshold
LONG = 200  # nodes: a long chain (checked to first order, not shrunk)
# Sizes on both sides of the runtime's thresholds (elements; 8192 f64 / 16384 f32 = 64 KiB):
# SMALL kernels 4096, arena loans 64 KiB, folding 65536, loop groups and blocks 2^17,
# threaded loops 2^21.
THRESHOLDS = (4095, 4096, 4097, 8191, 8192, 8193, 16384, 65535, 65536, 65537,
              (1 << 17) - 1, 1 << 17, (1 << 17) + 1, (1 << 21) - 1, 1 << 21, (1 << 21) + 1)
# Known bug classes (issue 10). --skip avoids generating them (a development aid only).
KNOWN = {
    "B1": "output that is a view of a temporary, wrong from the 2nd call",
    "B2": "params >= 2^17 elements with updates wrong at O0/O1",
    "B3": "constant folding before stabilization",
    "B4": "F-ordered inputs: 1st and later calls differ in the last bits",
    "C1": "O2 fusion AssertionError with None dims",
    "C2": "RecursionError on long chains",
    "C3": "broadcast_like failure for a gradient through a broadcast adding a leading dim",
    "C4": "hessian ShapeError with size-0 dims",
    "EQ": "== / != are identity, not elementwise",
}


# -- helpers shared by the references, the data and the printed repros ------------------------
HELPERS = '''
def sig(x):
    return 1 / (1 + np.exp(-x))


def lse(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True) if x.size else np.zeros_like(x, shape=(1,) * x.ndim)
    m = np.where(np.isfinite(m), m, 0)
    r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return r if keepdims else (np.squeeze(r, axis=axis) if axis is not None else r.reshape(()))


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def strided(x):
    """The same values as a non-contiguous view (every other element of the last axis)."""
    x = np.asarray(x)
    if x.ndim == 0:
        return x
    y = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    y[..., ::2] = x
    return y[..., ::2]


def transposed(x):
    """The same values as a transposed view of a C-ordered array."""
    return np.ascontiguousarray(np.asarray(x).T).T


def wellcond(rng, shape):
    n = shape[-1]
    return rng.uniform(-1.0, 1.0, shape) + n * np.eye(n)


def splitmix(like, state, stream=0):
    mask = (1 << 64) - 1

    def mix(z):
        z ^= z >> 30
        z = (z * 0xBF58476D1CE4E5B9) & mask
        z ^= z >> 27
        z = (z * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)
    golden = 0x9E3779B97F4A7C15
    base = mix(int(state[0] * 2.0 ** 53) ^ mix(int(state[1]) ^ mix((stream + golden) & mask)))
    n = like.size
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (np.uint64(base) + i * np.uint64(golden))
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    out = (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    dtype = like.dtype if like.dtype in (np.float32, np.float64) else np.float64
    return out.reshape(like.shape).astype(dtype)


def at_set(x, idx, v):
    """x with x[idx] = v (a copy; v in x's dtype, as flowc's .at[].set)."""
    y = np.array(x, copy=True)
    y[idx] = np.asarray(v).astype(y.dtype)
    return y


def at_add(x, idx, v):
    """x with v added at x[idx], repeated indices accumulating (np.add.at)."""
    y = np.array(x, copy=True)
    np.add.at(y, idx, np.asarray(v).astype(y.dtype))
    return y

def scan_ref(x, rev, part):
    """The loop g_loop builds, unrolled: c = tanh(c / 2 + x[t]); y[t] = c * x[t]."""
    c = x[0] * 0
    ys = [None] * len(x)
    for t in (range(len(x) - 1, -1, -1) if rev else range(len(x))):
        ys[t] = c * x[t]
        c = np.tanh(c * 0.5 + x[t])
    return c if part == 0 else np.array(ys)

def rnn_ref(x, rev, part):
    """The RNN g_loop builds, unrolled: c = tanh(x[t] @ M + c @ N); y[t] = the carry in."""
    n = x.shape[-1]
    M = (np.eye(n) * 0.4 + 0.05).astype(x.dtype)
    N = (np.eye(n) * 0.3 - 0.02).astype(x.dtype)
    c = x[0] * 0
    ys = [None] * len(x)
    for t in (range(len(x) - 1, -1, -1) if rev else range(len(x))):
        ys[t] = c
        c = np.tanh(x[t] @ M + c @ N)
    return c if part == 0 else np.array(ys)

def cond_ref(x):
    return np.tanh(x) * 2.0 if np.sum(x) > 0 else x * x - 1.0

def fori_ref(x):
    for _ in range(3):
        x = np.sin(x) * 0.9 + 0.1
    return x

def conv_np(x, w, stride, pad, dil, groups):
    """fc.conv by its definition: pad (negative pads crop), then one product per kernel offset."""
    x = np.pad(x, [(0, 0), (0, 0)] + [(max(a, 0), max(b, 0)) for a, b in pad])
    x = x[(slice(None), slice(None)) + tuple(slice(max(-a, 0), x.shape[2 + i] - max(-b, 0))
                                             for i, (a, b) in enumerate(pad))]
    K = w.shape[2:]
    osz = [(h - d * (k - 1) - 1) // s + 1 for h, d, k, s in zip(x.shape[2:], dil, K, stride)]
    if min(osz) < 1:
        raise ValueError("the kernel is larger than the padded input")
    N, C, O = x.shape[0], x.shape[1], w.shape[0]
    cg, og = C // groups, O // groups
    y = np.zeros((N, O) + tuple(osz))
    for off in np.ndindex(*K):
        xs = x[(slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s) for o, d, n, s in zip(off, dil, osz, stride))]
        for gi in range(groups):
            y[:, gi * og:(gi + 1) * og] += np.einsum(
                "nc...,oc->no...", xs[:, gi * cg:(gi + 1) * cg],
                w[(slice(gi * og, (gi + 1) * og), slice(None)) + off])
    return y.astype(np.result_type(x.dtype, w.dtype))

def convT_np(x, w, stride, padding, groups):
    """PyTorch's conv_transpose by scattering: each input element adds its kernel times
    itself into the output, then the padding is cropped."""
    nd = x.ndim - 2
    cg, cog, K = x.shape[1] // groups, w.shape[1], w.shape[2:]
    full = [(h - 1) * s + k for h, s, k in zip(x.shape[2:], stride, K)]
    y = np.zeros((x.shape[0], cog * groups) + tuple(full))
    for c in range(x.shape[1]):
        gi = c // cg
        for p in np.ndindex(*x.shape[2:]):
            for i in np.ndindex(*K):
                q = tuple(pp * s + ii for pp, s, ii in zip(p, stride, i))
                y[(slice(None), slice(gi * cog, (gi + 1) * cog)) + q] += \
                    x[(slice(None), c) + p][:, None] * w[(c, slice(None)) + i]
    y = y[(slice(None), slice(None)) + tuple(slice(pd, f - pd) for pd, f in zip(padding, full))]
    if min(y.shape[2:]) < 1:
        raise ValueError("empty output")
    return y.astype(np.result_type(x.dtype, w.dtype))

def layer_norm_np(x, eps=1e-5):
    """Each row normalized over its last axis (mean 0, variance 1, the biased variance)."""
    m = x.mean(axis=-1, keepdims=True)
    return ((x - m) / np.sqrt(((x - m) ** 2).mean(axis=-1, keepdims=True) + eps)).astype(x.dtype)

def pool_np(x, k, stride, pad, kind):
    """max/avg pooling by windows (avg counts the zero padding, PyTorch's default)."""
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad], constant_values=fill)
    osz = [(h - kk) // s + 1 for h, kk, s in zip(xp.shape[2:], k, stride)]
    wins = [xp[(slice(None), slice(None)) + tuple(
        slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(off, osz, stride))]
        for off in np.ndindex(*k)]
    r = np.max(wins, axis=0) if kind == "max" else np.mean(wins, axis=0)
    return r.astype(x.dtype)
'''
NS = {"np": np}
exec(HELPERS, NS)
HELPER_SRC = {chunk.split("(")[0]: "def " + chunk.strip() for chunk in HELPERS.split("\ndef ")[1:]}
LAYOUTS = {"C": "{}", "F": "np.asfortranarray({})", "T": "transposed({})", "S": "strided({})"}


# -- graphs as data ----------------------------------------------------------------------------
@dataclass
class Node:
    """A leaf (kind input/const/param, with shape, declared shape, dtype, domain, layout) or a
    step (kind "step": flowc `code` and NumPy `ref` over operands {0}, {1}, ...)."""

    kind: str
    code: str = ""
    ref: str = ""
    args: tuple = ()
    shape: tuple = ()
    decl: tuple = ()
    dtype: str = "float64"
    domain: str = ""
    layout: str = "C"
    smooth: bool = True   # no kink, jump or stop_gradient: central differences apply
    diff: bool = True     # a float leaf that gradients are taken with respect to
    op: str = ""          # the generator's name (coverage and repro comments)
    exact: str = ""       # a stable NumPy formula for the true value, where `ref` is naive


@dataclass
class Spec:
    """A random graph: nodes in creation order, output node indices, and the data seed."""

    nodes: list
    outputs: list
    seed: int
    large: bool = False
    lr: float = 0.01
    skip: frozenset = frozenset()   # known bug classes the checks avoid (development aid)

    def needed(self):
        """Indices of nodes the outputs depend on (a walk, no recursion)."""
        seen, todo = set(), list(self.outputs)
        while todo:
            i = todo.pop()
            if i not in seen:
                seen.add(i)
                todo.extend(self.nodes[i].args)
        return sorted(seen)

    def leaves(self, kinds=("input", "const", "param")):
        return [i for i in self.needed() if self.nodes[i].kind in kinds]

    def size(self):
        return len(self.needed())


def is_float(dtype):
    return np.dtype(dtype).kind == "f"


def draw_leaf(spec, i, k):
    """Leaf i's array for draw k (constants and params: always their one value)."""
    n = spec.nodes[i]
    k = {"input": k, "const": 99, "param": 98}[n.kind]
    rng = np.random.default_rng([spec.seed, i, k])
    a = np.asarray(eval(n.domain.format(shape=n.shape), NS, {"rng": rng})).astype(n.dtype)
    return a.reshape(n.shape)


def laid_out(n, a):
    return eval(LAYOUTS[n.layout].format("a"), NS, {"a": a}) if n.kind == "input" else a


def evaluate(spec, arrays, upto=None, exact=False):
    """NumPy reference values of the needed nodes, leaves from `arrays` ({index: array}).

    exact=True evaluates in long double where NumPy can (linalg runs in float64 instead), the
    'true' value a stabilized rewrite may legitimately return instead of the naive one.
    """
    vals = {}
    order = spec.needed() if upto is None else upto
    with np.errstate(all="ignore"):
        for i in order:
            n = spec.nodes[i]
            if n.kind != "step":
                a = arrays[i]
                vals[i] = a.astype(np.longdouble) if exact and is_float(a.dtype) else a
                continue
            ops = [vals.get(a) for a in n.args]
            if any(o is None for o in ops):
                vals[i] = None
                continue
            env = {f"_{j}": o for j, o in enumerate(ops)}
            try:
                vals[i] = np.asarray(eval(((exact and n.exact) or n.ref).format(*[f"_{j}" for j in range(len(ops))]),
                                          NS, env))
            except Exception:
                if not exact:
                    raise
                vals[i] = _in_float64((n.exact or n.ref), ops)
    return vals


def _in_float64(code, ops):
    """A step NumPy cannot run in long double (linalg), run in float64 instead: what follows
    it keeps a true-value reference (a stabilized log(1 - sigmoid) after an inverse)."""
    env = {f"_{j}": (o.astype(np.float64) if o.dtype == np.longdouble else o) for j, o in enumerate(ops)}
    try:
        return np.asarray(eval(code.format(*[f"_{j}" for j in range(len(ops))]), NS, env))
    except Exception:
        return None


# -- the generator -------------------------------------------------------------------------------
class Gen:
    """Builds one random Spec, evaluating the reference as it goes (domains are then known)."""

    def __init__(self, seed, large, skip):
        self.rng = np.random.default_rng(seed)
        self.spec = Spec([], [], seed, large)
        self.skip = skip
        self.refs = []   # per node: (draw A, draw B) reference arrays
        self.fdtype = "float32" if self.rng.random() < 0.25 else "float64"

    # leaves
    def leaf(self, kind, shape, dtype=None, domain="rng.uniform(-2, 2, {shape})", decl=None,
             layout=None, diff=True):
        dtype = dtype or self.fdtype
        shape = tuple(int(s) for s in shape)
        if np.prod(shape, dtype=np.int64) > MAX_SIZE:
            raise ValueError("too large")
        if decl is None:
            p_none = 0.0 if "C1" in self.skip else 0.3
            decl = tuple(None if (kind == "input" and self.rng.random() < p_none) else s
                         for s in shape)
        if layout is None:
            opts = ["C"] + (["F", "T"] if len(shape) >= 2 else []) + (["S"] if shape else [])
            if "B4" in self.skip:
                opts = [o for o in opts if o not in "FT"]
            layout = opts[self.rng.integers(len(opts))] if self.rng.random() < 0.4 else "C"
        n = Node(kind, shape=shape, decl=decl, dtype=dtype, domain=domain,
                 layout=layout if kind == "input" else "C", diff=diff and is_float(dtype),
                 op=kind)
        return self.push(n)

    def push(self, n):
        i = len(self.spec.nodes)
        self.spec.nodes.append(n)
        if n.kind == "step":
            vals = []
            for k in (0, 1):
                arrays = {j: self.refs[j][k] for j in n.args}
                env = {f"_{j}": arrays[a] for j, a in enumerate(n.args)}
                with np.errstate(all="ignore"):
                    vals.append(np.asarray(eval(n.ref.format(*[f"_{j}" for j in range(len(n.args))]),
                                                NS, env)))
            if vals[0].shape != vals[1].shape:
                raise ValueError("shape depends on the draw")
            if vals[0].size > MAX_SIZE:   # outer / diag of a large vector: no threshold up there
                raise ValueError("too large")
            n.shape, n.dtype = vals[0].shape, vals[0].dtype.name
        else:
            vals = [draw_leaf(self.spec, i, k) for k in (0, 1)]
        self.refs.append(vals)
        return i

    def step(self, op, code, ref, args, smooth=True):
        n = Node("step", code=code, ref=ref, args=tuple(args), smooth=smooth, op=op,
                 exact=STABLE.get(op, ""))
        try:
            return self.push(n)
        except Exception:
            self.spec.nodes.pop()
            return None

    # queries on values
    def shape(self, i):
        return self.spec.nodes[i].shape

    def floats(self, pred=lambda i: True):
        return [i for i, n in enumerate(self.spec.nodes) if is_float(n.dtype) and pred(i)]

    def pick(self, pred=lambda i: True):
        """A float value, recent ones more likely (deep chains)."""
        c = self.floats(pred)
        if not c:
            return None
        w = np.arange(1, len(c) + 1, dtype=float) ** 2
        return c[self.rng.choice(len(c), p=w / w.sum())]

    def amax(self, i):
        a = [np.abs(v[np.isfinite(v)]) for v in self.refs[i]]
        return max((float(x.max()) if x.size else 0.0) for x in a)

    def amin(self, i):
        a = [v[np.isfinite(v)] for v in self.refs[i]]
        return min((float(x.min()) if x.size else 0.0) for x in a)

    def bshape(self, shape):
        """A shape that broadcasts against `shape`: dims set to 1, leading dims dropped/added."""
        r = self.rng.random()
        s = list(shape)
        if r < 0.4:
            return tuple(s)
        if r < 0.65:
            return tuple(1 if self.rng.random() < 0.5 else d for d in s)
        if r < 0.85:
            return tuple(s[self.rng.integers(0, len(s) + 1):])
        if "C3" in self.skip:
            return tuple(s)
        return (int(self.rng.choice([1, 2, 3])),) + tuple(s)

    def partner(self, x):
        """A float value broadcastable with x: an existing one or a new input."""
        sx = self.shape(x)
        c = [j for j in self.floats() if j != x and _bcast(sx, self.shape(j))]
        if c and self.rng.random() < 0.6:
            return c[self.rng.integers(len(c))]
        return self.leaf("input", self.bshape(sx))

    def exact(self, pred=lambda i: True):
        """A leaf input (exact in every path): operands of comparisons and arg-reductions."""
        c = [i for i, n in enumerate(self.spec.nodes) if n.kind == "input" and pred(i)
             and n.dtype != "bool"]
        return c[self.rng.integers(len(c))] if c else None

    def base_shape(self):
        r = self.rng
        if self.spec.large:
            t = int(r.choice(THRESHOLDS[:-3] if r.random() < 0.85 else THRESHOLDS))
            nd = int(r.integers(1, 3))
            if nd == 1:
                return (t,)
            a = int(r.choice([2, 3, 7, 64, 256, 512]))
            return (a, max(1, t // a)) if r.random() < 0.5 else (max(1, t // a), a)
        nd = int(r.choice([0, 1, 2, 2, 3]))
        dims = [0, 1, 1, 2, 3, 4, 5]
        return tuple(int(r.choice(dims if r.random() < 0.9 else [6, 7, 9])) for _ in range(nd))


def _bcast(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


# -- the op table: each generator adds one step (or returns None when it does not apply) --------
def _axis(g, x):
    nd = len(g.shape(x))
    return int(g.rng.integers(-nd, nd)) if nd else None


UNARY = [  # (name, flowc code, NumPy ref, smooth, needs): needs = "pos", "bounded", "away", ""
    ("neg", "-{0}", "-{0}", True, ""), ("neg_fn", "fc.neg({0})", "-{0}", True, ""),
    ("exp", "fc.exp({0})", "np.exp({0})", True, "bounded"),
    ("expm1", "fc.expm1({0})", "np.expm1({0})", True, "bounded"),
    ("log", "fc.log({0})", "np.log({0})", True, "pos"),
    ("log1p", "fc.log1p({0})", "np.log1p({0})", True, "pos"),
    ("sqrt", "fc.sqrt({0})", "np.sqrt({0})", True, "pos"),
    ("square", "fc.square({0})", "np.square({0})", True, ""),
    ("abs", "fc.abs({0})", "np.abs({0})", False, ""),
    ("abs_builtin", "abs({0})", "np.abs({0})", False, ""),
    ("abs_method", "{0}.abs()", "np.abs({0})", False, ""),
    ("sign", "fc.sign({0})", "np.sign({0})", False, "away"),
    ("tanh", "fc.tanh({0})", "np.tanh({0})", True, ""),
    ("sigmoid", "fc.sigmoid({0})", "sig({0})", True, ""),
    ("relu", "fc.relu({0})", "np.maximum({0}, 0)", False, ""),
    ("softplus", "fc.softplus({0})", "np.logaddexp(0, {0})", True, ""),
    ("sin", "fc.sin({0})", "np.sin({0})", True, ""), ("cos", "fc.cos({0})", "np.cos({0})", True, ""),
    ("zeros_like", "fc.zeros_like({0})", "np.zeros_like({0})", True, ""),
    ("ones_like", "fc.ones_like({0})", "np.ones_like({0})", True, ""),
    ("cast_f32", "fc.cast({0}, 'float32')", "{0}.astype('float32')", True, ""),
    ("astype_f64", "{0}.astype('float64')", "{0}.astype('float64')", True, ""),
    ("scale_weak", "0.5 * {0}", "0.5 * {0}", True, ""),
    ("shift_weak", "{0} - 1.5", "{0} - 1.5", True, ""),
    ("rdiv_weak", "1 / {0}", "1 / {0}", True, "pos"),
    ("pow2", "{0} ** 2", "{0} ** 2", True, ""), ("pow3", "{0} ** 3", "{0} ** 3", True, "bounded"),
    ("pow_half", "{0} ** 0.5", "{0} ** 0.5", True, "pos"),
    ("rpow_weak", "2.0 ** {0}", "2.0 ** {0}", True, "bounded"),
    ("clip", "fc.clip({0}, -0.5, 0.5)", "np.clip({0}, -0.5, 0.5)", False, ""),
    ("stop_gradient", "fc.stop_gradient({0}) * 2.0", "{0} * 2.0", False, ""),
    ("custom_vjp", "fc.custom_vjp(fc.tanh, lambda xs, y, g: [g * (1 - y * y)], "
     "lambda xs, y, ts: ts[0] * (1 - y * y))({0})", "np.tanh({0})", True, ""),
    # the compositions the stabilize pass and the stable chain rules rewrite
    ("log_sigmoid", "fc.log(fc.sigmoid({0}))", "np.log(sig({0}))", True, ""),
    ("log_1m_sigmoid", "fc.log(1 - fc.sigmoid({0}))", "np.log(1 - sig({0}))", True, ""),
    ("hand_sigmoid", "1 / (1 + fc.exp(-{0}))", "1 / (1 + np.exp(-{0}))", True, ""),
    ("exp_log", "fc.exp(fc.log({0}))", "np.exp(np.log({0}))", True, "pos"),
]
BINARY = [  # (name, code, ref, smooth, needs of operand 1)
    ("add", "{0} + {1}", "{0} + {1}", True, ""), ("add_fn", "fc.add({0}, {1})", "{0} + {1}", True, ""),
    ("sub", "{0} - {1}", "{0} - {1}", True, ""), ("sub_fn", "fc.sub({0}, {1})", "{0} - {1}", True, ""),
    ("mul", "{0} * {1}", "{0} * {1}", True, ""), ("mul_fn", "fc.mul({0}, {1})", "{0} * {1}", True, ""),
    ("div", "{0} / {1}", "{0} / {1}", True, "pos"), ("div_fn", "fc.div({0}, {1})", "{0} / {1}", True, "pos"),
    ("pow", "{1} ** fc.tanh({0})", "{1} ** np.tanh({0})", True, "pos"),
    ("pow_fn", "fc.pow({1}, fc.tanh({0}))", "{1} ** np.tanh({0})", True, "pos"),
    ("maximum", "fc.maximum({0}, {1})", "np.maximum({0}, {1})", False, ""),
    ("minimum", "fc.minimum({0}, {1})", "np.minimum({0}, {1})", False, ""),
    ("clip_tensors", "fc.clip({0}, -fc.abs({1}) - 0.1, fc.abs({1}) + 0.1)",
     "np.clip({0}, -np.abs({1}) - 0.1, np.abs({1}) + 0.1)", False, ""),
]
COMPARE = [("less", "{0} < {1}", "{0} < {1}"), ("less_fn", "fc.less({0}, {1})", "{0} < {1}"),
           ("less_equal", "{0} <= {1}", "{0} <= {1}"),
           ("less_equal_fn", "fc.less_equal({0}, {1})", "{0} <= {1}"),
           ("greater", "{0} > {1}", "{0} > {1}"), ("greater_fn", "fc.greater({0}, {1})", "{0} > {1}"),
           ("greater_equal", "{0} >= {1}", "{0} >= {1}"),
           ("greater_equal_fn", "fc.greater_equal({0}, {1})", "{0} >= {1}"),
           ("equal", "fc.equal({0}, {1})", "{0} == {1}"),
           ("not_equal", "fc.not_equal({0}, {1})", "{0} != {1}"),
           ("eq_operator", "({0} == {1})", "({0} == {1})"),
           ("ne_operator", "({0} != {1})", "({0} != {1})")]


# True values of the compositions whose naive reference overflows or cancels (long double
# alone is not enough: 1 - sigmoid(43) is below its precision too).
STABLE = {"log_sigmoid": "-np.logaddexp(0, -{0})", "log_1m_sigmoid": "-np.logaddexp(0, {0})",
          "log_1m_sigmoid_const": "-np.logaddexp(0, {1}) + {0}",
          "log_sigmoid_const": "-np.logaddexp(0, -{1}) * {0}",
          "exp_log": "{0}"}


def g_unary(g):
    name, code, ref, smooth, needs = UNARY[g.rng.integers(len(UNARY))]
    x = g.pick()
    if x is None:
        return None
    if needs == "pos" and g.amin(x) <= 0.05:
        x = g.step("square_shift", "({0} * {0} + 0.5)", "({0} * {0} + 0.5)", [x])
    elif (needs == "bounded" or "sigmoid" in name) and g.amax(x) > 4:
        x = g.step("tanh", "fc.tanh({0})", "np.tanh({0})", [x])
    elif needs == "away" and (g.spec.nodes[x].kind != "input" or np.abs(g.refs[x][0]).min(initial=1) < 1e-3):
        return None
    if x is None:
        return None
    return g.step(name, code, ref, [x], smooth)


def g_binary(g):
    name, code, ref, smooth, needs = BINARY[g.rng.integers(len(BINARY))]
    x = g.pick()
    if x is None:
        return None
    y = g.partner(x)
    if needs == "pos" and g.amin(y) <= 0.05:
        y = g.step("square_shift", "({0} * {0} + 0.5)", "({0} * {0} + 0.5)", [y])
    if y is None:
        return None
    a, b = (x, y) if g.rng.random() < 0.7 or needs else (y, x)
    return g.step(name, code, ref, [a, b], smooth)


def g_compare(g):
    """A comparison of exact leaves, used through where / cast / sum (booleans have no grads)."""
    cands = [c for c in COMPARE if not (c[0] in ("eq_operator", "ne_operator") and "EQ" in g.skip)]
    name, code, ref = cands[g.rng.integers(len(cands))]
    x = g.exact()
    if x is None:
        return None
    sx = g.shape(x)
    ys = [j for j in range(len(g.spec.nodes)) if j != x and g.spec.nodes[j].kind == "input"
          and g.spec.nodes[j].dtype != "bool" and _bcast(sx, g.shape(j))]
    if ys and g.rng.random() < 0.7:
        y = ys[g.rng.integers(len(ys))]
    else:
        dom = "rng.integers(-2, 3, {shape})"
        y = g.leaf("input", g.bshape(sx), dtype="int64", domain=dom)
    c = g.step(name, code, ref, [x, y], False)
    if c is None:
        return None
    r = g.rng.random()
    if r < 0.5:
        a = g.pick(lambda i: _bcast(g.shape(i), g.shape(c)))
        b = g.partner(a)
        return g.step("where", "fc.where({0}, {1}, {2})", "np.where({0}, {1}, {2})", [c, a, b], False)
    if r < 0.8:
        return g.step("cast_bool", "fc.cast({0}, '%s')" % g.fdtype, "{0}.astype('%s')" % g.fdtype,
                      [c], False)
    return g.step("sum_bool", "fc.cast(fc.sum({0}), 'float64')", "np.float64(np.sum({0}))", [c], False)


REDUCE = [("sum", "fc.sum({0}, axis={ax}, keepdims={kd})", "np.sum({0}, axis={ax}, keepdims={kd})", True),
          ("sum_method", "{0}.sum(axis={ax}, keepdims={kd})", "np.sum({0}, axis={ax}, keepdims={kd})", True),
          ("mean", "fc.mean({0}, axis={ax}, keepdims={kd})", "np.mean({0}, axis={ax}, keepdims={kd})", True),
          ("mean_method", "{0}.mean(axis={ax}, keepdims={kd})", "np.mean({0}, axis={ax}, keepdims={kd})", True),
          ("max", "fc.max({0}, axis={ax}, keepdims={kd})", "np.max({0}, axis={ax}, keepdims={kd})", False),
          ("min", "{0}.min(axis={ax}, keepdims={kd})", "np.min({0}, axis={ax}, keepdims={kd})", False),
          ("prod", "fc.prod({0}, axis={ax}, keepdims={kd})", "np.prod({0}, axis={ax}, keepdims={kd})", True),
          ("logsumexp", "fc.logsumexp({0}, axis={ax}, keepdims={kd})", "lse({0}, axis={ax}, keepdims={kd})", True),
          ("log_sum_exp", "fc.log(fc.sum(fc.exp({0}), axis={ax}, keepdims={kd}))",
           "np.log(np.sum(np.exp({0}), axis={ax}, keepdims={kd}))", True),
          ("softmax", "fc.softmax({0}, axis={ax1})", "softmax({0}, axis={ax1})", True),
          ("log_softmax", "fc.log_softmax({0}, axis={ax1})", "({0} - lse({0}, axis={ax1}, keepdims=True))", True),
          ("log_of_softmax", "fc.log(fc.softmax({0}, axis={ax1}))", "np.log(softmax({0}, axis={ax1}))", True),
          ("norm", "fc.norm({0})", "np.linalg.norm({0}.reshape(-1)).astype({0}.dtype)", True),
          ("norm_axis", "fc.norm({0}, axis={ax1}, keepdims={kd})",
           "np.linalg.norm({0}, axis={ax1}, keepdims={kd}).astype({0}.dtype)", True),
          ("argmax", "fc.cast(fc.argmax({0}, axis={ax}, keepdims={kd}), 'float64')",
           "np.argmax({0}, axis={ax}, keepdims={kd}).astype('float64')", False),
          ("argmin", "fc.cast({0}.argmin(axis={ax1}), 'float64')", "np.argmin({0}, axis={ax1}).astype('float64')", False)]


ZERO_DOMAINS = ["np.where(rng.random({shape}) < 0.3, 0.0, rng.uniform(-2, 2, {shape}))",
                "rng.integers(-1, 2, {shape})"]


def g_reduce(g):
    name, code, ref, smooth = REDUCE[g.rng.integers(len(REDUCE))]
    if name.startswith("arg"):
        x = g.exact(lambda i: g.spec.nodes[i].dtype.startswith("float") and 0 not in g.shape(i))
    elif name == "prod" and not g.spec.large and g.rng.random() < 0.4:
        # Exact zeros (one, several, along one axis only): prod's derivatives there are
        # the products of the others, which a rule dividing by x gets wrong (nan).
        x = g.leaf("input", g.base_shape(), domain=ZERO_DOMAINS[g.rng.integers(len(ZERO_DOMAINS))])
    else:
        x = g.pick()
    if x is None:
        return None
    nd = len(g.shape(x))
    if nd == 0 and ("{ax1}" in code):
        return None
    ax = _axis(g, x) if g.rng.random() < 0.6 and nd else None
    if ax is not None and g.rng.random() < 0.3 and nd >= 2:
        ax = tuple(sorted({ax % nd, int(g.rng.integers(nd))}))
    ax1 = _axis(g, x) if nd else None
    if name in ("max", "min", "argmax", "argmin") or "softmax" in name or name == "logsumexp":
        # Empty reductions have no identity: NumPy raises, flowc must too (not fuzzed).
        red = range(nd) if ax is None else ([ax] if isinstance(ax, int) else ax)
        if any(g.shape(x)[a] == 0 for a in red) or (ax1 is not None and g.shape(x)[ax1] == 0):
            return None
    if name == "prod" and (g.amax(x) > 3 or g.spec.large):
        return None
    if name.startswith("norm") and (g.amin(x) == 0 and g.amax(x) == 0 or 0 in g.shape(x)):
        return None
    kd = bool(g.rng.random() < 0.3)
    fmt = dict(ax=ax, ax1=ax1, kd=kd)
    i = g.step(name, _fmt(code, **fmt), _fmt(ref, **fmt), [x], smooth)
    if i is not None and name in REDUCE_STABLE:
        g.spec.nodes[i].exact = _fmt(REDUCE_STABLE[name], **fmt)
    return i


REDUCE_STABLE = {"log_sum_exp": "lse({0}, axis={ax}, keepdims={kd})",
                 "log_of_softmax": "({0} - lse({0}, axis={ax1}, keepdims=True))"}


def _fmt(code, **kw):
    """Fill the named holes of a template and keep the operand holes {0}, {1}, ..."""
    for k, v in kw.items():
        code = code.replace("{" + k + "}", str(v))
    return code


def g_matmul(g):
    x = g.pick(lambda i: len(g.shape(i)) >= 1)
    if x is None:
        return None
    sx = g.shape(x)
    k = sx[-1]
    m = int(g.rng.choice([1, 2, 3, 5])) if not g.spec.large else int(g.rng.choice([1, 3, 64]))
    r = g.rng.random()
    shape = (k,) if r < 0.3 else (k, m) if r < 0.8 else (int(g.rng.choice([1, 2])), k, m)
    y = g.leaf("input", shape, domain="rng.uniform(-1, 1, {shape})")
    kind = g.rng.integers(4)
    if kind == 0:
        return g.step("matmul", "{0} @ {1}", "np.matmul({0}, {1})", [x, y])
    if kind == 1:
        return g.step("matmul_fn", "fc.matmul({0}, {1})", "np.matmul({0}, {1})", [x, y])
    if kind == 2 and len(sx) <= 2 and len(shape) <= 2:
        return g.step("dot", "fc.dot({0}, {1})", "np.dot({0}, {1})", [x, y])
    if len(sx) == 1 and len(shape) == 1 and k * k <= MAX_SIZE:
        return g.step("outer", "fc.outer({0}, {1})", "np.outer({0}, {1})", [x, y])
    return g.step("rmatmul_gemm", "{1} + {0} @ {2}", "{1} + np.matmul({0}, {2})",
                  [x, g.leaf("input", (m,)), g.leaf("input", (k, m))])


def g_linalg(g):
    """Square-matrix ops on a fresh well-conditioned input (batched sometimes)."""
    n = int(g.rng.integers(1, 5)) if not g.spec.large else int(g.rng.choice([1, 64, 363]))
    batch = (int(g.rng.integers(1, 3)),) if g.rng.random() < 0.3 else ()
    a = g.leaf("input", batch + (n, n), domain="wellcond(rng, {shape})", dtype="float64")
    kind = g.rng.integers(7)
    if kind == 0:
        b = g.leaf("input", batch + (n,) + ((2,) if batch or g.rng.random() < 0.5 else ()))
        if batch and len(g.shape(b)) == 2:
            return None
        return g.step("solve", "fc.solve({0}, {1})", "np.linalg.solve({0}, {1})", [a, b])
    if kind == 1:
        return g.step("inv", "fc.inv({0})", "np.linalg.inv({0})", [a])
    if kind == 2:
        return g.step("slogdet", "fc.slogdet({0})[1]", "np.linalg.slogdet({0})[1]", [a])
    if kind == 3:
        return g.step("slogdet_sign", "fc.slogdet({0})[0] * 1.0", "np.linalg.slogdet({0})[0] * 1.0",
                      [a], False)
    if batch:
        return None
    if kind == 4:
        return g.step("trace", "fc.trace({0})", "np.trace({0})", [a])
    if kind == 5:
        return g.step("eye_plus", f"{{0}} + fc.eye({n})", f"{{0}} + np.eye({n})", [a])
    k = int(g.rng.integers(-1, 2)) if n > 1 else 0
    x = g.pick(lambda i: len(g.shape(i)) == 1 and g.shape(i)[0] <= 1024) if g.rng.random() < 0.6 \
        else None
    x = x if x is not None else g.pick(lambda i: len(g.shape(i)) == 2 or
                                       len(g.shape(i)) == 1 and g.shape(i)[0] <= 1024)
    if x is None:
        return None
    return g.step("diag", f"fc.diag({{0}}, {k})", f"np.diag({{0}}, {k})", [x])


def g_shape(g):
    x = g.pick()
    if x is None:
        return None
    s = g.shape(x)
    nd = len(s)
    size = int(np.prod(s, dtype=np.int64))
    r = int(g.rng.integers(9))
    if r == 0:
        if size and g.rng.random() < 0.6:
            divs = [d for d in range(1, min(size, 64) + 1) if size % d == 0]
            d = int(g.rng.choice(divs))
            return g.step("reshape", f"{{0}}.reshape({d}, -1)", f"{{0}}.reshape({d}, -1)", [x])
        return g.step("reshape_flat", "fc.reshape({0}, -1)", "np.reshape({0}, -1)", [x])
    if r == 1 and nd >= 2:
        if g.rng.random() < 0.5:
            return g.step("T", "{0}.T", "{0}.T", [x])
        p = tuple(int(v) for v in g.rng.permutation(nd))
        return g.step("transpose", f"fc.transpose({{0}}, {p})", f"np.transpose({{0}}, {p})", [x])
    if r == 2:
        a = int(g.rng.integers(-nd - 1, nd + 1))
        return g.step("expand_dims", f"fc.expand_dims({{0}}, {a})", f"np.expand_dims({{0}}, {a})", [x])
    if r == 3 and 1 in s:
        a = s.index(1)
        return g.step("squeeze", f"fc.squeeze({{0}}, {a})", f"np.squeeze({{0}}, {a})", [x])
    if r == 4:
        t = tuple(int(g.rng.choice([2, 3])) if d == 1 and g.rng.random() < 0.5 else d for d in s)
        if g.rng.random() < 0.4 and not g.spec.large and "C3" not in g.skip:
            t = (2,) + t
        return g.step("broadcast_to", f"fc.broadcast_to({{0}}, {t})", f"np.broadcast_to({{0}}, {t})", [x])
    if r == 5 and nd:
        return g_getitem(g, x)
    if r == 6 and nd and s[0] > 0:
        return g_take(g, x)
    if r == 7 and nd:
        return g_join(g, x)
    if r == 8 and nd and s[-1] > 0:
        k = int(g.rng.integers(1, min(s[-1], 3) + 1))
        if g.rng.random() < 0.5 or g.spec.nodes[x].kind != "input":
            lg = bool(g.rng.random() < 0.6)
            ref = f"-np.sort(-{{0}}, axis=-1)[..., :{k}]" if lg else f"np.sort({{0}}, axis=-1)[..., :{k}]"
            return g.step("topk", f"fc.topk({{0}}, {k}, largest={lg})[0]", ref, [x], False)
        return g.step("topk_take", f"fc.take_along_axis({{0}}, fc.topk({{0}}, {k})[1], -1)",
                      f"-np.sort(-{{0}}, axis=-1)[..., :{k}]", [x], False)
    return None


def g_getitem(g, x):
    s = g.shape(x)
    nd = len(s)
    opts = ["{0}[1:]", "{0}[::-1]", "{0}[..., ::2]", "{0}[None]", "{0}[..., -1]", "{0}[0]",
            "{0}[:, None]", "{0}[[0, -1]]", "{0}[-1, 1:3]"]
    code = opts[g.rng.integers(len(opts))]
    if ("[0]" in code or "[-1" in code or "[[0" in code) and s[0] == 0:
        return None
    if code in ("{0}[..., -1]",) and s[-1] == 0:
        return None
    if code == "{0}[-1, 1:3]" and nd < 2:
        return None
    if code == "{0}[:, None]" and nd < 1:
        return None
    if g.rng.random() < 0.3 and s[0] > 0:
        i = g.leaf("input", (int(g.rng.integers(1, 5)),), dtype="int64",
                   domain=f"rng.integers(0, {s[0]}, {{shape}})", decl=None)
        return g.step("getitem_tensor", "{0}[{1}]", "{0}[{1}]", [x, i])
    return g.step("getitem", code, code, [x])


def g_take(g, x):
    s = g.shape(x)
    ax = int(g.rng.integers(len(s)))
    if s[ax] == 0:
        return None
    r = g.rng.random()
    if r < 0.3:
        return g.step("take_const", f"fc.take({{0}}, [-1, 0, -1], axis={ax})",
                      f"np.take({{0}}, [-1, 0, -1], axis={ax})", [x])
    if r < 0.7:
        i = g.leaf("input", (int(g.rng.integers(0, 4)),), dtype="int64",
                   domain=f"rng.integers(0, {s[ax]}, {{shape}})")
        return g.step("take", f"fc.take({{0}}, {{1}}, axis={ax})", f"np.take({{0}}, {{1}}, axis={ax})", [x, i])
    ishape = s[:ax] + (int(g.rng.integers(1, 4)),) + s[ax + 1:]
    i = g.leaf("input", ishape, dtype="int64", domain=f"rng.integers(0, {s[ax]}, {{shape}})")
    return g.step("take_along_axis", f"fc.take_along_axis({{0}}, {{1}}, {ax})",
                  f"np.take_along_axis({{0}}, {{1}}, {ax})", [x, i])


def g_join(g, x):
    s = g.shape(x)
    ax = int(g.rng.integers(len(s)))
    if g.rng.random() < 0.5:
        t = s[:ax] + (int(g.rng.integers(0, 3)),) + s[ax + 1:]
        y = g.leaf("input", t)
        return g.step("concatenate", f"fc.concatenate([{{0}}, {{1}}], axis={ax})",
                      f"np.concatenate([{{0}}, {{1}}], axis={ax})", [x, y])
    c = [j for j in g.floats() if g.shape(j) == s and j != x]
    y = c[g.rng.integers(len(c))] if c else g.leaf("input", s)
    return g.step("stack", f"fc.stack([{{0}}, {{1}}], axis={ax})", f"np.stack([{{0}}, {{1}}], axis={ax})",
                  [x, y])


def g_const(g):
    """An op with a constant operand (fed to the folder), sometimes wide (saturating sigmoids)."""
    x = g.pick()
    if x is None:
        return None
    # Saturated (sigmoid rounds to exactly 0 or 1) or well conditioned: between the two,
    # 1 - sigmoid(c) is a few ulps and every correct implementation rounds differently.
    dom = "rng.choice([-1, 1], {shape}) * rng.uniform(40, 45, {shape})" if g.rng.random() < 0.5 \
        else "rng.uniform(-2, 2, {shape})"
    c = g.leaf("const", g.bshape(g.shape(x)), domain=dom)
    op = [("log_1m_sigmoid_const", "fc.log(1 - fc.sigmoid({1})) + {0}", "np.log(1 - sig({1})) + {0}"),
          ("log_sigmoid_const", "fc.log(fc.sigmoid({1})) * {0}", "np.log(sig({1})) * {0}"),
          ("softplus_const", "{0} - fc.softplus({1})", "{0} - np.logaddexp(0, {1})"),
          ("mul_const", "{0} * fc.tanh({1})", "{0} * np.tanh({1})")][int(g.rng.integers(4))]
    if "B3" in g.skip and "sigmoid" in op[0]:
        return None
    return g.step(op[0], op[1], op[2], [x, c])


def g_random(g):
    x = g.pick()
    if x is None:
        return None
    st = g.leaf("input", (2,), dtype="float64", domain="np.array([rng.random(), rng.integers(0, 9)])",
                decl=(2,), layout="C", diff=False)
    return g.step("random_uniform", "{0} + uniform_like({0}, {1}, 3)", "{0} + splitmix({0}, {1}, 3)",
                  [x, st])


# -- the tensor vocabulary (issue 12): rounding, // and %, xlogx, integer-array indexing, .at[]
# updates, sort, specify_shape and the compositions built from existing ops -------------------------
QUARTERS = "rng.integers(-8, 9, {shape}) / 4"


def _int_leaf(g, shape, lo, hi, dtype=None):
    """An integer input (index arrays, labels, integer operands) drawn from [lo, hi)."""
    dtype = dtype or ("int64" if g.rng.random() < 0.7 else "int32")
    return g.leaf("input", shape, dtype=dtype, domain=f"rng.integers({lo}, {hi}, {{shape}})")


def _index_of(g, n, k, unique=False):
    """An index array of k entries for an axis of size n: in bounds, negatives too, repeats
    unless `unique` (then each place once, as a negative or a positive index)."""
    dtype = "int64" if g.rng.random() < 0.7 else "int32"
    if unique:
        dom = f"rng.permutation({n})[:{k}] - {n} * rng.integers(0, 2, {k})"
        return g.leaf("input", (k,), dtype=dtype, domain=dom)
    return g.leaf("input", (k,), dtype=dtype, domain=f"rng.integers({-n}, {n}, {{shape}})")


# g_sizes' steps whose shape is a size read at run time from an int input (fuzz seed 1322:
# dimshuffle dropped an axis of alloc_dyn's that was 1 in the values but unknown in the type)
RUNTIME_SIZED = {"reshape_dyn", "alloc_dyn", "arange_dyn", "slice_dyn"}


def _static(g, i):
    """Whether value i's shape is known when the graph is built (no unknown input dim and no
    run-time size under it)."""
    seen, todo = set(), [i]
    while todo:
        j = todo.pop()
        if j in seen:
            continue
        seen.add(j)
        n = g.spec.nodes[j]
        if (n.kind == "input" and None in n.decl) or n.op in RUNTIME_SIZED:
            return False
        todo.extend(n.args)
    return True


def g_round(g):
    """floor / ceil / round of an exact input (a jump turns an ulp into 1), float or integer."""
    name, fn = [("floor", "floor"), ("ceil", "ceil"), ("round", "round")][int(g.rng.integers(3))]
    if g.rng.random() < 0.25:
        x = _int_leaf(g, g.base_shape(), -5, 6)
        return g.step(name + "_int", f"fc.{fn}({{0}})", f"np.{fn}({{0}})", [x], False)
    if g.rng.random() < 0.5:   # quarters: exact halves (round to even) and integers
        x = g.leaf("input", g.base_shape(), domain=QUARTERS)
    else:
        x = g.exact(lambda i: is_float(g.spec.nodes[i].dtype))
    if x is None:
        return None
    return g.step(name, f"fc.{fn}({{0}} * 2.0)", f"np.{fn}({{0}} * 2.0)", [x], False)


def g_divmod(g):
    """a // b and a % b on inputs (floats: both differentiable; ints: b away from zero)."""
    op = int(g.rng.integers(4))
    code, ref, name = [("{0} // {1}", "{0} // {1}", "floor_divide"),
                       ("fc.floor_divide({0}, {1})", "np.floor_divide({0}, {1})", "floor_divide_fn"),
                       ("{0} % {1}", "{0} % {1}", "mod"),
                       ("fc.mod({0}, {1})", "np.mod({0}, {1})", "mod_fn")][op]
    if g.rng.random() < 0.3:
        a = _int_leaf(g, g.base_shape(), -9, 10)
        b = g.leaf("input", g.bshape(g.shape(a)), dtype=g.spec.nodes[a].dtype,
                   domain="rng.choice([-3, -2, -1, 1, 2, 3], {shape})")
        return g.step(name + "_int", code, ref, [a, b], False)
    if g.rng.random() < 0.5:   # exact multiples: a // b an integer, a % b zero
        a = g.leaf("input", g.base_shape(), domain=QUARTERS)
        dom = "rng.choice([-1, 1], {shape}) * rng.choice([0.25, 0.5, 1.0], {shape})"
    else:
        a = g.exact(lambda i: is_float(g.spec.nodes[i].dtype))
        dom = "rng.choice([-1, 1], {shape}) * rng.uniform(0.3, 1.5, {shape})"
    if a is None:
        return None
    b = g.leaf("input", g.bshape(g.shape(a)), domain=dom)
    return g.step(name, code, ref, [a, b] if g.rng.random() < 0.8 else [b, a], False)


def g_xlogx(g):
    """xlogx: of a positive value (smooth) or of an input with exact zeros (0 there)."""
    if g.rng.random() < 0.5:
        x = g.pick()
        if x is None:
            return None
        if g.amin(x) <= 0.05:
            x = g.step("square_shift", "({0} * {0} + 0.5)", "({0} * {0} + 0.5)", [x])
        return None if x is None else g.step("xlogx", "fc.xlogx({0})", "{0} * np.log({0})", [x])
    x = g.leaf("input", g.base_shape(),
               domain="np.where(rng.random({shape}) < 0.3, 0.0, rng.uniform(0, 2, {shape}))")
    return g.step("xlogx_zero", "fc.xlogx({0})",
                  "np.where({0} == 0, 0, {0} * np.log(np.where({0} == 0, 1, {0})))", [x], False)


def g_advindex(g):
    """x[i, j], x[:, i], x[i, :, j], x[i[:, None], j]: NumPy's advanced indexing (its gradient
    adds back with repeats: index_add)."""
    x = g.pick(lambda i: len(g.shape(i)) >= 2 and 0 not in g.shape(i)[:3])
    if x is None:
        return None
    s = g.shape(x)
    k = int(g.rng.integers(1, 5))
    r = int(g.rng.integers(5))
    if r == 0:
        i, j = _index_of(g, s[0], k), _index_of(g, s[1], k)
        return g.step("advindex", "{0}[{1}, {2}]", "{0}[{1}, {2}]", [x, i, j])
    if r == 1:
        i = _index_of(g, s[1], k)
        return g.step("advindex_col", "{0}[:, {1}]", "{0}[:, {1}]", [x, i])
    if r == 2 and len(s) >= 3:
        i, j = _index_of(g, s[0], k), _index_of(g, s[2], k)
        return g.step("advindex_split", "{0}[{1}, :, {2}]", "{0}[{1}, :, {2}]", [x, i, j])
    if r == 3:
        i, j = _index_of(g, s[0], k), _index_of(g, s[1], int(g.rng.integers(1, 4)))
        return g.step("advindex_outer", "{0}[fc.expand_dims({1}, -1), {2}]",
                      "{0}[{1}[:, None], {2}]", [x, i, j])
    i = _index_of(g, s[0], k)
    return g.step("advindex_int", "{0}[{1}, -1]", "{0}[{1}, -1]", [x, i])


def g_update(g):
    """x.at[idx].set/add(v), set_subtensor / inc_subtensor: x and v both differentiable;
    `add` indices repeat (they accumulate), `set` indices do not (the last write would win)."""
    x = g.pick(lambda i: len(g.shape(i)) >= 1 and g.shape(i)[0] > 0)
    if x is None:
        return None
    s = g.shape(x)
    add = g.rng.random() < 0.5
    k = int(g.rng.integers(1, 5 if add else min(s[0], 4) + 1))
    i = _index_of(g, s[0], k, unique=not add)
    two = len(s) >= 2 and s[1] > 0 and g.rng.random() < 0.4
    if two:   # x[i, j]: pairs, repeated for add; for set, i unique makes the pairs unique
        j = _index_of(g, s[1], k)
        sub, idx, args = "{2}, {3}", "({2}, {3})", [i, j]
        vshape = (k,) + s[2:]
    else:
        sub, idx, args = "{2}", "({2},)", [i]
        vshape = (k,) + s[1:]
    vshape = vshape if g.rng.random() < 0.7 else vshape[1:] if g.rng.random() < 0.5 else ()
    v = g.leaf("input", vshape)
    ref = f"at_add({{0}}, {idx}, {{1}})" if add else f"at_set({{0}}, {idx}, {{1}})"
    if g.rng.random() < 0.5:
        code = f"{{0}}.at[{sub}].{'add' if add else 'set'}({{1}})"
    else:
        code = f"fc.{'inc' if add else 'set'}_subtensor({{0}}[{sub}], {{1}})"
    return g.step("index_add" if add else "index_set", code, ref, [x, v] + args)


def g_sort(g):
    """fc.sort (a gather by argsort: its gradient scatters back) and fc.argsort (stable: ties
    from an integer-valued input keep their order)."""
    r = g.rng.random()
    if r < 0.5:
        x = g.pick(lambda i: len(g.shape(i)) >= 1)
        if x is None:
            return None
        ax = _axis(g, x) if g.rng.random() < 0.8 else None
        # Sorting is linear between ties; among thousands of draws two lie closer than the
        # central differences' step (fuzz seed 1315: 4,095 values), so only small sorts
        # count as smooth.
        n = int(np.prod(g.shape(x))) if ax is None else g.shape(x)[ax]
        return g.step("sort", f"fc.sort({{0}}, axis={ax})", f"np.sort({{0}}, axis={ax}, kind='stable')",
                      [x], n <= 256)
    x = g.leaf("input", g.base_shape() or (3,), domain="rng.integers(-2, 3, {shape})",
               dtype=g.fdtype if g.rng.random() < 0.7 else "int64")
    ax = _axis(g, x) if g.rng.random() < 0.8 else None
    return g.step("argsort", f"fc.argsort({{0}}, axis={ax})",
                  f"np.argsort({{0}}, axis={ax}, kind='stable')", [x], False)


def g_compose(g):
    """specify_shape and the vocabulary built from existing ops (one_hot, tile, repeat, flatten,
    dimshuffle, join, alloc, full, arange, zeros, ones); tile, repeat, flatten and dimshuffle
    need the static shape (documented), so they take values whose shape is known."""
    r = int(g.rng.integers(9))
    x = g.pick(lambda i: _static(g, i)) if r in (2, 3, 4, 5) else g.pick()
    if x is None:
        return None
    s = g.shape(x)
    nd = len(s)
    if r == 0:
        return g_specify(g, x)
    if r == 1:
        n = int(g.rng.integers(1, 5))
        y = _int_leaf(g, g.base_shape()[:2], -1, n + 1)   # out of [0, n): a row of zeros
        return g.step("one_hot", f"fc.one_hot({{0}}, {n}, dtype='{g.fdtype}')",
                      f"(np.expand_dims({{0}}, -1) == np.arange({n})).astype('{g.fdtype}')", [y])
    if r == 2 and int(np.prod(s, dtype=np.int64)) <= 4096:
        reps = tuple(int(v) for v in g.rng.integers(0, 3, int(g.rng.integers(1, nd + 2))))
        return g.step("tile", f"fc.tile({{0}}, {reps})", f"np.tile({{0}}, {reps})", [x])
    if r == 3 and nd and int(np.prod(s, dtype=np.int64)) <= 4096:
        ax = int(g.rng.integers(nd))
        reps = [int(v) for v in g.rng.integers(0, 3, s[ax])] if g.rng.random() < 0.5 else 2
        return g.step("repeat", f"fc.repeat({{0}}, {reps}, axis={ax})",
                      f"np.repeat({{0}}, {reps}, axis={ax})", [x])
    if r == 4 and nd >= 1:
        k = int(g.rng.integers(1, nd + 1))
        return g.step("flatten", f"fc.flatten({{0}}, {k})",
                      f"{{0}}.reshape({{0}}.shape[:{k - 1}] + (-1,))", [x])
    if r == 5:
        axes = [a for a in range(nd) if s[a] != 1 or g.rng.random() < 0.5]
        pat = [int(a) for a in g.rng.permutation(axes)] + ["x"] * int(g.rng.integers(0, 2))
        pat = [pat[j] for j in g.rng.permutation(len(pat))]
        drop = tuple(a for a in range(nd) if a not in axes)
        order = [p for p in pat if p != "x"]
        ref = f"np.squeeze({{0}}, {drop})" if drop else "{0}"
        kept = sorted(order)
        ref = f"np.transpose({ref}, {[kept.index(a) for a in order]})"
        new = tuple(j for j, p in enumerate(pat) if p == "x")
        ref = f"np.expand_dims({ref}, {new})" if new else ref
        return g.step("dimshuffle", f"fc.dimshuffle({{0}}, {tuple(pat)})", ref, [x])
    if r == 6 and nd:
        ax = int(g.rng.integers(nd))
        y = g.leaf("input", s[:ax] + (int(g.rng.integers(0, 3)),) + s[ax + 1:])
        return g.step("join", f"fc.join({ax}, {{0}}, {{1}})", f"np.concatenate([{{0}}, {{1}}], {ax})",
                      [x, y])
    if r == 7:
        t = tuple(int(v) for v in g.rng.integers(0, 4, int(g.rng.integers(0, 3))))
        sc = g.step("sum_to_scalar", "fc.sum({0})", "np.sum({0})", [x])
        if sc is None:
            return None
        if g.rng.random() < 0.5:
            return g.step("alloc", f"fc.alloc({{0}}, *{t})", f"np.broadcast_to({{0}}, {t})", [sc])
        return g.step("full", f"fc.full({t}, {{0}})", f"np.full({t}, {{0}})", [sc])
    if nd:
        n = s[-1]
        kind = int(g.rng.integers(3))
        c = [f"fc.arange({n}, dtype='{g.fdtype}')", f"fc.zeros(({n},), '{g.fdtype}')",
             f"fc.full(({n},), 0.5)"][kind]
        r_ = [f"np.arange({n}, dtype='{g.fdtype}')", f"np.zeros(({n},), '{g.fdtype}')",
              f"np.full(({n},), 0.5)"][kind]
        return g.step("constructors", f"{{0}} * fc.ones(({n},), '{g.fdtype}') + {c}",
                      f"{{0}} * np.ones(({n},), '{g.fdtype}') + {r_}", [x])
    return None


def g_specify(g, x=None):
    """fc.specify_shape: x with some sizes given (None or -1: any)."""
    x = g.pick() if x is None else x
    if x is None:
        return None
    t = tuple(None if g.rng.random() < 0.3 else -1 if g.rng.random() < 0.2 else d for d in g.shape(x))
    return g.step("specify_shape", f"fc.specify_shape({{0}}, {t})", "{0}", [x])


def g_stream(g):
    """fc.random.Stream draws used where their value is known: the stream advances on every
    call, so only draws whose result does not depend on the numbers are compared (a tensor p
    in {0, 1}, a range property, a sorted permutation, a one-hot choice)."""
    seed = int(g.rng.integers(0, 1000))
    s = f"fc.random.Stream(seed={seed})"
    r = 0 if g.rng.random() < 0.3 else int(g.rng.integers(6))
    x = g.pick()
    if x is None:
        return None
    sx = g.shape(x)
    if r == 0:   # binomial with a computed p in {0, 1}: random_check at call time
        n = int(g.rng.integers(1, 4))
        c = g.exact(lambda i: _bcast(sx, g.shape(i)) and np.broadcast_shapes(sx, g.shape(i)) == sx)
        if c is None:
            return None
        like = "like={0}" if g.rng.random() < 0.6 or None in g.spec.nodes[x].decl else f"size={sx}"
        return g.step("stream_binomial",
                      f"{{0}} * {s}.binomial({like}, n={n}, p=fc.cast({{1}} > 0, 'float64'), "
                      f"dtype={{0}}.dtype)",
                      f"{{0}} * ({n} * ({{1}} > 0)).astype({{0}}.dtype)", [x, c],
                      smooth=False)   # p steps where c crosses 0 (c may be x itself)
    if r == 1:   # uniform in [a, a + 1): floor is a
        a = int(g.rng.integers(-3, 3))
        return g.step("stream_uniform", f"{{0}} + fc.floor({s}.uniform(like={{0}}, low={a}, high={a + 1}, "
                      f"dtype={{0}}.dtype))", f"{{0}} + np.float64({a}).astype({{0}}.dtype)", [x])
    if r == 2:   # normal with std 0 is the mean (its gradient is g); |z| <= 8.57 always
        if g.rng.random() < 0.5:
            return g.step("stream_normal_mean", f"{s}.normal(like={{0}}, mean={{0}}, std=0.0)",
                          "{0}.astype('float64')", [x])
        return g.step("stream_normal_bound", f"{{0}} * fc.cast(fc.abs({s}.normal(like={{0}})) < 8.6, {{0}}.dtype)",
                      "{0}", [x])
    if r == 3:   # integers in [0, m) // m is 0; [k, k + 1) is k
        m = int(g.rng.integers(1, 5))
        return g.step("stream_integers", f"{{0}} + fc.cast({s}.integers(0, {m}, like={{0}}) // {m} + "
                      f"{s}.integers(3, 4, like={{0}}), {{0}}.dtype)",
                      "{0} + np.asarray(3, {0}.dtype)", [x])
    if r == 4:   # a permutation / a choice without replacement of everything, sorted
        n = int(g.rng.integers(0, 6))
        if g.rng.random() < 0.5:
            return g.step("stream_permutation", f"{{0}} + fc.cast(fc.sum(fc.sort({s}.permutation({n})) * "
                          f"(fc.arange({n}) + 1)), {{0}}.dtype)",
                          f"{{0}} + np.asarray({sum(i * (i + 1) for i in range(n))}, {{0}}.dtype)", [x])
        n = max(n, 1)
        return g.step("stream_choice", f"{{0}} + fc.cast(fc.sum(fc.sort({s}.choice({n}, size={n}, "
                      f"replace=False)) * (fc.arange({n}) + 1)), {{0}}.dtype)",
                      f"{{0}} + np.asarray({sum(i * (i + 1) for i in range(n))}, {{0}}.dtype)", [x])
    # a choice from a tensor pool with a one-hot p: always entry j (gradient: take's)
    pool = g.spec.nodes[x]
    if len(sx) != 1 or sx[0] == 0 or pool.kind != "input" or None in pool.decl:
        return None   # choice needs a pool whose length is known when the graph is built
    j = int(g.rng.integers(sx[0]))
    p = [1.0 if t == j else 0.0 for t in range(sx[0])]
    k = int(g.rng.integers(1, 4))
    return g.step("stream_choice_p", f"{s}.choice({{0}}, size=({k},), p={p})",
                  f"np.repeat({{0}}[{j}:{j + 1}], {k})", [x])


def g_loop(g):
    """Loops: a scan's final carry or stacked ys (either direction), or a fori_loop."""
    x = g.pick()
    if x is None:
        return None
    s = g.shape(x)
    if g.rng.random() < 0.25:  # a cond whose predicate depends on the data
        return g.step("cond", "fc.cond(fc.sum({0}) > 0, lambda a: fc.tanh(a) * 2.0, "
                      "lambda a: a * a - 1.0, {0})", "cond_ref({0})", [x], False)
    if g.rng.random() < 0.3 or not s or s[0] == 0:
        return g.step("fori_loop", "fc.fori_loop(0, 3, lambda i, c: fc.sin(c) * 0.9 + 0.1, {0})",
                      "fori_ref({0})", [x])
    rev, part = bool(g.rng.random() < 0.4), int(g.rng.integers(2))
    if len(s) >= 2 and s[-1] and g.rng.random() < 0.5:  # products: hoisted, sums moved out
        n = int(s[-1])
        return g.step("scan_rnn", f"fc.scan(lambda c, xt: (fc.tanh(xt @ (fc.eye({n}, dtype=xt.dtype) * 0.4 "
                      f"+ 0.05) + c @ (fc.eye({n}, dtype=xt.dtype) * 0.3 - 0.02)), c), "
                      f"{{0}}[0] * 0, {{0}}, "
                      f"reverse={rev})[{part}]", f"rnn_ref({{0}}, {rev}, {part})", [x])
    return g.step("scan", f"fc.scan(lambda c, xt: (fc.tanh(c * 0.5 + xt), c * xt), {{0}}[0] * 0, "
                  f"{{0}}, reverse={rev})[{part}]", f"scan_ref({{0}}, {rev}, {part})", [x])


def g_gates(g):
    """Adjacent slices of one value through different ops (an LSTM's gates): their gradients
    meet as getitem_grads that the algebra merges into one concatenation."""
    x = g.pick()
    if x is None or not g.shape(x) or g.shape(x)[-1] < 2:
        return None
    k = int(g.rng.integers(1, g.shape(x)[-1]))
    return g.step("gate_slices", f"fc.concatenate([fc.tanh({{0}}[..., :{k}]), "
                  f"fc.sigmoid({{0}}[..., {k}:]) * 2.0], -1)",
                  f"np.concatenate([np.tanh({{0}}[..., :{k}]), sig({{0}}[..., {k}:]) * 2.0], -1)",
                  [x])


def g_sizes(g):
    """Shapes as values: x.shape[0] (symbolic where the input's dim is declared None), and
    sizes read at run time from an int input n that holds x's first dim at every call."""
    x = g.pick()
    if x is None or not g.shape(x) or g.shape(x)[0] == 0:
        return None
    s = g.shape(x)
    n = g.leaf("input", (), dtype="int64", domain=f"np.int64({s[0]})", decl=(), diff=False)
    rest = tuple(int(d) for d in s[1:])
    r = int(g.rng.integers(7))
    if r == 6:  # a shape read of computed values: O1 answers it from the operands
        return g.step("dim_of_computed", "{0} * fc.cast(fc.transpose(fc.exp({0}.reshape(({1}, "
                      "-1)) * 0.5)).shape[-1], {0}.dtype)",
                      "{0} * np.asarray({1}, dtype={0}.dtype)", [x, n])
    if r == 0:
        return g.step("reshape_dyn", "{0}.reshape(({1}, -1))", "{0}.reshape(({1}, -1))", [x, n])
    if r == 1:
        return g.step("reshape_own_dim", "{0}.reshape(({0}.shape[0], -1))",
                      "{0}.reshape(({0}.shape[0], -1))", [x])
    if r == 2:
        return g.step("alloc_dyn", f"fc.alloc({{0}}[0], {{1}}, *{rest})",
                      f"np.broadcast_to({{0}}[0], ({{1}},) + {rest}).copy()", [x, n])
    if r == 3:
        return g.step("arange_dyn", "{0} * fc.arange(0.5, {1} + 0.5)[(slice(None),)"
                      " + (None,) * ({0}.ndim - 1)]",
                      "{0} * np.arange(0.5, {1} + 0.5)[(slice(None),) + (None,) * ({0}.ndim - 1)]",
                      [x, n])
    if r == 4:
        return g.step("slice_dyn", "{0}[{1} // 2:]", "{0}[{1} // 2:]", [x, n])
    return g.step("dim_shape", "{0} * fc.zeros(({1},)).shape[0] + fc.cast(fc.shape("
                  "fc.zeros(({1},)))[0], {0}.dtype)", "{0} * {1} + {1}", [x, n])


def g_conv(g):
    """A convolution (1-2 spatial dims: stride, pads with negative crops, dilation, groups)
    of a fresh input, or max/avg pooling of one."""
    nd = int(g.rng.integers(1, 3))
    groups = int(g.rng.choice([1, 1, 2]))
    n, c = int(g.rng.integers(1, 3)), groups * int(g.rng.integers(1, 3))
    sp = tuple(int(v) for v in g.rng.integers(3, 7, nd))
    decl = (None if g.rng.random() < 0.3 else n, c) + sp   # the batch may be unknown
    pool = g.rng.random() < 0.3
    # A per-channel bias: O2 folds it into the conv's GEMM (conv_cols where the conv is
    # lowered to im2col, conv_bias where it stays a conv, as with run-time spatial sizes).
    bias = not pool and g.rng.random() < 0.4
    if g.rng.random() < (0.5 if bias else 0.25):   # so may the spatial sizes
        decl = decl[:2] + (None,) * nd
    x = g.leaf("input", (n, c) + sp, decl=decl)
    if pool:
        k = tuple(int(v) for v in g.rng.integers(1, 3, nd))
        st = tuple(int(v) for v in g.rng.integers(1, 3, nd))
        pd = tuple(int(g.rng.integers(0, kk // 2 + 1)) for kk in k)
        kind = "max" if g.rng.random() < 0.5 else "avg"
        return g.step(f"{kind}_pool", f"fc.{kind}_pool({{0}}, {k}, {st}, {pd})",
                      f"pool_np({{0}}, {k}, {st}, {pd}, '{kind}')", [x], kind != "max")
    if g.rng.random() < 0.15:   # layer_norm of a picked value (a composition: its grads)
        v = g.pick(lambda i: len(g.shape(i)) >= 1 and g.shape(i)[-1] >= 2)
        if v is not None and g.rng.random() < 0.3:   # or its unbiased variance (fc.var)
            return g.step("var", "fc.var({0}, axis=-1, ddof=1)", "np.var({0}, axis=-1, ddof=1)",
                          [v])
        if v is not None:
            return g.step("layer_norm", "fc.layer_norm({0}, axes=-1)", "layer_norm_np({0})",
                          [v])
    if g.rng.random() < 0.2:   # a transposed conv (the conv op with the input spread)
        co = int(g.rng.integers(1, 3))
        k = tuple(int(v) for v in g.rng.integers(1, 4, nd))
        st = tuple(int(v) for v in g.rng.integers(1, 3, nd))
        pd = tuple(int(g.rng.integers(0, kk)) for kk in k)
        w = g.leaf("input", (c, co) + k, dtype=g.spec.nodes[x].dtype, decl=(c, co) + k)
        return g.step("conv_transpose", f"fc.conv_transpose({{0}}, {{1}}, {st}, {pd}, 0, "
                      f"{groups})", f"convT_np({{0}}, {{1}}, {st}, {pd}, {groups})", [x, w])
    o = groups * int(g.rng.integers(1, 3))
    k = tuple(int(v) for v in g.rng.integers(1, 4, nd))
    st = tuple(int(v) for v in g.rng.integers(1, 3, nd))
    dil = tuple(int(v) for v in g.rng.integers(1, 3, nd))
    pad = tuple((int(a), int(b)) for a, b in g.rng.integers(-1, 3, (nd, 2)))
    w = g.leaf("input", (o, c // groups) + k, dtype=g.spec.nodes[x].dtype,
               decl=(o, c // groups) + k)   # conv needs a kernel of known size
    if bias:
        b = g.leaf("input", (o,), dtype=g.spec.nodes[x].dtype, decl=(o,))
        bs = (1, -1) + (1,) * nd
        return g.step("conv_bias", f"fc.conv({{0}}, {{1}}, stride={st}, padding={pad}, "
                      f"dilation={dil}, groups={groups}) + fc.reshape({{2}}, {bs})",
                      f"conv_np({{0}}, {{1}}, {st}, {pad}, {dil}, {groups}) + "
                      f"np.reshape({{2}}, {bs})", [x, w, b])
    return g.step("conv", f"fc.conv({{0}}, {{1}}, stride={st}, padding={pad}, dilation={dil}, "
                  f"groups={groups})", f"conv_np({{0}}, {{1}}, {st}, {pad}, {dil}, {groups})",
                  [x, w])


GENERATORS = [(g_unary, 6), (g_binary, 5), (g_compare, 1), (g_reduce, 2.5), (g_matmul, 1),
              (g_linalg, 0.5), (g_shape, 2.5), (g_const, 1.0), (g_random, 0.15),
              (g_round, 0.2), (g_divmod, 0.2), (g_xlogx, 0.15), (g_advindex, 0.3), (g_update, 0.5),
              (g_sort, 0.2), (g_compose, 0.4), (g_specify, 0.1), (g_stream, 0.3),
              (g_sizes, 0.3), (g_loop, 0.2), (g_gates, 0.2), (g_conv, 0.45)]


def generate(seed, large=False, skip=frozenset(), chain=None):
    """One random Spec for `seed` (large: sizes across the runtime's thresholds)."""
    g = Gen(seed, large, skip)
    rng = g.rng
    base = g.base_shape()
    for _ in range(int(rng.integers(1, 4))):
        g.leaf("input", g.bshape(base))
    if chain is None:
        chain = "C2" not in skip and not large and rng.random() < 0.004
    n_ops = 1500 if chain else int(rng.integers(1, 9 if not large else 5))
    fns, w = zip(*GENERATORS)
    w = np.array(w) / sum(w)
    made, tries = 0, 0
    while made < n_ops and tries < 10 * n_ops:
        tries += 1
        if chain:
            x = len(g.spec.nodes) - 1
            made += g.step("chain", "fc.tanh({0}) * 1.5", "np.tanh({0}) * 1.5", [x]) is not None
            continue
        try:
            made += fns[rng.choice(len(fns), p=w)](g) is not None
        except Exception:   # a generator that does not apply here (shapes, domains)
            continue
    steps = [i for i, n in enumerate(g.spec.nodes) if n.kind == "step"]
    if not steps:
        g.step("neg", "-{0}", "-{0}", [0])
        steps = [len(g.spec.nodes) - 1]
    outs = [steps[-1]] + [i for i in steps[:-1] if rng.random() < 0.15]
    if "B1" in skip:
        outs = [i for i in outs if not _is_view(g.spec.nodes[i])]
        outs = outs or [g.step("neg", "-{0}", "-{0}", [steps[-1]])]
    g.spec.outputs = [int(i) for i in outs if i is not None]
    g.spec.skip = frozenset(skip)
    return g.spec


def _is_view(n):
    return n.op in ("T", "transpose", "getitem", "reshape", "reshape_flat", "expand_dims", "squeeze",
                    "broadcast_to", "topk", "diag", "getitem_tensor")


# -- building in flowc ------------------------------------------------------------------------------
def build(spec, params=(), consts_as_inputs=False):
    """Build the spec in a fresh fc.Graph: (graph, {node index: Tensor}, input indices).

    Leaves listed in `params` become fc.param (initial value: draw A); with consts_as_inputs,
    constants become inputs fed their value.
    """
    graph = fc.Graph()
    env = {"fc": fc, "np": np, "uniform_like": uniform_like}
    ts, ins = {}, []
    with graph:
        for i in spec.needed():
            n = spec.nodes[i]
            if n.kind == "step":
                expr = n.code.format(*[f"v{a}" for a in n.args])
                ts[i] = env[f"v{i}"] = eval(expr, env)
                continue
            kind = "param" if i in params else n.kind
            if kind == "const" and consts_as_inputs:
                kind = "input"
            if kind == "input":
                ts[i] = fc.input(f"x{i}", n.decl if n.kind == "input" else n.shape, dtype=n.dtype)
                ins.append(i)
            elif kind == "const":
                ts[i] = fc.constant(draw_leaf(spec, i, 0))
            else:
                ts[i] = fc.param(f"p{i}", draw_leaf(spec, i, 0))
            env[f"v{i}"] = ts[i]
    return graph, ts, ins


def call_args(spec, ins, k):
    """The call arrays for draw k, in their layouts."""
    out = []
    for i in ins:
        n = spec.nodes[i]
        a = draw_leaf(spec, i, 0 if n.kind == "const" else k)
        out.append(laid_out(n, a) if n.kind == "input" else a)
    return out


# -- comparison --------------------------------------------------------------------------------------
def tol(dtype):
    return 2e-3 if np.dtype(dtype) in (np.float32, np.float16) else 1e-7


def close(got, want, dtype=None, scale=None):
    """Elementwise: equal non-finite values, and finite ones within the dtype's tolerance."""
    got = np.asarray(got)
    want = np.asarray(want)
    if want.dtype.kind not in "fc":
        return got == want
    t = tol(dtype or want.dtype)
    w = want.astype(np.float64)
    g_ = got.astype(np.float64)
    fin = np.isfinite(w)
    if scale is None:
        scale = max(1.0, float(np.abs(w[fin]).max(initial=0.0)))
    with np.errstate(all="ignore"):
        ok = np.abs(g_ - w) <= t * (np.abs(w) + scale)
    ok = np.where(fin, ok, (g_ == w) | (np.isnan(g_) & np.isnan(w)))
    return ok


def mismatch(got, want, exact=None, dtype=None):
    """None when `got` matches the reference (or, elementwise, its long-double twin), else why."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.dtype != want.dtype:
        return f"dtype {got.dtype}, expected {want.dtype}"
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    ok = close(got, want, dtype)
    if exact is not None and np.shape(exact) == want.shape and not ok.all():
        with np.errstate(all="ignore"):
            ok |= close(got, np.asarray(exact).astype(want.dtype), dtype)
    if np.all(ok):
        return None
    bad = np.argwhere(~np.asarray(ok))
    idx = tuple(bad[0]) if got.ndim else ()
    return (f"{len(bad)} of {got.size} elements differ, e.g. at {list(map(int, idx))}: "
            f"{got[idx]!r} vs {want[idx]!r}")


def difference(a, b):
    """Where two arrays of one shape and dtype first differ (bitwise, NaNs equal)."""
    a, b = np.asarray(a), np.asarray(b)
    same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
    bad = np.argwhere(~np.asarray(same))
    idx = tuple(bad[0]) if a.ndim else ()
    return f"{len(bad)} of {a.size} elements differ slightly, e.g. at {list(map(int, idx))}: " \
           f"{a[idx]!r} vs {b[idx]!r}"


def identical(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    return bool(np.all(a == b))


# -- checks ------------------------------------------------------------------------------------------
class Finding(Exception):
    """A check failed: `check` names it, `msg` says how."""

    def __init__(self, check, msg):
        super().__init__(f"{check}: {msg}")
        self.check, self.msg = check, msg


def guarded(check, what, fn):
    """Run fn; any exception from flowc/runtime becomes a Finding of this check."""
    try:
        return fn()
    except Finding:
        raise
    except RecursionError:
        raise Finding(check, f"{what}: RecursionError") from None
    except Exception as e:
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise Finding(check, f"{what}: {type(e).__name__}: {first}") from None


# Refusals the docs promise (not findings): a second derivative of a conv whose spatial sizes
# are known only at run time needs its kernel's size (flowc/ops/conv.py).
DOCUMENTED = ("the gradient of conv needs the kernel's spatial sizes",)


def documented(check, what, fn):
    """guarded(), but None for a documented refusal."""
    try:
        return guarded(check, what, fn)
    except Finding as e:
        if any(d in e.msg for d in DOCUMENTED):
            return None
        raise


def _as_list(r, n):
    return list(r) if n != 1 or isinstance(r, list) else [r]


def run_calls(check, f, argsets, n_out, level):
    """Calls f with draws A, B, A; the 3rd must equal the 1st bit for bit. Returns [A, B]."""
    res = []
    for c, args in enumerate(argsets):
        r = guarded(check, f"{level} call {c + 1}", lambda: f(*args))
        res.append([np.array(x, copy=True) for x in _as_list(r, n_out)] + [_as_list(r, n_out)])
    for j in range(n_out):
        if not identical(res[2][j], res[0][j]):
            d = mismatch(res[2][j], res[0][j]) or difference(res[2][j], res[0][j])
            raise Finding(check, f"{level}: call 3 (draw A again) != call 1, output {j}: {d}")
        if not identical(res[0][n_out][j], res[0][j]):
            raise Finding(check, f"{level}: call 1's output {j} changed after later calls")
    return [r[:n_out] for r in res[:2]]


def check_forward(spec, stats):
    """O0 = O1 = O2 = NumPy on draws A, B, A; and with constants fed as inputs."""
    refs = [evaluate(spec, {i: draw_leaf(spec, i, k) for i in spec.leaves()}) for k in (0, 1)]
    exact = [evaluate(spec, {i: draw_leaf(spec, i, k) for i in spec.leaves()}, exact=True)
             for k in (0, 1)]
    seen = {}
    variants = [False] + ([True] if any(spec.nodes[i].kind == "const" for i in spec.leaves()) else [])
    for ci in variants:
        check = "forward" if not ci else "consts-as-inputs"
        graph, ts, ins = guarded(check, "build", lambda: build(spec, consts_as_inputs=ci))
        argsets = [call_args(spec, ins, k) for k in (0, 1, 0)]
        outs = [ts[i] for i in spec.outputs]
        for level in LEVELS if not ci else ("O1", "O2"):
            f = guarded(check, f"{level} compile", lambda: fc.function([ts[i] for i in ins], outs,
                                                                      optimize=level,
                                                                      single_output=False))
            stats["calls"] += 3
            coverage(stats, f.graph)
            got = run_calls(check, f, argsets, len(outs), level)
            for k in (0, 1):
                for j, o in enumerate(spec.outputs):
                    d = mismatch(got[k][j], refs[k][o], exact[k].get(o), low_dtype(spec))
                    if d:
                        raise Finding(check, f"{level} draw {'AB'[k]}, output {j}: {d}")
                    # Folding must give what run time gives (both may pass the reference:
                    # a stabilized value and the naive overflow are each accepted alone).
                    d = ci and mismatch(got[k][j], seen[level][k][j], dtype=low_dtype(spec))
                    if d:
                        raise Finding(check, f"{level} draw {'AB'[k]}, output {j}: constants "
                                             f"fed as inputs vs folded: {d}")
            seen[level] = got
        stats["graphs-checked" if not ci else "consts-as-inputs"] += 1


def coverage(stats, g):
    """Count the ops of a compiled graph (networkx) for the coverage table."""
    G = getattr(g, "nx", g)
    for _, d in G.nodes(data=True):
        stats["op:" + d["op"]] += 1


def float_wrt(spec):
    return [i for i in spec.leaves(("input",)) if spec.nodes[i].diff and spec.nodes[i].kind == "input"]


def cotangents(spec, refs):
    rng = np.random.default_rng([spec.seed, 7])
    return {o: rng.uniform(0.5, 1.5, refs[o].shape) * rng.choice([-1.0, 1.0], refs[o].shape)
            for o in spec.outputs if is_float(refs[o].dtype)}


def cost_of(ts, R, graph):
    """sum_o sum(out_o * R_o): every output element enters the cost."""
    with graph:
        c = None
        for o, r in R.items():
            t = fc.sum(fc.cast(ts[o], "float64") * fc.constant(r))
            c = t if c is None else c + t
    return c


def low_dtype(spec):
    """float32 if any value of the graph is float32 (its precision bounds every result)."""
    return "float32" if any(spec.nodes[i].dtype == "float32" for i in spec.needed()) else None


def compile_levels(check, ins, outs, argsets, stats, levels=LEVELS, low=None):
    """Each level's results on draws A, B (calls A, B, A); later levels compared with O0's."""
    base = None
    for level in levels:
        f = guarded(check, f"{level} compile", lambda: fc.function(ins, outs, optimize=level,
                                                                  single_output=False))
        stats["calls"] += 3
        coverage(stats, f.graph)
        got = run_calls(check, f, argsets, len(outs), level)
        if base is None:
            base = got
            continue
        for k in (0, 1):
            for j in range(len(outs)):
                b, x = np.asarray(base[k][j]), np.asarray(got[k][j])
                # A stable rewrite may make finite what O0 leaves inf/nan: accept that direction.
                keep = _stabler(b, x)
                d = mismatch(np.where(keep, b, x) if keep is not None else x, b, dtype=low)
                if d:
                    raise Finding(check, f"{level} vs O0, draw {'AB'[k]}, result {j}: {d}")
    return base


def _stabler(base, got):
    """Where a stable rewrite may legitimately differ from O0: O0 inf/nan made finite, or O0 nan
    made inf (xlogx'(0) = -inf times a saturated log(1 - sigmoid(c)): nan at O0, inf once
    stabilized); None where the arrays cannot be compared so."""
    b, x = np.asarray(base), np.asarray(got)
    if b.dtype.kind != "f" or b.shape != x.shape:
        return None
    return ~np.isfinite(b) & (np.isfinite(x) | (np.isnan(b) & ~np.isnan(x)))


def ref_cost(spec, R, arrays):
    vals = evaluate(spec, arrays)
    return sum(float(np.sum(vals[o].astype(np.float64) * r)) for o, r in R.items())


def check_grads(spec, stats, second=True):
    """Gradients at every level, against central differences, jvp vs vjp, grad of grad, hessian."""
    wrt = float_wrt(spec)
    refs = evaluate(spec, {i: draw_leaf(spec, i, 0) for i in spec.leaves()})
    R = cotangents(spec, refs)
    if not wrt or not R:
        return
    if naive_overflows(spec, refs):
        stats["derivatives past an O0 overflow"] += 1
        return
    graph, ts, ins = guarded("grad", "build", lambda: build(spec))
    cost = guarded("grad", "build cost", lambda: cost_of(ts, R, graph))
    gs = guarded("grad", "fc.grad", lambda: fc.grad(cost, [ts[i] for i in wrt]))
    argsets = [call_args(spec, ins, k) for k in (0, 1, 0)]
    tin = [ts[i] for i in ins]
    g0 = compile_levels("grad", tin, gs, argsets, stats, low=low_dtype(spec))
    stats["grads"] += 1
    nodes = [spec.nodes[i] for i in spec.needed()]
    smooth = all(n.smooth for n in nodes) and all(n.dtype != "float32" for n in nodes)
    rng = np.random.default_rng([spec.seed, 11])
    V = {i: rng.uniform(-1, 1, spec.nodes[i].shape) for i in wrt}
    base = {i: draw_leaf(spec, i, 0) for i in spec.leaves()}
    gv = sum(float(np.sum(np.asarray(g, dtype=np.float64) * V[i])) for g, i in zip(g0[0], wrt))
    if smooth and np.isfinite(gv) and all(np.isfinite(g).all() for g in g0[0]):
        fd = directional(lambda a: ref_cost(spec, R, a), base, V)
        if fd is not None and not _agree(gv, fd[0], fd[1]):
            raise Finding("grad-vs-fd", f"<grad, v> = {gv!r}, central differences {fd[0]!r}")
        stats["grad-vs-fd"] += fd is not None
    # jvp: <R, J v> must equal <J^T R, v> = <grad, v>
    with graph:
        tans = [fc.constant(V[i].astype(spec.nodes[i].dtype)) for i in wrt]
        outs = [ts[o] for o in R]
        jv = guarded("jvp-vs-vjp", "fc.jvp", lambda: fc.jvp(outs, [ts[i] for i in wrt], tans))
    got = compile_levels("jvp-vs-vjp", tin, jv, argsets, stats, levels=("O0", "O2"), low=low_dtype(spec))
    jvr = sum(float(np.sum(np.asarray(t, dtype=np.float64) * R[o])) for t, o in zip(got[0], R))
    rt = 1e-3 if any(spec.nodes[i].dtype == "float32" for i in spec.needed()) else 1e-5
    primal_ok = all(np.isfinite(refs[o]).all() for o in R)   # mean of nothing: nan, no tangent
    if primal_ok and np.isfinite(gv) and not _agree(jvr, gv, 0, rt):
        raise Finding("jvp-vs-vjp", f"<R, jvp> = {jvr!r}, <vjp, v> = {gv!r}")
    stats["jvp-vs-vjp"] += 1
    if spec.size() > LONG or not second:   # long chains: first order only (compile time)
        return
    check_second_order(spec, stats, graph, ts, tin, gs, wrt, argsets, V, smooth)


def naive_overflows(spec, refs):
    """Whether a stabilized composition's plain value (what O0 computes) is not finite: O1
    and O2 compute the stable value there, so what follows (a max's choice, a gradient, a
    tangent) may rightly differ between levels. Forward checks compare such values with
    the true value; derivatives have no such reference, so they are not compared."""
    return any(n.exact and not np.isfinite(np.asarray(refs[i], dtype=np.float64)).all()
               for i, n in enumerate(spec.nodes) if n.kind == "step" and i in refs)


def _agree(a, b, err, rt=1e-5):
    return abs(a - b) <= rt * max(1.0, abs(a), abs(b)) + 10 * err


def directional(f, arrays, V, eps=1e-6):
    """(d/dt f(x + t v) at 0 by central differences, an error estimate) or None if not finite."""
    vals = []
    for h in (eps, 2 * eps):
        p = {i: (a + h * V[i] if i in V else a) for i, a in arrays.items()}
        m = {i: (a - h * V[i] if i in V else a) for i, a in arrays.items()}
        with np.errstate(all="ignore"):
            vals.append((f(p) - f(m)) / (2 * h))
    if not all(np.isfinite(vals)):
        return None
    # Richardson: the difference of the two steps estimates the truncation and rounding error.
    return vals[0], abs(vals[0] - vals[1])


def check_second_order(spec, stats, graph, ts, tin, gs, wrt, argsets, V, smooth):
    """grad(sum(grad * C)) at O0 and O2 against differences of the gradient; hessian vs hvp."""
    rng = np.random.default_rng([spec.seed, 13])
    C = {i: rng.uniform(-1, 1, spec.nodes[i].shape) for i in wrt}
    with graph:
        c2 = None
        for g, i in zip(gs, wrt):
            t = fc.sum(fc.cast(g, "float64") * fc.constant(C[i]))
            c2 = t if c2 is None else c2 + t
        g2 = documented("grad-of-grad", "fc.grad", lambda: fc.grad(c2, [ts[i] for i in wrt]))
    if g2 is None:
        return
    got = compile_levels("grad-of-grad", tin, g2, argsets, stats, levels=("O0", "O2"), low=low_dtype(spec))
    stats["grad-of-grad"] += 1
    if smooth and not spec.large:
        f1 = fc.function(tin, c2)
        order = [i for i in spec.needed() if spec.nodes[i].kind == "input"]

        def c2_at(arrays):
            return float(f1(*[arrays[i] for i in order]))
        base = {i: draw_leaf(spec, i, 0) for i in order}
        fd = directional(c2_at, base, V, eps=1e-5)
        gv = sum(float(np.sum(np.asarray(g, dtype=np.float64) * V[i])) for g, i in zip(got[0], wrt))
        if fd is not None and np.isfinite(gv) and not _agree(gv, fd[0], fd[1], 1e-4):
            raise Finding("grad-of-grad", f"<grad2, v> = {gv!r}, central differences {fd[0]!r}")
    # hessian (forward over reverse) of the first small wrt, contracted with v, = hvp
    # jacobians of tensors with unknown dims need static shapes (documented): known dims only
    small = [i for i in wrt if np.prod(spec.nodes[i].shape, dtype=int) <= 12]
    if "C4" in spec.skip and any(0 in spec.nodes[i].shape for i in spec.needed()):
        small = []
    if not small or spec.large:
        return
    check_jacobian(spec, stats, graph, ts, tin, small[0], V[small[0]], argsets)
    small = [i for i in small if None not in spec.nodes[i].decl]
    if not small:
        return
    x = small[0]
    refs = evaluate(spec, {i: draw_leaf(spec, i, 0) for i in spec.leaves()})
    R = cotangents(spec, refs)
    with graph:
        cost = cost_of(ts, R, graph)
        H = documented("hessian", "fc.hessian", lambda: fc.hessian(cost, ts[x]))
        v = fc.constant(V[x].astype(spec.nodes[x].dtype))
        hv = documented("hessian", "fc.hvp", lambda: fc.hvp(cost, ts[x], v))
    if H is None or hv is None:
        return
    got = compile_levels("hessian", tin, [H, hv], argsets, stats, levels=("O0", "O2"), low=low_dtype(spec))
    nd = len(spec.nodes[x].shape)
    for k in (0, 1):
        if not np.isfinite(got[k][0]).all():   # an infinite second partial (x**x at 0): H v has
            continue                            # inf * 0 off the diagonal, as check_jacobian says
        Hv = np.tensordot(np.asarray(got[k][0], dtype=np.float64), V[x], axes=nd) if nd else \
            np.asarray(got[k][0], dtype=np.float64) * V[x]
        # A float32 value anywhere in the graph bounds the precision of both sides (seed
        # 1205: a float32 cast under a clip's bounds, 5e-6 apart).
        d = mismatch(Hv.astype(np.asarray(got[k][1]).dtype), np.asarray(got[k][1]),
                     dtype=low_dtype(spec))
        if d and spec.nodes[x].dtype != "float32":
            raise Finding("hessian", f"hessian @ v != hvp, draw {'AB'[k]}: {d}")
    stats["hessian"] += 1


def check_jacobian(spec, stats, graph, ts, tin, x, v, argsets):
    """jacobian(out, x) contracted with v = jvp(out, x, v), for the first float output."""
    o = next(o for o in spec.outputs if is_float(spec.nodes[o].dtype))
    if np.prod(spec.nodes[o].shape, dtype=int) > 64:
        return
    with graph:
        try:
            J = fc.jacobian(ts[o], ts[x])
        except fc.GradError as e:
            if "static shapes" in str(e):   # documented: several unknown dims need static shapes
                return
            raise Finding("jacobian", f"fc.jacobian: GradError: {e}") from None
        except Exception as e:
            raise Finding("jacobian", f"fc.jacobian: {type(e).__name__}: {str(e)[:200]}") from None
        jv = guarded("jacobian", "fc.jvp", lambda: fc.jvp(ts[o], ts[x], fc.constant(v.astype(spec.nodes[x].dtype))))
    got = compile_levels("jacobian", tin, [J, jv], argsets, stats, levels=("O0", "O2"), low=low_dtype(spec))
    nd = len(spec.nodes[x].shape)
    for k in (0, 1):
        Jv = np.tensordot(np.asarray(got[k][0], dtype=np.float64), v, axes=nd) if nd else \
            np.asarray(got[k][0], dtype=np.float64) * v
        want = np.asarray(got[k][1])
        if not np.isfinite(got[k][0]).all():   # an infinite partial (xlogx at 0): J v has inf * 0
            continue
        prim = evaluate(spec, {i: draw_leaf(spec, i, k) for i in spec.leaves()}).get(o)
        if prim is not None and not np.isfinite(np.asarray(prim, dtype=np.float64)).all():
            continue   # no derivative where the value is not finite (log of an empty sum)
        d = mismatch(Jv.astype(want.dtype).reshape(want.shape) if Jv.size == want.size else Jv, want)
        if d and want.dtype != np.float32:
            raise Finding("jacobian", f"jacobian @ v != jvp, draw {'AB'[k]}: {d}")
    stats["jacobian"] += 1


def train_params(spec):
    """The float inputs that check_training turns into params."""
    wrt = float_wrt(spec)
    return set(wrt[: max(1, len(wrt) // 2 + 1)]) if wrt else set()


def check_training(spec, stats, steps=3):
    """Float inputs become params updated by SGD; 3 steps at O0, and at O2 each step from O0's
    parameters of the step before, give the same outputs and updates."""
    wrt = float_wrt(spec)
    refs = evaluate(spec, {i: draw_leaf(spec, i, 0) for i in spec.leaves()})
    R = cotangents(spec, refs)
    if not wrt or not R:
        return
    params = train_params(spec)
    # A stabilized composition that overflows at O0 inside the graph may still give a finite
    # output there (x / inf = 0): O0 is then no reference for O2 (seed 1209 found one).
    if any(n.exact for n in spec.nodes if n.kind == "step") and not all(
            np.isfinite(v).all() for v in map(np.asarray, refs.values()) if v.dtype.kind == "f"):
        stats["training past an O0 overflow"] += 1
        return
    runs = []
    for level in ("O0", "O2"):
        graph, ts, ins = guarded("training", "build", lambda: build(spec, params=params))
        with graph:
            cost = cost_of(ts, R, graph)
            gs = guarded("training", "fc.grad", lambda: fc.grad(cost, [ts[p] for p in sorted(params)]))
            ups = [(ts[p], ts[p] - spec.lr * g) for p, g in zip(sorted(params), gs)]
        outs = [cost] + [ts[o] for o in spec.outputs]
        f = guarded("training", f"{level} compile",
                    lambda: fc.function([ts[i] for i in ins], outs, updates=ups, optimize=level,
                                        single_output=False,
                                        # one process: the exchange must change no value
                                        data_parallel=level == "O2" or None))
        coverage(stats, f.graph)
        hist = []
        for s in range(steps):
            args = call_args(spec, ins, s % 2)
            if runs and s:
                # Each O2 step starts from O0's parameters of the step before, so a near-tie
                # that a selection (topk, sort, max) breaks the other way costs that step's
                # elements only; continuing from its own, the flipped gradient spread through
                # the later updates (seed 1309: 440 of 2M parameters by step 3). It also
                # checks that set_value between calls is honoured.
                for k, p in enumerate(sorted(params)):
                    ts[p].set_value(runs[0][s - 1][1 + len(spec.outputs) + k])
            r = guarded("training", f"{level} step {s + 1}", lambda: f(*args))
            hist.append([np.array(x, copy=True) for x in r] +
                        [np.array(graph.cells[ts[p].id].value, copy=True) for p in sorted(params)])
            stats["calls"] += 1
        runs.append(hist)
        if level == "O0":   # step 1's outputs against NumPy with the initial params
            for j, o in enumerate(spec.outputs):
                d = mismatch(hist[0][1 + j], refs[o], dtype=low_dtype(spec))
                if d and not np.isnan(hist[0][0]):
                    raise Finding("training", f"O0 step 1 output {j} vs NumPy: {d}")
    low = low_dtype(spec)
    # A stabilized composition (log(1 - sigmoid(40)), ...) is finite at O2 where the O0
    # reference overflows; from that step on O0 is no reference (forward checks compare
    # such values with the true value instead).
    stable = any(n.exact for n in spec.nodes if n.kind == "step")
    for s in range(steps):
        if stable and not all(np.isfinite(a).all() for a in runs[0][s] if a.dtype.kind == "f"):
            stats["training past an O0 overflow"] += 1
            break
        for j, (a, b) in enumerate(zip(runs[0][s], runs[1][s])):
            # As in compile_levels: a stable rewrite may make finite what O0 leaves inf/nan
            # (a saturated log(1 - sigmoid(c)) is -inf at O0, its cost nan, the steps after nan).
            keep = _stabler(a, b)
            d = mismatch(np.where(keep, a, b) if keep is not None else b, a, dtype=low)
            if d:
                what = "cost" if j == 0 else f"output {j - 1}" if j <= len(spec.outputs) else \
                    f"param p{sorted(params)[j - 1 - len(spec.outputs)]}"
                raise Finding("training", f"O2 vs O0, step {s + 1}, {what}: {d}")
    stats["training"] += 1


# -- save -> runtime.load in a fresh process that cannot import flowc ------------------------------
LOADER = r'''
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("flowc", "networkx"):
            raise ImportError(f"{name} is blocked: runtime.load must not need it")
sys.meta_path.insert(0, Block())
import numpy as np
import flowc_runtime as runtime
assert "flowc" not in sys.modules
LAYOUTS = json.loads(sys.argv[2])

out = []
for case in json.load(open(sys.argv[1])):
    try:
        exe = runtime.load(case["path"])
        data = np.load(case["path"] + ".calls.npz")
        for c in range(case["calls"]):
            # the same layouts as in the fuzzer's process (a strided operand takes another path)
            args = [eval(LAYOUTS[lay].format("data[f'c{c}a{j}']"))
                    for j, lay in enumerate(case["layouts"])]
            r = exe(*args)
            r = r if isinstance(r, list) else [r]
            for j, x in enumerate(r):
                w = data[f"c{c}o{j}"]
                x = np.asarray(x)
                same = x.shape == w.shape and x.dtype == w.dtype and bool(np.all(
                    (x == w) | (np.isnan(x) & np.isnan(w)) if x.dtype.kind == "f" else x == w))
                if not same:
                    raise AssertionError(f"call {c + 1} output {j} differs from flowc's")
        out.append(None)
    except Exception as e:
        out.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
print(json.dumps(out))
'''


class SaveLoad:
    """Collects saved Programs with their calls; checks them all in one subprocess."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fuzz-save-")
        self.cases = []

    def add(self, spec, stats):
        """Save spec's O2 function (a training one sometimes) and record three calls."""
        train = float_wrt(spec) and np.random.default_rng([spec.seed, 5]).random() < 0.3
        params = set(float_wrt(spec)[:1]) if train else set()
        graph, ts, ins = guarded("save-load", "build", lambda: build(spec, params=params))
        ups = []
        if train:
            refs = evaluate(spec, {i: draw_leaf(spec, i, 0) for i in spec.leaves()})
            R = cotangents(spec, refs)
            if R:
                with graph:
                    cost = cost_of(ts, R, graph)
                    (gp,) = fc.grad(cost, [ts[p] for p in params])
                    ups = [(ts[p], ts[p] - spec.lr * gp) for p in params]
        f = guarded("save-load", "O2 compile", lambda: fc.function(
            [ts[i] for i in ins], [ts[o] for o in spec.outputs], updates=ups, single_output=False))
        path = os.path.join(self.dir, f"g{len(self.cases)}")
        guarded("save-load", "save", lambda: f.save(path))
        data = {}
        for c, k in enumerate((0, 1, 0)):
            args = call_args(spec, ins, k)
            r = guarded("save-load", f"call {c + 1}", lambda: f(*args))
            for j, a in enumerate(args):
                data[f"c{c}a{j}"] = a
            for j, x in enumerate(r):
                data[f"c{c}o{j}"] = np.asarray(x)
        np.savez(path + ".calls.npz", **data)
        layouts = [spec.nodes[i].layout if spec.nodes[i].kind == "input" else "C" for i in ins]
        self.cases.append(({"path": path, "calls": 3, "layouts": layouts}, spec))
        stats["save-load"] += 1

    def run(self):
        """[(spec, message)] for every saved program the fresh process disagrees on."""
        if not self.cases:
            return []
        lst = os.path.join(self.dir, "cases.json")
        with open(lst, "w") as fh:
            json.dump([c for c, _ in self.cases], fh)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        src = LOADER.replace("out = []\nfor case", "\n".join(
            HELPER_SRC[n] for n in ("strided", "transposed")) + "\nout = []\nfor case", 1)
        p = subprocess.run([sys.executable, "-c", src, lst, json.dumps(LAYOUTS)],
                           capture_output=True, text=True,
                           env=env, cwd=self.dir)
        self.cases, cases = [], self.cases
        if p.returncode:
            return [(cases[0][1], f"loader process failed: {p.stderr.strip().splitlines()[-1]}")]
        res = json.loads(p.stdout.strip().splitlines()[-1])
        return [(spec, msg) for (_, spec), msg in zip(cases, res) if msg]


def outputs_and_a_gradient(spec, check):
    """spec built: (tensors, input ids, its outputs plus the gradient of a random
    contraction of them with respect to its first float input, when it has one)."""
    graph, ts, ins = guarded(check, "build", lambda: build(spec))
    outs = [ts[i] for i in spec.outputs]
    wrt = float_wrt(spec)[:1]
    if wrt:
        R = cotangents(spec, evaluate(spec, {i: draw_leaf(spec, i, 0) for i in spec.leaves()}))
        if R:
            with graph:
                cost = cost_of(ts, R, graph)
                g = documented(check, "fc.grad", lambda: fc.grad(cost, ts[wrt[0]]))
            outs += [g] if g is not None else []
    return ts, ins, outs


def check_graph_json(spec, stats):
    """The graph (with a gradient, so backward nodes too) saved as graph JSON and loaded back
    computes bit for bit what the original does, at O0 and O2, on draws A, B, A."""
    from flowc.io import graph_json
    check = "graph-json"
    if any(spec.nodes[i].op == "custom_vjp" for i in spec.needed()):
        return   # documented: a custom_vjp's Python rule is not saved as JSON
    ts, ins, outs = outputs_and_a_gradient(spec, check)
    text = guarded(check, "save", lambda: graph_json.dumps(outs))
    G2, outs2, _ = guarded(check, "load", lambda: graph_json.loads(text))
    named = {d.get("name"): n for n, d in G2.nx.nodes(data=True) if d["op"] == "input"}
    ins2 = [G2.tensor(named[f"x{i}"]) for i in ins]
    argsets = [call_args(spec, ins, k) for k in (0, 1, 0)]
    for level in ("O0", "O2"):
        f1 = guarded(check, f"{level} compile", lambda: fc.function(
            [ts[i] for i in ins], outs, optimize=level, single_output=False))
        f2 = guarded(check, f"{level} compile of the loaded graph", lambda: fc.function(
            ins2, outs2, optimize=level, single_output=False))
        for c, args in enumerate(argsets):
            a = guarded(check, f"{level} call {c + 1}", lambda: f1(*args))
            b = guarded(check, f"{level} call {c + 1} of the loaded graph", lambda: f2(*args))
            for j, (x, y) in enumerate(zip(a, b)):
                if not identical(x, y):
                    raise Finding(check, f"{level} call {c + 1}, output {j}: the loaded graph "
                                         f"gives other values: {difference(x, y)}")
    stats["graph-json"] += 1


FAKE_GPU = {"p": 0.0, "cp": None}  # --fake-gpu: share of graphs, and the installed fake


def install_fake_gpu():
    """Put tests/fake_cupy.py (CuPy's API over NumPy, strict as CuPy; generated kernels run
    in the host emulator) in place of `import cupy` for the rest of the run, or say why not."""
    sys.path.insert(0, ROOT)
    from tests import fake_cupy
    from tests import gpu_emulator as emu
    if not emu.available():
        return "no C++ compiler (g++) for the host emulator"
    import pytest
    FAKE_GPU["cp"] = fake_cupy.install(pytest.MonkeyPatch())
    return None


def check_fake_gpu(spec, stats):
    """The graph and a gradient compiled at O2, its Program linked for the (fake) GPU:
    values equal the CPU's within the dtype's tolerance (the GPU's reductions sum in
    another order) on draws A, B, A; the generated kernels, cuBLAS calls and the GPU's
    conv and pooling paths against the NumPy runtime."""
    import flowc_runtime as runtime
    check = "fake-gpu"
    ts, ins, outs = outputs_and_a_gradient(spec, check)
    f = guarded(check, "O2 compile", lambda: fc.function(
        [ts[i] for i in ins], outs, single_output=False))
    from flowc_runtime.storage import Cell
    # Cells of its own with the parameters' first values (a random stream's counter, too).
    cells = [Cell(np.array(f.program.values[f"param{i}"]))
             for i in range(len(f.program.params))]
    gpu = guarded(check, "link for the GPU", lambda: runtime.link(
        f.program, device="gpu", cells=cells, single=False))
    for c, k in enumerate((0, 1, 0)):
        args = call_args(spec, ins, k)
        want = guarded(check, f"CPU call {c + 1}", lambda: f(*args))
        got = guarded(check, f"GPU call {c + 1}", lambda: gpu(*args))
        for j, (x, y) in enumerate(zip(got, want)):
            x = x.get() if hasattr(x, "get") else np.asarray(x)
            m = mismatch(x, np.asarray(y))
            if m is not None:
                raise Finding(check, f"call {c + 1}, output {j}: the GPU gives {m}")
    stats["fake-gpu"] += 1


# -- one graph, all checks ------------------------------------------------------------------------
CHECKS = {"forward": check_forward, "grad": check_grads, "training": check_training,
          "grad1": lambda spec, stats: check_grads(spec, stats, second=False),
          "graph-json": check_graph_json, "fake-gpu": check_fake_gpu}


def run_check(name, spec, stats):
    """The message of the Finding that check `name` raises on spec, or None."""
    try:
        CHECKS[name](spec, stats)
    except Finding as e:
        return e
    except RecursionError:
        return Finding(name, "RecursionError in the fuzzer's own reference")
    return None


def kind_of(f):
    """The grouping key of a finding: check plus the message without numbers."""
    import re
    m = re.sub(r"-?\d[\d.e+-]*", "#", f.msg.split(" e.g.")[0])
    m = re.sub(r"\w+\.py:#", "", m)
    return f"{f.check}: {m[:110]}"


def known_class(f, spec):
    """The known bug class (KNOWN) a finding most likely belongs to, or "" (a heuristic)."""
    m, ops = f.msg, {spec.nodes[i].op for i in spec.needed()}
    big = any(np.prod(spec.nodes[i].shape, dtype=np.int64) >= 1 << 17 for i in spec.needed())
    if "got bool" in m or ({"eq_operator", "ne_operator"} & ops and "shape" in m):
        return "EQ"
    if "fused type" in m:
        return "C1"
    if "RecursionError" in m:
        return "C2"
    if "broadcast_like" in m:
        return "C3"
    if f.check in ("hessian", "jacobian") and any(0 in spec.nodes[i].shape for i in spec.needed()):
        return "C4"
    if f.check == "consts-as-inputs":
        return "B3"
    if f.check == "training" and big:
        return "B2"
    if "slightly" in m and any(spec.nodes[i].layout in "FT" for i in spec.leaves()):
        return "B4"
    # B1 shows from the 2nd call on: call 3 != call 1, draw B (call 2) only, training steps 2-3
    if ("call 3" in m or "call 1's output" in m or "draw B" in m
            or (f.check == "training" and "step 1," not in m)):
        return "B1"
    return ""


# -- shrinking -----------------------------------------------------------------------------------------
def cut(spec, i, refs):
    """Node i replaced by an input leaf of its shape, dtype and value range."""
    n = spec.nodes[i]
    v = refs.get(i)
    dt = n.dtype
    if dt == "bool":
        dom = "rng.random({shape}) < 0.5"
    elif np.dtype(dt).kind in "iu":
        lo, hi = (int(v.min()), int(v.max())) if v is not None and v.size else (0, 1)
        dom = f"rng.integers({lo}, {hi + 1}, {{shape}})"
    else:
        fin = v[np.isfinite(v)] if v is not None else np.zeros(0)
        lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (-2.0, 2.0)
        dom = f"rng.uniform({lo:.3g}, {hi:.3g}, {{shape}})" if hi > lo else f"np.full({{shape}}, {lo!r})"
    nodes = list(spec.nodes)
    nodes[i] = Node("input", shape=tuple(n.shape), decl=tuple(n.shape), dtype=dt, domain=dom,
                    diff=is_float(dt), op="input")
    return replace(spec, nodes=nodes)


def shrink(spec, check, key, budget=150):
    """A smaller spec on which `check` still fails with the same kind of finding."""
    stats = Counter()

    def fails(s):
        nonlocal budget
        budget -= 1
        try:
            e = run_check(check, s, stats)
        except Exception:
            return False
        return e is not None and kind_of(e) == key
    progress = True
    while progress and budget > 0:
        progress = False
        if len(spec.outputs) > 1:
            for o in spec.outputs:
                s = replace(spec, outputs=[o])
                if fails(s):
                    spec, progress = s, True
                    break
        refs = evaluate(spec, {i: draw_leaf(spec, i, 0) for i in spec.leaves()})
        for i in spec.needed():   # cut the earliest ops first: they remove the most
            if spec.nodes[i].kind == "step" and i not in spec.outputs and budget > 0:
                s = cut(spec, i, refs)
                if fails(s):
                    spec, progress = s, True
                    refs = evaluate(spec, {j: draw_leaf(spec, j, 0) for j in spec.leaves()})
        for i in spec.leaves():
            n = spec.nodes[i]
            for ch in ({"layout": "C"}, {"decl": tuple(n.shape)}):
                if budget > 0 and any(getattr(n, k) != v for k, v in ch.items()):
                    nodes = list(spec.nodes)
                    nodes[i] = replace(n, **ch)
                    s = replace(spec, nodes=nodes)
                    if fails(s):
                        spec, progress, n = s, True, nodes[i]
    return spec


# -- the repro snippet --------------------------------------------------------------------------------
def repro(spec, check):
    """A standalone Python snippet (flowc + NumPy only) that shows the finding."""
    lines = ["import numpy as np", "import flowc as fc"]
    used = " ".join(spec.nodes[i].ref + spec.nodes[i].domain + LAYOUTS[spec.nodes[i].layout]
                    for i in spec.needed())
    for name in ("sig", "lse", "softmax", "strided", "transposed", "wellcond", "splitmix", "at_set",
                 "at_add", "scan_ref", "rnn_ref", "cond_ref", "fori_ref", "conv_np", "pool_np",
                 "convT_np", "layer_norm_np"):
        if name + "(" in used:
            lines.append(HELPER_SRC[name] + "\n")
    if "splitmix" in used:
        lines.append("from flowc.nn.random import uniform_like")
    lines.append("")
    lines.append("def draw(i, k, f):  # leaf i's array for draw k")
    lines.append(f"    return f(np.random.default_rng([{spec.seed}, i, k]))")
    lines.append("")
    ins = []
    needed = spec.needed()
    for i in needed:
        n = spec.nodes[i]
        if n.op == "chain" and n.args[0] == i - 1 and spec.nodes[i - 1].op == "chain":
            continue   # printed as a loop by the chain's first node
        if n.op == "chain":
            j = i
            while j + 1 in needed and spec.nodes[j + 1].op == "chain" and spec.nodes[j + 1].args[0] == j:
                j += 1
            lines += [f"v{j} = v{n.args[0]}", f"for _ in range({j - i + 1}):",
                      f"    v{j} = {n.code.format(f'v{j}')}"]
            continue
        if n.kind == "step":
            lines.append(f"v{i} = {n.code.format(*[f'v{a}' for a in n.args])}")
            continue
        dom = n.domain.format(shape=n.shape)
        val = f"draw({i}, {{k}}, lambda rng: {dom}).astype('{n.dtype}').reshape({n.shape})"
        if n.kind == "const":
            lines.append(f"v{i} = fc.constant({val.format(k=99)})")
        elif n.kind == "param":
            lines.append(f"v{i} = fc.param('p{i}', {val.format(k=98)})")
        else:
            lines.append(f"v{i} = fc.input('x{i}', {n.decl}, dtype='{n.dtype}')")
            ins.append((i, LAYOUTS[n.layout].format(val)))
    lines.append(f"ins = [{', '.join(f'v{i}' for i, _ in ins)}]")
    lines.append("A, B = ([" + ", ".join(v.replace("{k}", "k") for _, v in ins) + "] for k in (0, 1))")
    outs = ", ".join(f"v{o}" for o in spec.outputs)
    if check in ("forward", "consts-as-inputs"):
        lines.append(f"outs = [{outs}]")
        lines += ["refs = {}", "for k, args in enumerate((A, B)):",
                  "    r = dict(zip([" + ", ".join(str(i) for i, _ in ins) + "], args))"]
        for i in spec.needed():
            n = spec.nodes[i]
            if n.kind == "const":
                lines.append(f"    r[{i}] = v{i}.graph.nx.nodes[v{i}.id]['value']")
            elif n.kind == "step":
                lines.append(f"    r[{i}] = np.asarray({n.ref.format(*[f'r[{a}]' for a in n.args])})")
        lines.append(f"    refs[k] = [{', '.join(f'r[{o}]' for o in spec.outputs)}]")
        lines += ["for level in ('O0', 'O1', 'O2'):",
                  "    f = fc.function(ins, outs, optimize=level, single_output=False)",
                  "    for c, k in enumerate((0, 1, 0)):",
                  "        got = f(*(A, B)[k])",
                  "        for j, (g, w) in enumerate(zip(got, refs[k])):",
                  "            ok = g.shape == w.shape and np.allclose(g, w, rtol=1e-6, atol=1e-6, equal_nan=True)",
                  "            print(level, 'call', c + 1, 'output', j, 'OK' if ok else f'MISMATCH {g!r} vs {w!r}')"]
        if check == "consts-as-inputs":
            lines.insert(2, "# the finding needs the constants given as inputs too: "
                            "compare with fc.input + the same values")
        return "\n".join(lines)
    lines.append(f"outs = [{outs}]")
    lines += ["f0 = fc.function(ins, outs, optimize='O0', single_output=False)",
              "rng = np.random.default_rng(7)",
              "R = [rng.uniform(0.5, 1.5, np.shape(o)) * rng.choice([-1.0, 1.0], np.shape(o)) "
              "for o in f0(*A)]",
              "cost = sum(fc.sum(fc.cast(o, 'float64') * fc.constant(r)) for o, r in zip(outs, R))",
              "wrt = [x for x in ins if x.dtype.startswith('float')]"]
    if check == "training":
        params = train_params(spec)
        names = ", ".join(f"v{i}" for i in params)
        lines += [f"# the check: inputs {names} become params (fc.param('p', value of draw A)),",
                  f"# updated by p - {spec.lr} * grad(cost, p); 3 steps (draws A, B, A) at O0 and O2",
                  "# give different costs/outputs/params; see check_training in tools/fuzz.py"]
    targets = {"grad": "gs = fc.grad(cost, wrt)",
               "grad-vs-fd": "gs = fc.grad(cost, wrt)  # compare <gs, v> with central differences",
               "jvp-vs-vjp": "gs = fc.jvp(outs, wrt, [fc.ones_like(x) for x in wrt])",
               "grad-of-grad": "gs = fc.grad(sum(fc.sum(g * 0.5) for g in fc.grad(cost, wrt)), wrt)",
               "hessian": "gs = [fc.hessian(cost, wrt[0]), fc.hvp(cost, wrt[0], fc.ones_like(wrt[0]))]",
               "jacobian": "gs = [fc.jacobian(outs[0], wrt[0]), fc.jvp(outs[0], wrt[0], fc.ones_like(wrt[0]))]",
               "training": "gs = fc.grad(cost, wrt)",
               "graph-json": "gs = outs + fc.grad(cost, wrt[:1])  # the check: "
                             "flowc.io.graph_json.loads(graph_json.dumps(gs)) must compute "
                             "the same (check_graph_json in tools/fuzz.py)",
               "fake-gpu": "gs = outs + fc.grad(cost, wrt[:1])  # the check: "
                           "flowc_runtime.link(f.program, device='gpu') on tests/fake_cupy.py "
                           "must compute what f does (check_fake_gpu in tools/fuzz.py)"}
    lines += [targets.get(check, "gs = outs"),
              "res = {}", "for level in ('O0', 'O1', 'O2'):",
              "    f = fc.function(ins, gs, optimize=level, single_output=False)",
              "    first = f(*A)",
              "    res[level] = [[np.array(r, copy=True) for r in first], f(*B), f(*A)]",
              "    for c in range(3):",
              "        same = all(np.allclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True)",
              "                   for a, b in zip(res[level][c], res['O0'][c]))",
              "        print(level, 'call', c + 1, 'matches O0' if same else 'DIFFERS from O0')",
              "    print(level, 'call 3 == call 1:', all(np.array_equal(a, b, equal_nan=True)",
              "                                       for a, b in zip(res[level][2], res[level][0])),",
              "          '| call 1 arrays unchanged:', all(np.array_equal(a, b, equal_nan=True)",
              "                                           for a, b in zip(first, res[level][0])))"]
    return "\n".join(lines)


# -- the driver -----------------------------------------------------------------------------------------
def fuzz_one(spec, stats, saver=None, save_p=0.1, train_p=0.3, second_p=1.0, json_p=0.3):
    """Run every check on one spec; a list of Findings (at most one per check)."""
    found = []
    stats["graphs"] += 1
    stats["large graphs"] += spec.large
    stats["nodes"] += spec.size()
    for i in spec.needed():
        stats["gen:" + spec.nodes[i].op] += 1
    r = np.random.default_rng([spec.seed, 3]).random(3)
    names = ["forward", "grad" if r[2] < second_p else "grad1"]
    # large graphs train more often: params across the loop-group threshold
    train = r[0] < (train_p if not spec.large else max(train_p, 0.6))
    if "B2" in spec.skip and any(spec.nodes[i].shape and np.prod(spec.nodes[i].shape) >= 1 << 17
                                 for i in train_params(spec)):
        train = False
    names += ["training"] if train and spec.size() <= LONG else []
    # ~3 in 10 graphs go through graph JSON (flowc/io/graph_json.py) and back
    names += ["graph-json"] if np.random.default_rng([spec.seed, 11]).random() < json_p else []
    if FAKE_GPU["cp"] is not None and np.random.default_rng([spec.seed, 13]).random() < \
            FAKE_GPU["p"]:
        names.append("fake-gpu")
    for name in names:
        e = run_check(name, spec, stats)
        if e is not None:
            found.append(e)
            if name == "forward":
                break
    if saver is not None and not found and r[1] < save_p:
        try:
            saver.add(spec, stats)
        except Finding as e:
            found.append(e)
    return found


def fuzz(seed=0, graphs=None, minutes=None, large=0.05, skip=frozenset(), verbose=False,
         shrink_budget=150, save_p=0.1, train_p=0.3, second_p=1.0, out=print, cover=False):
    """Run the fuzzer; returns (stats, {kind: [(finding, spec)]}) and prints a summary.
    cover: after `graphs`, go on (up to twice as many) until every op has been compiled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # NumPy's overflow / empty-slice warnings are expected
        return _fuzz(seed, graphs, minutes, large, skip, verbose, shrink_budget, save_p, train_p,
                     second_p, out, cover)


def _trim():
    """Give freed heap back to the system (glibc): the many mid-sized arrays of large graphs
    fragment the heap, and a long run's resident size grew by ~100 MB per 250 graphs."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _fuzz(seed, graphs, minutes, large, skip, verbose, shrink_budget, save_p, train_p, second_p,
          out, cover=False):
    stats = Counter()
    findings = defaultdict(list)
    saver = SaveLoad()
    t0 = time.time()
    n = 0
    master = np.random.default_rng(seed)
    while True:
        if graphs is not None and n >= graphs and not (
                cover and n < 2 * graphs and set(fc.OPS) - {k[3:] for k in stats if k[:3] == "op:"}):
            break
        if minutes is not None and time.time() - t0 > 60 * minutes:
            break
        gseed = int(master.integers(2 ** 31))
        big = bool(master.random() < large)
        n += 1
        try:
            spec = generate(gseed, large=big, skip=skip)
        except Exception:
            stats["generator errors"] += 1
            if verbose:
                traceback.print_exc()
            continue
        for e in fuzz_one(spec, stats, saver, save_p, train_p, second_p):
            if known_class(e, spec) in skip:
                stats["skipped (known)"] += 1
                continue
            findings[kind_of(e)].append((e, spec))
        if big:
            gc.collect()   # compiled functions hold arenas in reference cycles: free them now
            _trim()
        if len(saver.cases) >= 40:
            for s, msg in saver.run():
                f = Finding("save-load", msg)
                findings[kind_of(f)].append((f, s))
    for s, msg in saver.run():
        f = Finding("save-load", msg)
        findings[kind_of(f)].append((f, s))
    stats["seconds"] = round(time.time() - t0, 1)
    report(stats, findings, shrink_budget, verbose, out)
    return stats, findings


def report(stats, findings, shrink_budget, verbose, out):
    """Counts by check, coverage, and findings grouped by kind with a shrunk repro each."""
    keys = ["graphs", "large graphs", "graphs-checked", "calls", "grads", "grad-vs-fd",
            "jvp-vs-vjp", "grad-of-grad", "hessian", "jacobian", "training", "save-load", "graph-json",
            "consts-as-inputs", "fake-gpu",
            "generator errors", "skipped (known)"]
    rate = stats["graphs"] / max(stats["seconds"], 1e-9) * 60
    out(f"fuzz: {stats['graphs']} graphs in {stats['seconds']} s ({rate:.0f} graphs/min)")
    for k in keys:
        out(f"  {k:<18} {stats[k]}")
    hit = {k[3:]: v for k, v in stats.items() if k.startswith("op:")}
    missing = sorted(set(fc.OPS) - set(hit))
    if verbose:
        out("coverage (op: nodes seen in compiled graphs):")
        for k in sorted(hit):
            out(f"  {k:<22} {hit[k]}")
    out(f"ops of fc.OPS never compiled: {', '.join(missing) or 'none'}")
    out(f"findings: {sum(len(v) for v in findings.values())} in {len(findings)} kinds")
    for key, items in sorted(findings.items(), key=lambda kv: -len(kv[1])):
        f, spec = min(items, key=lambda fs: fs[1].size())
        out("")
        label = known_class(f, spec)
        out(f"== {len(items)} x {key}" + (f"   [likely {label}: {KNOWN[label]}]" if label else ""))
        out(f"   first: {f} (graph seed {spec.seed}{', large' if spec.large else ''})")
        check = f.check if f.check in ("forward", "training") else {"consts-as-inputs": "forward",
                                                    "grad-vs-fd": "grad", "jvp-vs-vjp": "grad",
                                                    "grad-of-grad": "grad", "hessian": "grad",
                                                    "jacobian": "grad",
                                                    "graph-json": "graph-json",
                                                    "fake-gpu": "fake-gpu"}.get(f.check)
        budget = shrink_budget if not spec.large else shrink_budget // 5   # large: slow tries
        small = shrink(spec, check, kind_of(f), budget) if check and spec.size() <= LONG else spec
        out(f"   minimal repro ({small.size()} nodes):")
        out("\n".join("   | " + line for line in repro(small, f.check).splitlines()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--graphs", type=int, default=None, help="stop after N graphs")
    p.add_argument("--minutes", type=float, default=None, help="stop after M minutes")
    p.add_argument("--large", type=float, default=0.05, help="share of large graphs (0-1)")
    p.add_argument("--skip", default="", help="known bug classes not to generate, e.g. B1,B2 "
                   f"(development aid; known: {', '.join(KNOWN)})")
    p.add_argument("--save", type=float, default=0.1, help="share of graphs saved and reloaded")
    p.add_argument("--train", type=float, default=0.3, help="share of graphs trained")
    p.add_argument("--second", type=float, default=1.0,
                   help="share of graphs checked to second order (grad of grad, hessian)")
    p.add_argument("--verbose", action="store_true", help="print the op coverage table")
    p.add_argument("--cover", action="store_true",
                   help="after --graphs, go on (up to twice as many) until every op is compiled")
    p.add_argument("--fake-gpu", type=float, default=0.0,
                   help="share of graphs also run on the fake GPU (tests/fake_cupy.py) and "
                        "checked against the CPU")
    a = p.parse_args(argv)
    if a.fake_gpu > 0:
        why = install_fake_gpu()
        if why:
            p.error(f"--fake-gpu: {why}")
        FAKE_GPU["p"] = a.fake_gpu
    if a.graphs is None and a.minutes is None:
        a.graphs = 200
    skip = frozenset(s.strip().upper() for s in a.skip.split(",") if s.strip())
    bad = skip - set(KNOWN)
    if bad:
        p.error(f"--skip: unknown bug class {sorted(bad)}; known: {', '.join(KNOWN)}")
    _, findings = fuzz(a.seed, a.graphs, a.minutes, a.large, skip, a.verbose, save_p=a.save,
                       train_p=a.train, second_p=a.second, cover=a.cover)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
