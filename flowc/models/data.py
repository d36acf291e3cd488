"""Data sets for `flowc train`: scikit-learn's bundled digits and breast-cancer sets (and
`digits28`, the digits upsampled bilinearly to 28x28 for LeNet-sized models), or a CSV
file; a seeded (stratified, for class labels) held-out split; targets shaped to fit the
model's target input (class labels, or one-hot rows)."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from ..ir.errors import FlowcError

BUILTIN = ("digits", "digits28", "breast_cancer")


class DataError(FlowcError):
    """A data set cannot be read or does not fit the model."""


@dataclass
class Dataset:
    """Features and targets, split into a training part and a held-out part."""

    name: str
    Xtr: np.ndarray
    ytr: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    note: str = ""  # something the user should know about the features (printed by the CLI)


def load(source, seed=0, test_size=0.25, target=None, standardize=None) -> Dataset:
    """`digits`, `breast_cancer` or a CSV path; split with `seed`; see the module doc."""
    if source in BUILTIN:
        X, y = _sklearn(source)
        if standardize is None:
            standardize = source == "breast_cancer"
        if source in ("digits", "digits28"):
            X = X / 16.0  # pixel intensities 0..16
        if source == "digits28":
            X = upsample(X.reshape(-1, 8, 8), 28).reshape(len(X), -1)
    elif os.path.isfile(source) or source.endswith(".csv"):
        X, y = read_csv(source, target)
    else:
        raise DataError(f"--data: expected {' or '.join(BUILTIN)} or a CSV file, got {source!r}"
                        " (no such file)")
    tr, te = split(y, seed, test_size)
    Xtr, Xte = X[tr], X[te]
    note = "" if standardize else scale_note(Xtr, source)
    if standardize:
        mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
        sd[sd == 0] = 1.0
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    return Dataset(source if source in BUILTIN else os.path.basename(source),
                   Xtr, y[tr], Xte, y[te], note)


SCALE_RATIO = 100.0  # feature scales this far apart stall gradient descent at one lr


def scale_note(X, source):
    """A warning when the features' scales differ by orders of magnitude (the bundled
    breast-cancer set is standardized for that reason; a CSV copy of it is not), else ""."""
    if X.ndim != 2 or not X.size:
        return ""
    sd = X.std(axis=0)
    sd = sd[sd > 0]
    if sd.size < 2 or sd.max() / sd.min() < SCALE_RATIO:
        return ""
    return (f"note: the features of {source} have scales from {sd.min():.3g} to {sd.max():.3g} "
            f"(standard deviations); gradient descent with one learning rate trains poorly on "
            f"that: pass --standardize to scale each feature to mean 0 and deviation 1 (the "
            f"bundled breast_cancer set is)")


def upsample(images, size):
    """(N, h, w) images resized bilinearly to (N, size, size), pixel centres aligned as in
    PyTorch's interpolate(align_corners=False): one (size, h) matrix per axis."""
    def weights(n):
        src = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        m = np.zeros((size, n))
        np.add.at(m, (np.arange(size), lo), 1 - (src - lo))
        np.add.at(m, (np.arange(size), hi), src - lo)
        return m
    return np.einsum("ih,nhw,jw->nij", weights(images.shape[1]), images, weights(images.shape[2]))


def _sklearn(name):
    try:
        from sklearn import datasets
    except ImportError:
        raise DataError(f"--data {name} needs scikit-learn (its bundled data sets): "
                        "pip install 'flowc[data]'") from None
    X, y = getattr(datasets, f"load_{'digits' if name == 'digits28' else name}")(
        return_X_y=True)
    return X.astype(np.float64), y


def read_csv(path, target=None):
    """(X, y) from a CSV file; a first row that is not all numbers is the header. The target
    column is `target` (a header name or a 0-based index), else the last one."""
    try:
        with open(path, newline="") as f:
            rows = [(i, r) for i, r in enumerate(csv.reader(f), 1) if any(c.strip() for c in r)]
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror})") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a CSV text file ({e})") from None
    if not rows:
        raise DataError(f"{path}: the file holds no rows")
    header = None
    if not all(_is_number(c) for c in rows[0][1]):
        header = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path}: the file holds a header but no data rows")
    width = len(header) if header else len(rows[0][1])
    if width < 2:
        raise DataError(f"{path}: expected at least two columns (features and a target), "
                        f"got {width}")
    col = _target_column(path, target, header, width)
    data = np.empty((len(rows), width))
    for r, (line, cells) in enumerate(rows):
        if len(cells) != width:
            raise DataError(f"{path}:{line}: expected {width} columns, got {len(cells)}")
        for j, c in enumerate(cells):
            try:
                data[r, j] = v = float(c)
            except ValueError:
                v = None
            if v is None or not np.isfinite(v):  # nan/inf would only stop training later
                name = f" ({header[j]!r})" if header else ""
                raise DataError(f"{path}:{line}: column {j + 1}{name}: expected a "
                                f"{'number' if v is None else 'finite number'}, got {c!r}")
    y = data[:, col]
    if np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return np.delete(data, col, axis=1), y


