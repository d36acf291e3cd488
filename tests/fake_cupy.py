"""A CPU stand-in for CuPy, for tests on machines with no GPU (CI): it runs the whole GPU
backend (kernel table, executable, CUDA-graph replay) with NumPy arrays of their own type and
every RawKernel launch executed by the host emulator (tests/gpu_emulator.py), so the
generated CUDA and the glue around it are both exercised.

Stream capture is modelled as on a GPU: between begin_capture and end_capture, work that
writes existing arrays (kernel launches, copies, fills, functions given `out=`) is recorded,
not run; a function that returns a new array runs once to get its memory and records the
recomputation into that same memory; views record nothing. Graph.launch() replays the record
in order. Host copies (get/set) raise, as on a GPU. So a graph that reads or writes a stale
pointer gives wrong numbers here too.

Install with `install(monkeypatch)`; it also drops the runtime modules bound to a real CuPy.
"""
from __future__ import annotations

import sys
import types

import numpy as np

from tests import gpu_emulator as emu

_CAPTURE = []  # one list of recorded operations per capturing stream


def _check(what):
    if _CAPTURE:
        raise RuntimeError(f"fake CUDA: {what} is not permitted while a stream is capturing")


def _record(op):
    _CAPTURE[-1].append(op)


def _arrays(x):
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, (tuple, list)):
        return [a for v in x for a in _arrays(v)]
    if isinstance(x, dict):
        return [a for v in x.values() for a in _arrays(v)]
    return []


def _fresh(res, recompute, inputs):
    """While capturing: replay must recompute `res` into its own memory (unless a view)."""
    if not _CAPTURE:
        return res
    ins = _arrays(inputs)
    for i, r in enumerate(_arrays(res)):
        if not any(np.may_share_memory(r, a) for a in ins):
            _record(lambda r=r, i=i: np.copyto(r, _arrays(recompute())[i], casting="unsafe"))
    return res


class ndarray(np.ndarray):
    """A 'device' array: NumPy memory, its own type, CuPy's .get()/.set()/.data.ptr."""

    def get(self, stream=None):
        _check("a device-to-host copy")
        return np.array(self)

    def set(self, arr, stream=None):
        _check("a host-to-device copy")
        np.copyto(self, arr)

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])

    def fill(self, value):
        if _CAPTURE:
            return _record(lambda: np.ndarray.fill(self, value))
        super().fill(value)

    def copy(self, order="C"):
        f = lambda: np.ndarray.copy(self, order)  # noqa: E731
        return _fresh(f().view(ndarray), f, [self])

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        f = lambda: np.ndarray.astype(self, dtype, order, casting, subok, copy)  # noqa: E731
        return _fresh(_wrap(f()), f, [self])

    def __setitem__(self, key, value):
        if _CAPTURE:
            return _record(lambda: np.ndarray.__setitem__(self, key, value))
        super().__setitem__(key, value)


def _wrap(x):
    if isinstance(x, ndarray):
        return x
    if isinstance(x, np.ndarray):
        return x.view(ndarray)
    if isinstance(x, np.generic):
        return np.asarray(x).view(ndarray)
    if isinstance(x, (tuple, list)):
        vals = [_wrap(v) for v in x]
        return type(x)(*vals) if hasattr(x, "_fields") else type(x)(vals)
    return x


def _numpy_function(fn, name):
    def f(*args, **kw):
        out = kw.get("out")
        if _CAPTURE and isinstance(out, np.ndarray):  # writes into a fixed buffer: record it
            _record(lambda: fn(*args, **kw))
            return out
        return _fresh(_wrap(fn(*args, **kw)), lambda: fn(*args, **kw), [args, kw])
    f.__name__ = name
    return f


def asarray(x, dtype=None):
    if type(x) is ndarray and (dtype is None or np.dtype(dtype) == x.dtype):
        return x
    if type(x) is not ndarray:
        _check("a host-to-device copy")
    f = lambda: np.array(x, dtype=dtype, copy=True)  # noqa: E731  (a device copy never aliases)
    return _fresh(f().view(ndarray), f, [x])


