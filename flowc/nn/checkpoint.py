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
    _refuse_program_values(path)
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


def _refuse_program_values(path):
    """Refuse to write a checkpoint over the values file of a saved Program (f.save("model")
    writes model.json and model.npz): the Program would no longer load."""
    if not path.endswith(".npz") or not os.path.isfile(path):
        return
    program = path[:-4] + ".json"
    try:
        with open(program, encoding="utf-8") as f:
            is_program = isinstance(json.load(f).get("instrs"), list)
    except (OSError, ValueError, AttributeError):
        return
    if is_program:
        raise CheckpointError(f"{path} holds the values of the saved Program {program} "
                              f"(f.save); a checkpoint there would break it: save the "
                              f"checkpoint under another name")


def _write_npz(f, payload):
    # Separate so tests can make the writer fail half-way. Written as np.savez does, but by
    # hand: np.savez(f, **payload) breaks on a parameter named "file" or "allow_pickle".
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, value in payload.items():
            with z.open(name + ".npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(value), allow_pickle=False)


def load(path):
    """(arrays, meta) from a checkpoint written by `save`; a CheckpointError naming the file
    if it is missing, damaged or not a flowc checkpoint."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    arrays = _read_npz(path)
    if META not in arrays:
        raise CheckpointError(f"{path}: not a flowc checkpoint (no {META} record)")
    meta = _meta(path, arrays.pop(META))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: expected {FORMAT} version {VERSION}, got "
                              f"{meta.get('format')} version {meta.get('version')}")
    return arrays, meta


def _damaged(path, why):
    return CheckpointError(f"{path}: not a readable checkpoint: the file is damaged ({why}); "
                           "save it again or use an earlier copy")


def _read_npz(path):
    """{name: array} of an .npz file, read entry by entry without ever unpickling: NumPy's own
    loader answers a damaged file with advice about pickled data, which is never right here."""
    try:
        with zipfile.ZipFile(path) as z:
            arrays = {}
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    raise _damaged(path, f"unexpected entry {info.filename!r}")
                with z.open(info) as f:
                    arrays[info.filename[:-4]] = _read_entry(path, info.filename, f)
            return arrays
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as e:
        if os.path.getsize(path) == 0:
            raise _damaged(path, "the file is empty") from None
        raise _damaged(path, _zip_problem(e)) from None


def _zip_problem(e):
    if isinstance(e, zipfile.BadZipFile):
        return f"not a complete .npz archive: {e}"
    return f"{type(e).__name__}: {e}"


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}


def _read_entry(path, name, f):
    try:
        version = np.lib.format.read_magic(f)
        read_header = _HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f".npy format version {version} is not one flowc writes")
        shape, fortran, dtype = read_header(f)
    except ValueError as e:
        raise _damaged(path, f"entry {name!r} is not a NumPy array: {e}") from None
    if dtype.hasobject:  # checked before reading: NumPy's refusal talks about pickles
        raise _damaged(path, f"entry {name!r} holds Python objects; checkpoints hold only "
                       "numeric arrays and one text record")
    count = int(np.prod(shape, dtype=np.int64))
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise _damaged(path, f"entry {name!r} is cut short: {len(data)} of "
                       f"{count * dtype.itemsize} bytes")
    if f.read():  # reading to the end also checks the entry's CRC
        raise _damaged(path, f"entry {name!r} has bytes after its data")
    a = np.frombuffer(data, dtype=dtype, count=count)
    return (a.reshape(shape[::-1]).T if fortran else a.reshape(shape)).copy()


def _meta(path, record):
    """The checkpoint's JSON record as a dict."""
    if record.shape != () or record.dtype.kind not in "SU":
        raise _damaged(path, f"its {META} record is {record.dtype.name}{list(record.shape)}, "
                       "not one text string")
    try:
        meta = json.loads(str(record))
    except ValueError as e:
        raise _damaged(path, f"its {META} record is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise _damaged(path, f"its {META} record is a JSON {type(meta).__name__}, not an "
                       "object")
    return meta


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


def read_params(path, params):
    """({key: array}, meta) from a checkpoint, checked against `params`: every one must be
    there with its shape and dtype. Changes nothing."""
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
        if tuple(a.shape) != tuple(p.type.shape) or a.dtype.name != p.dtype:
            raise CheckpointError(f"{path}: parameter {k!r}: expected {p.dtype}"
                                  f"{list(p.type.shape)}, got {a.dtype.name}{list(a.shape)}")
    return arrays, meta


def set_params(params, arrays):
    """Set `params` from arrays that read_params checked."""
    for p in params:
        p.set_value(arrays[param_key(p)])


def load_params(path, params):
    """Set `params` from a checkpoint; every one must be there with its shape and dtype.
    Nothing is changed unless all of them fit. Returns the checkpoint's meta record."""
    arrays, meta = read_params(path, params)
    set_params(params, arrays)
    return meta