def _is_number(c):
    try:
        float(c)
        return True
    except ValueError:
        return False


def _target_column(path, target, header, width):
    if target is None:
        return width - 1
    if header and target in header:
        return header.index(target)
    try:
        i = int(target)
    except ValueError:
        raise DataError(f"{path}: --target {target!r} is not a column"
                        + (f"; columns: {', '.join(header)}" if header else "")) from None
    if not -width <= i < width:
        raise DataError(f"{path}: --target {i} is out of range for {width} columns")
    return i % width


def split(y, seed=0, test_size=0.25):
    """Seeded train/held-out indices; stratified when y holds class labels."""
    rng = np.random.default_rng(seed)
    n = len(y)
    if n < 2:
        raise DataError(f"need at least 2 samples to hold some out, got {n}")
    if np.issubdtype(y.dtype, np.integer):
        tr, te = [], []
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            k = int(round(len(idx) * test_size))
            te.append(idx[:k])
            tr.append(idx[k:])
        tr, te = np.sort(np.concatenate(tr)), np.sort(np.concatenate(te))
    else:
        idx = rng.permutation(n)
        k = max(1, int(round(n * test_size)))
        tr, te = np.sort(idx[k:]), np.sort(idx[:k])
    if len(te) == 0 or len(tr) == 0:
        part = "held-out" if len(te) == 0 else "training"
        raise DataError(f"the split left no samples for {part} ({n} samples, test size "
                        f"{test_size})")
    return tr, te


def fit_to(task, X, y, what="data"):
    """[X, y] converted to the task's input and target declarations, with clear errors."""
    x_in, y_in = task.inputs[0], task.inputs[1]
    want = tuple(x_in.type.shape[1:])
    if X.ndim != x_in.ndim or any(w is not None and w != g for w, g in zip(want, X.shape[1:])):
        shown = [d if d is not None else "?" for d in want]
        raise DataError(f"{what}: the features have shape {list(X.shape[1:])} per sample, but "
                        f"input {x_in.name!r} expects {shown}")
    X = X.astype(x_in.dtype)
    if y_in.ndim == 2 and y_in.type.shape[1] == 1 and y.ndim == 1:
        y = y.reshape(-1, 1).astype(y_in.dtype)
    elif y_in.ndim == 2 and y_in.type.shape[1] is not None and y.ndim == 1:
        k = y_in.type.shape[1]
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
            raise DataError(f"{what}: target {y_in.name!r} is one-hot with {k} classes, so the "
                            f"labels must be integers 0..{k - 1}; got values from {y.min()} to "
                            f"{y.max()}")
        y = np.eye(k, dtype=y_in.dtype)[y]
    elif y_in.ndim == y.ndim:
        if np.issubdtype(np.dtype(y_in.dtype), np.integer) and \
                not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{what}: target {y_in.name!r} takes integer class labels, got "
                            f"non-integer values")
        y = y.astype(y_in.dtype)
    else:
        raise DataError(f"{what}: the targets have {y.ndim} dimension(s), but input "
                        f"{y_in.name!r} is {y_in.type.short()}")
    return [X, y]


def random_batch(inputs, batch=8, seed=0, task=None):
    """Seeded stand-in data for `inputs` (unknown sizes = `batch`): normal features, and for
    a task's target, valid labels for its loss (class ids, one-hot rows or 0/1 values)."""
    rng = np.random.default_rng(seed)
    target = task.inputs[1] if task is not None and len(task.inputs) > 1 else None
    classes = None
    if task is not None and task.predict is not None and task.predict.ndim >= 1:
        classes = task.predict.type.shape[-1]
    out = []
    for t in inputs:
        shape = tuple(batch if d is None else d for d in t.type.shape)
        kind = np.dtype(t.dtype).kind
        if target is not None and t is target or (target is not None and t.id == target.id):
            if kind in "iu":
                arr = rng.integers(0, max(classes or 2, 2), size=shape)
            elif t.ndim >= 2 and t.type.shape[-1] not in (None, 1):
                arr = np.eye(t.type.shape[-1])[rng.integers(0, t.type.shape[-1], size=shape[:-1])]
            else:
                arr = rng.integers(0, 2, size=shape)
        elif kind in "iu":
            arr = rng.integers(0, 2, size=shape)
        elif kind == "b":
            arr = rng.random(shape) < 0.5
        else:
            arr = rng.standard_normal(shape)
        out.append(np.asarray(arr).astype(t.dtype))
    return out