def array(x, dtype=None, copy=True):
    if type(x) is not ndarray:
        _check("a host-to-device copy")
    f = lambda: np.array(x, dtype=dtype, copy=True)  # noqa: E731
    return _fresh(f().view(ndarray), f, [x])


def empty(shape, dtype=float, order="C"):
    return np.empty(shape, dtype=dtype, order=order).view(ndarray)  # allocation only


def empty_like(a, dtype=None):
    return np.empty_like(a, dtype=dtype).view(ndarray)


def copyto(dst, src, casting="same_kind", where=True):
    op = lambda: np.copyto(dst, src, casting=casting, where=where)  # noqa: E731
    _record(op) if _CAPTURE else op()


def is_available():
    return True


class RawKernel:
    """Compiles (for the host) and runs a generated kernel through the emulator."""

    def __init__(self, code, name, options=(), backend="nvrtc", **kw):
        self.kernel = emu.from_source(code, name)

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        args = tuple(args)
        op = lambda: emu.launch(self.kernel, grid, block, args)  # noqa: E731
        _record(op) if _CAPTURE else op()


class _Graph:
    def __init__(self, ops):
        self.ops = ops

    def launch(self, stream=None):
        _check("a graph launch")
        for op in self.ops:
            op()


class _Stream:
    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        _check("synchronize")

    def begin_capture(self, mode=None):
        _CAPTURE.append([])

    def end_capture(self):
        return _Graph(_CAPTURE.pop())


class _Device:
    def __init__(self, device=0):
        self.id = 0
        self.attributes = {"MultiProcessorCount": 1}  # small grids: the emulator is slow


class _MemoryPool:
    def malloc(self, nbytes):
        raise AssertionError("the fake device allocates with NumPy")


class _Allocator:
    def __init__(self, allocator=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def module():
    """The fake `cupy` and `cupyx` modules."""
    cp = types.ModuleType("cupy")
    cp.__dict__.update(ndarray=ndarray, asarray=asarray, array=array, empty=empty,
                       empty_like=empty_like, copyto=copyto, is_available=is_available,
                       RawKernel=RawKernel)
    cp.cuda = types.SimpleNamespace(Device=_Device, Stream=_Stream, MemoryPool=_MemoryPool,
                                    using_allocator=_Allocator)
    cp.linalg = types.SimpleNamespace(**{n: _numpy_function(getattr(np.linalg, n), n)
                                         for n in ("solve", "inv", "slogdet")})

    def getattr_(name):  # everything else: NumPy's function, returning 'device' arrays
        obj = getattr(np, name)
        if callable(obj) and not isinstance(obj, type):
            obj = _numpy_function(obj, name)
            setattr(cp, name, obj)
        return obj
    cp.__getattr__ = getattr_
    cpx = types.ModuleType("cupyx")

    def scatter_add(a, slices, value):
        op = lambda: np.add.at(a, slices, value)  # noqa: E731
        _record(op) if _CAPTURE else op()
    cpx.scatter_add = scatter_add
    return cp, cpx


_BOUND = ("flowc_runtime.gpu.kernels", "flowc_runtime.gpu.executable")


def install(monkeypatch):
    """Make `import cupy` give the fake for this test; runtime modules re-import against it."""
    import flowc_runtime as runtime
    from flowc_runtime.gpu import backend as cupy_backend
    cp, cpx = module()
    for name in _BOUND:
        monkeypatch.delitem(sys.modules, name, raising=False)
        parent, _, leaf = name.rpartition(".")
        monkeypatch.delattr(sys.modules[parent], leaf, raising=False)
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "cupyx", cpx)
    monkeypatch.setattr(cupy_backend, "_BACKEND", None)
    _CAPTURE.clear()
    return cp


def uninstall():
    """Forget the runtime modules bound to the fake (call after monkeypatch has undone it)."""
    import flowc_runtime as runtime
    for name in _BOUND:
        sys.modules.pop(name, None)
        parent, _, leaf = name.rpartition(".")
        if parent in sys.modules and hasattr(sys.modules[parent], leaf):
            delattr(sys.modules[parent], leaf)
