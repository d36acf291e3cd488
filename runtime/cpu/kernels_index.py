"""Integer-array indexing kernels (NumPy): gather, scatter-add and scatter-set, with every
index array checked against its axis first, so an out-of-bounds index is an IndexError that
names the index and the size (the GPU kernels share these checks: CuPy would wrap)."""
from __future__ import annotations

import numpy as np


def index_tuple(index, arrays, shape, xp=np):
    """The NumPy index of `index` items, bounds-checked: ("array",) takes the next operand,
    and so does each "arg" slice bound (an integer scalar read here)."""
    n_real = sum(1 for it in index if it[0] in ("int", "slice", "array"))
    parts, dim, k = [], 0, 0
    for it in index:
        kind = it[0]
        if kind == "slice":
            bounds = []
            for b in it[1:]:
                if b == "arg":
                    b = int(arrays[k])  # on the GPU: one small device-to-host copy
                    k += 1
                bounds.append(b)
            if bounds[2] == 0:
                raise ValueError("slice step cannot be zero")
            parts.append(slice(*bounds))
        elif kind == "int":
            parts.append(it[1])
        elif kind == "newaxis":
            parts.append(None)
            continue
        elif kind == "ellipsis":
            parts.append(Ellipsis)
            dim += len(shape) - n_real
            continue
        else:
            a = arrays[k]
            k += 1
            check_bounds(a, shape[dim], dim, xp)
            parts.append(a)
        dim += 1
    return tuple(parts)


def check_bounds(a, size, axis, xp=np):
    """IndexError unless every entry of the integer array a lies in [-size, size)."""
    if a.size == 0:
        return
    lo, hi = int(xp.min(a)), int(xp.max(a))  # on the GPU: one small device-to-host copy
    if hi >= size or lo < -size:
        bad = hi if hi >= size else lo
        raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {size}")


def advindex(x, *arrays, index):
    return x[index_tuple(index, arrays, x.shape)]


def updated_copy(x, out, xp=np):
    """The array an index update writes into: x itself when it is `out`, else a copy."""
    if out is None:
        return x.copy()
    if out is not x:
        xp.copyto(out, x)
    return out


def index_add(x, v, *arrays, index, out=None):
    out = updated_copy(x, out)
    np.add.at(out, index_tuple(index, arrays, x.shape), v)
    return out


def index_set(x, v, *arrays, index, out=None):
    out = updated_copy(x, out)
    out[index_tuple(index, arrays, x.shape)] = v
    return out


OUT = {"index_add": index_add, "index_set": index_set}
VIEW = {"advindex": advindex}


def argsort(x, axis=-1):
    # Stable, so equal entries keep their order (the GPU's sort is stable too).
    return np.argsort(x, axis=axis, kind="stable").astype(np.int64, copy=False)


def specify_shape(x, shape):
    if len(shape) != x.ndim or any(d is not None and d != e for d, e in zip(shape, x.shape)):
        want = "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
        raise ValueError(f"specify_shape: expected shape {want}, got {tuple(x.shape)}")
    return x


VIEW.update({"argsort": argsort, "specify_shape": specify_shape})
