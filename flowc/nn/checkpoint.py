"""Checkpoints: named arrays plus a JSON record in one .npz file (no pickle), written
atomically: the data goes to a temporary file beside the target, is flushed to disk, and
only then renamed over it, so a crash mid-save leaves the old checkpoint intact."""
from __future__ import annotations

import json
import os
import uuid
import zipfile

import numpy as np

from ..ir.errors import FlowcError

META = "__flowc_meta__"
FORMAT = "flowc-checkpoint"
VERSION = 1


class CheckpointError(FlowcError):
    """A checkpoint file is missing, damaged, or does not fit the model."""


def save(path, arrays, meta=None):
    """Write `arrays` (name -> ndarray) and `meta` (JSON-able dict) to `path` atomically."""
    path = os.fspath(path)
    if META in arrays:
        raise CheckpointError(f"{META!r} is reserved in checkpoints")
    record = json.dumps({"format": FORMAT, "version": VERSION, **(meta or {})})
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[META] = np.array(record)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}."
                               f"{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            _write_npz(f, payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _write_npz(f, payload):
    # Separate so tests can make the writer fail half-way. Written as np.savez does, but by
    # hand: np.savez(f, **payload) breaks on a parameter named "file" or "allow_pickle".
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, value in payload.items():
            with z.open(name + ".npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(value), allow_pickle=False)


def load(path):
    """(arrays, meta) from a checkpoint written by `save`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") \
            from None
    if META not in arrays:
        raise CheckpointError(f"{path}: not a flowc checkpoint (no {META} record)")
    meta = json.loads(str(arrays.pop(META)))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: expected {FORMAT} version {VERSION}, got "
                              f"{meta.get('format')} version {meta.get('version')}")
    return arrays, meta


def param_key(p) -> str:
    """The name a parameter is stored under."""
    return p.name or f"%{p.id}"


def save_params(path, params, meta=None):
    """Save the current values of `params` (flowc param tensors) by name."""
    arrays = {}
    for p in params:
        k = param_key(p)
        if k in arrays:
            raise CheckpointError(f"two parameters are named {k!r}; give them distinct names "
                                  "to save them")
        arrays[k] = p.get_value()
    return save(path, arrays, meta)


def load_params(path, params):
    """Set `params` from a checkpoint; every one must be there with its shape and dtype.
    Nothing is changed unless all of them fit. Returns the checkpoint's meta record."""
    arrays, meta = load(path)
    want = {param_key(p): p for p in params}
    missing = sorted(set(want) - set(arrays))
    extra = sorted(set(arrays) - set(want))
    if missing or extra:
        raise CheckpointError(f"{path}: the parameters do not match the model: "
                              + (f"missing {', '.join(missing)}" if missing else "")
                              + ("; " if missing and extra else "")
                              + (f"unexpected {', '.join(extra)}" if extra else ""))
    for k, p in want.items():
        a = arrays[k]
        if tuple(a.shape) != tuple(p.shape) or a.dtype.name != p.dtype:
            raise CheckpointError(f"{path}: parameter {k!r}: expected {p.dtype}"
                                  f"{list(p.shape)}, got {a.dtype.name}{list(a.shape)}")
    for k, p in want.items():
        p.set_value(arrays[k])
    return meta
