"""A CPU stand-in for CuPy, as strict as CuPy, for tests on machines with no GPU (CI): it runs
the whole GPU backend (kernel table, executable, CUDA-graph replay) with every RawKernel
launch executed by the host emulator (tests/gpu_emulator.py), so the generated CUDA and the
glue around it are both exercised.

Device arrays are their own type, not NumPy arrays: a NumPy array is their memory, but NumPy
cannot see it. What real CuPy refuses, the fake refuses too:
  - implicit host conversion (np.asarray(d), np.array(d)): TypeError, as CuPy's __array__;
  - NumPy functions and ufuncs applied to device arrays: TypeError (use the cupy function);
  - host NumPy arrays as operands of cupy functions, operators or kernels: TypeError;
  - ndarray.set with another shape, dtype or a non-NumPy source: ValueError / TypeError;
  - cuBLAS / cuSOLVER calls (float matmul, linalg) during stream capture: NotImplementedError;
  - host copies (get/set/asarray of host data), synchronize and graph launches during capture.
Stream capture is modelled as on a GPU: between begin_capture and end_capture, work that writes
existing arrays is recorded, not run; a function that returns a new array runs once to get its
memory and records the recomputation into that same memory; views record nothing.
Graph.launch() replays the record on the launching stream.

Stream order: work runs at once, but each stream remembers the memory its unfinished work
wrote and read (until it synchronizes; the legacy null stream and blocking streams wait for
each other, non_blocking streams wait for nobody). Reading memory that another stream's
unfinished work writes, or writing memory it reads or writes, raises: on a GPU that is a race.

Install with `install(monkeypatch)`; it also drops the runtime modules bound to a real CuPy.
"""
from __future__ import annotations

import sys
import types
import weakref

import numpy as np

from tests import gpu_emulator as emu

_CAPTURE = []  # one list of recorded (op, reads, writes) per capturing stream

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly.")


def _check(what):
    if _CAPTURE:
        raise RuntimeError(f"fake CUDA: {what} is not permitted while a stream is capturing "
                           "(cudaErrorStreamCaptureUnsupported)")


# -- streams ----------------------------------------------------------------------------------
class _Stream:
    """A CUDA stream: a context manager making it current, with its unfinished accesses."""

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.null, self.non_blocking = null, bool(non_blocking)
        self.wrote = weakref.WeakValueDictionary()  # id(memory) -> memory, unfinished writes
        self.read = weakref.WeakValueDictionary()
        _ALL.add(self)

    def __enter__(self):
        _CURRENT.append(self)
        return self

    def __exit__(self, *exc):
        _CURRENT.pop()
        return False

    def synchronize(self):
        _check("synchronize")
        self.done()

    def done(self):
        self.wrote.clear()
        self.read.clear()

    def begin_capture(self, mode=None):
        _CAPTURE.append([])

    def end_capture(self):
        return _Graph(_CAPTURE.pop())

    def use(self):
        _CURRENT[0] = self
        return self

    ptr = property(lambda self: id(self))

    def record(self, event=None):
        """An event marking this stream's work so far."""
        return _Event(self)

    def wait_event(self, event):
        # Work queued here after this waits for the event's stream: as far as the fake's race
        # checks go, that stream's unfinished work is done (a little stronger than a GPU,
        # where a third stream would still race with it).
        if event.stream is not self:
            event.stream.done()


class _Event:
    def __init__(self, stream):
        self.stream = stream


_ALL = weakref.WeakSet()
_NULL = _Stream(null=True)
_CURRENT = [_NULL]


def get_current_stream():
    return _CURRENT[-1]


def _memory(a):
    """The NumPy array that owns a host array's memory (views share their base's)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _waits_for(s, t):
    """Does work queued on stream s wait for stream t's earlier work (legacy null stream)?"""
    return (s.null and not t.non_blocking) or (t.null and not s.non_blocking)


def _touch(reads, writes, what):
    """Account one operation on the current stream: raise on a race with another stream."""
    s = _CURRENT[-1]
    reads = [_memory(a) for a in reads]
    writes = [_memory(a) for a in writes]
    for t in list(_ALL):
        if t is s:
            continue
        if _waits_for(s, t):
            t.done()
            continue
        for m in reads:
            if id(m) in t.wrote:
                raise RuntimeError(f"fake CUDA: stream race: {what} reads memory that unfinished "
                                   "work on another stream writes (synchronize it first)")
        for m in writes:
            if id(m) in t.wrote or id(m) in t.read:
                raise RuntimeError(f"fake CUDA: stream race: {what} writes memory that "
                                   "unfinished work on another stream uses (synchronize first)")
    for m in reads:
        s.read[id(m)] = m
    for m in writes:
        s.wrote[id(m)] = m


def _run(op, reads, writes, what):
    """Run (or, while capturing, record) one operation on device memory."""
    reads, writes = _hosts(reads), _hosts(writes)
    if _CAPTURE:
        _CAPTURE[-1].append((op, reads, writes, what))
        return None
    _touch(reads, writes, what)
    return op()


def _hosts(x):
    """The host arrays (device memory) inside nested args."""
    if isinstance(x, ndarray):
        return [x._a]
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, (tuple, list)):
        return [a for v in x for a in _hosts(v)]
    if isinstance(x, dict):
        return [a for v in x.values() for a in _hosts(v)]
    return []


# -- device arrays ------------------------------------------------------------------------------
def _unwrap(x, what):
    """Device arrays to their memory; host arrays refused, as CuPy refuses them."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"fake CuPy: {what} got a host numpy.ndarray (Unsupported type "
                        f"{type(x)}); copy it to the device first (cupy.asarray)")
    if isinstance(x, tuple):
        return tuple(_unwrap(v, what) for v in x)
    if isinstance(x, list):
        return [_unwrap(v, what) for v in x]
    if isinstance(x, dict):
        return {k: _unwrap(v, what) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return ndarray(x)
    if isinstance(x, np.generic):  # CuPy's reductions give 0-d device arrays
        return ndarray(np.asarray(x))
    if isinstance(x, (tuple, list)):
        vals = [_wrap(v) for v in x]
        return type(x)(*vals) if hasattr(x, "_fields") else type(x)(vals)
    return x


def _call(fn, args, kw, what, library=False):
    """Apply a NumPy function to device operands: CuPy's semantics, stream accounting and
    capture (a fresh result is recomputed into its own memory at replay)."""
    if library and _CAPTURE:
        raise NotImplementedError(f"fake CuPy: {what} calls a CUDA library (cuBLAS/cuSOLVER), "
                                  "which is not supported during stream capture")
    hargs, hkw = _unwrap(args, what), _unwrap(kw, what)
    ins = _hosts([hargs, {k: v for k, v in hkw.items() if k != "out"}])
    out = hkw.get("out")
    if isinstance(out, np.ndarray):
        _run(lambda: fn(*hargs, **hkw), ins, [out], what)
        return kw["out"]
    def ev():
        return _generic_to_array(fn(*hargs, **hkw))
    if not _CAPTURE:
        res = ev()
        fresh = [r for r in _hosts(res) if not any(np.may_share_memory(r, a) for a in ins)]
        _touch(ins, fresh, what)
        return _wrap(res)
    res = ev()  # run once for its memory; replay recomputes into that memory
    for i, r in enumerate(_hosts(res)):
        if not any(np.may_share_memory(r, a) for a in ins):
            _CAPTURE[-1].append((lambda r=r, i=i: np.copyto(
                r, _hosts(ev())[i], casting="unsafe"), ins, [r], what))
    return _wrap(res)


def _generic_to_array(x):
    if isinstance(x, np.generic):
        return np.asarray(x)
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(_generic_to_array(v) for v in x)
    if isinstance(x, tuple):
        return type(x)(*[_generic_to_array(v) for v in x])
    return x


def _is_library_matmul(a, b):
    dt = np.result_type(*[x.dtype if isinstance(x, ndarray) else np.asarray(x).dtype
                          for x in (a, b)])
    return dt.kind in "fc"


class _Data:
    def __init__(self, ptr):
        self.ptr = ptr


class ndarray:
    """A 'device' array: NumPy memory NumPy cannot see; CuPy's methods and refusals."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, a):
        self._a = a

    # NumPy must not see device memory.
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        raise TypeError(f"fake CuPy: NumPy's {ufunc.__name__} applied to a device array "
                        f"(use cupy.{ufunc.__name__})")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"fake CuPy: numpy.{func.__name__} applied to a device array "
                        f"(use cupy.{func.__name__})")

    # attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))
    real = property(lambda self: ndarray(self._a.real))
    imag = property(lambda self: ndarray(self._a.imag))
    @property
    def data(self):
        ptr = self._a.__array_interface__["data"][0]
        _POINTERS[ptr] = self   # so the fake NCCL finds the array a pointer stands for
        return _Data(ptr)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"fake_cupy.ndarray({self.get()!r})"

    # host copies
    def get(self, stream=None):
        """A NumPy copy (device to host, then the stream synchronizes)."""
        _check("a device-to-host copy")
        _touch([self._a], [], "ndarray.get")
        _CURRENT[-1].done()
        return np.array(self._a)

    def set(self, arr, stream=None):
        """Copy a NumPy array of exactly this shape and dtype in (host to device)."""
        _check("a host-to-device copy")
        if not isinstance(arr, np.ndarray) or isinstance(arr, ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if not self._a.flags.c_contiguous:
            raise RuntimeError("Cannot set to non-contiguous array")
        _touch([], [self._a], "ndarray.set")
        np.copyto(self._a, arr)

    def _sync_scalar(self, conv):
        _check("a device-to-host copy (a Python scalar)")
        return conv(self.get())

    def __float__(self):
        return self._sync_scalar(float)

    def __int__(self):
        return self._sync_scalar(int)

    def __bool__(self):
        return self._sync_scalar(bool)

    def item(self):
        return self._sync_scalar(lambda a: a.item())

    def tolist(self):
        return self.get().tolist()

    # writes in place
    def fill(self, value):
        _run(lambda: self._a.fill(value), [], [self._a], "ndarray.fill")

    def __setitem__(self, key, value):
        k, v = _unwrap(key, "__setitem__"), _unwrap(value, "__setitem__")
        _run(lambda: self._a.__setitem__(k, v), _hosts([k, v]), [self._a], "__setitem__")

    def __getitem__(self, key):
        return _call(np.ndarray.__getitem__, (self, _index_key(key)), {}, "__getitem__")

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # new arrays and views
    def copy(self, order="C"):
        return _call(lambda a: np.array(a, order=order, copy=True), (self,), {}, "ndarray.copy")

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        return _call(lambda a: a.astype(dtype, order=order, copy=copy), (self,), {},
                     "ndarray.astype")

    def view(self, dtype=None):
        return ndarray(self._a.view() if dtype is None else self._a.view(dtype))

    def reshape(self, *shape, order="C"):
        return _call(lambda a: a.reshape(*shape, order=order), (self,), {}, "ndarray.reshape")

    def transpose(self, *axes):
        return ndarray(self._a.transpose(*axes))

    def swapaxes(self, a1, a2):
        return ndarray(self._a.swapaxes(a1, a2))

    def ravel(self, order="C"):
        return _call(lambda a: a.ravel(order), (self,), {}, "ndarray.ravel")

    def squeeze(self, axis=None):
        return ndarray(self._a.squeeze(axis))

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return ndarray(self._a.diagonal(offset, axis1, axis2))


def _index_key(key):
    """An index: device arrays to their memory; host integer arrays are copied to the device
    first by CuPy (so not while capturing)."""
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if isinstance(key, np.ndarray) and not isinstance(key, ndarray):
        _check("a host-to-device copy (an index array)")
        return ndarray(np.array(key))
    return key


def _method(name):
    def m(self, *args, **kw):
        return _call(getattr(np.ndarray, name), (self,) + args, kw, f"ndarray.{name}")
    m.__name__ = name
    return m


for _name in ("sum", "prod", "max", "min", "mean", "any", "all", "argmax", "argmin", "cumsum",
              "clip", "conj", "dot"):
    setattr(ndarray, _name, _method(_name))
for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor",
              "lshift", "rshift", "lt", "le", "gt", "ge", "eq", "ne", "neg", "pos", "abs",
              "invert", "radd", "rsub", "rmul", "rtruediv", "rfloordiv", "rmod", "rpow",
              "rand", "ror", "rxor"):
    _dunder = f"__{_name}__"
    setattr(ndarray, _dunder, _method(_dunder))


def _imethod(name):
    def m(self, other):  # in place: a write into self's memory, recorded while capturing
        _call(lambda a, b, out: getattr(np.ndarray, name)(a, b), (self, other), {"out": self},
              f"ndarray.{name}")
        return self
    m.__name__ = name
    return m


for _name in ("iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand", "ior",
              "ixor"):
    setattr(ndarray, f"__{_name}__", _imethod(f"__{_name}__"))


def _matmul_op(self, other):
    return matmul(self, other)


def _rmatmul_op(self, other):
    return matmul(other, self)


ndarray.__matmul__, ndarray.__rmatmul__ = _matmul_op, _rmatmul_op


# -- module functions ---------------------------------------------------------------------------
def _numpy_function(fn, name, library=False):
    def f(*args, **kw):
        return _call(fn, args, kw, f"cupy.{name}", library)
    f.__name__ = name
    return f


def matmul(a, b, out=None):
    lib = _is_library_matmul(a, b)
    kw = {} if out is None else {"out": out}
    return _call(np.matmul, (a, b), kw, "cupy.matmul", library=lib)


def dot(a, b, out=None):
    kw = {} if out is None else {"out": out}
    return _call(np.dot, (a, b), kw, "cupy.dot", library=_is_library_matmul(a, b))


def _solve(a, b):
    """CuPy 14's solve: no broadcasting, b is (..., M) or (..., M, K) with a's leading dims."""
    if b.ndim == a.ndim - 1:
        ok = a.shape[:-1] == b.shape
    else:
        ok = b.ndim == a.ndim and a.shape[:-1] == b.shape[:-1]
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or not ok:
        raise ValueError(f"a must have (..., M, M) shape and b must have (..., M) or "
                         f"(..., M, K) with the same leading dims (got a {a.shape}, "
                         f"b {b.shape})")
    return np.linalg.solve(a, b if b.ndim == a.ndim else b[..., None])[..., 0] \
        if b.ndim == a.ndim - 1 else np.linalg.solve(a, b)


def asarray(x, dtype=None, order=None):
    if type(x) is ndarray:
        if dtype is None or np.dtype(dtype) == x.dtype:
            return x
        return x.astype(dtype)
    _check("a host-to-device copy")
    if isinstance(x, np.ndarray) or not isinstance(x, (list, tuple)):
        _no_device_inside(x)
    a = np.array(x, dtype=dtype, copy=True)
    _touch([], [a], "cupy.asarray")
    return ndarray(a)


def _no_device_inside(x):
    if isinstance(x, np.ndarray) and x.dtype == object:
        raise TypeError("fake CuPy: an object array cannot go to the device")


def array(x, dtype=None, copy=True, order="K"):
    if type(x) is ndarray:
        return x.astype(x.dtype if dtype is None else dtype) if copy or dtype else x
    return asarray(x, dtype=dtype)


def empty(shape, dtype=float, order="C"):
    return ndarray(np.empty(shape, dtype=dtype, order=order))  # allocation only


def empty_like(a, dtype=None):
    return ndarray(np.empty(a.shape, dtype=a.dtype if dtype is None else dtype))


def copyto(dst, src, casting="same_kind", where=True):
    d, s = _unwrap(dst, "cupy.copyto"), _unwrap(src, "cupy.copyto")
    w = _unwrap(where, "cupy.copyto")
    _run(lambda: np.copyto(d, s, casting=casting, where=w), _hosts([s, w]), [d],
         "cupy.copyto")


def is_available():
    return True


class RawKernel:
    """Compiles (for the host) and runs a generated kernel through the emulator."""

    def __init__(self, code, name, options=(), backend="nvrtc", **kw):
        self.kernel = emu.from_source(code, name)

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        args = tuple(_unwrap(a, f"RawKernel {self.kernel.name}") for a in args)
        for (ctype, pname), a in zip(self.kernel.params, args):
            pointer = ctype.endswith("*")
            if pointer != isinstance(a, np.ndarray) or not pointer and not isinstance(
                    a, (np.number, np.bool_, int, float)):
                raise TypeError(f"fake CuPy: kernel {self.kernel.name} parameter {pname} "
                                f"({ctype}) got {type(a).__name__}")
        if len(args) != len(self.kernel.params):
            raise TypeError(f"fake CuPy: kernel {self.kernel.name} takes "
                            f"{len(self.kernel.params)} arguments, got {len(args)}")
        arrays = _hosts(args)
        # Which pointers a kernel writes is not known here: all count as written.
        _run(lambda: emu.launch(self.kernel, grid, block, args), arrays, arrays,
             f"kernel {self.kernel.name}")


class _Graph:
    def __init__(self, ops):
        self.ops = ops

    def launch(self, stream=None):
        _check("a graph launch")
        with (stream or _CURRENT[-1]):
            for op, reads, writes, what in self.ops:
                _touch(reads, writes, what)
                op()


class _Device:
    def __init__(self, device=0):
        self.id = 0
        self.attributes = {"MultiProcessorCount": 1}  # small grids: the emulator is slow

    def synchronize(self):
        _check("a device synchronize")
        for s in list(_ALL):
            s.done()


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


# -- NCCL ---------------------------------------------------------------------------------------
# cupy.cuda.nccl's surface that runtime/comm/nccl.py uses. The transport is mpi4py's Allreduce on
# the arrays' host memory (the fake device's memory is host memory), so a real MPI job of fake
# GPUs checks the pointers, counts, dtypes, stream order and the unique id's bootstrap.
_POINTERS = {}   # data pointer -> the fake ndarray it was read from (test-sized: never pruned)


class _NcclCommunicator:
    def __init__(self, ndev, commId, rank):
        if not isinstance(commId, tuple) or len(commId) != 128:
            raise TypeError("fake NCCL: the unique id must be get_unique_id()'s 128-int tuple")
        self.size, self.rank = ndev, rank

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        a = _POINTERS.get(sendbuf)
        if a is None or recvbuf not in _POINTERS:
            raise ValueError("fake NCCL: a buffer pointer that is no device array's .data.ptr")
        if count != a.size or _NCCL_TYPES.get(datatype) != str(a.dtype) or op != 0:
            raise ValueError(f"fake NCCL: allReduce of {count} {_NCCL_TYPES.get(datatype)} "
                             f"(op {op}) over a {a.size}-element {a.dtype} array")
        streams = {s.ptr: s for s in _ALL}
        if stream not in streams:
            raise ValueError("fake NCCL: the stream pointer is no stream's .ptr")
        h = a._a

        def reduce():
            if self.size > 1:
                from mpi4py import MPI
                MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, h, op=MPI.SUM)
        with streams[stream]:
            _run(reduce, [h], [h], "nccl allReduce")


_NCCL_TYPES = {2: "int32", 4: "int64", 6: "float16", 7: "float32", 8: "float64"}


def _nccl():
    consts = {f"NCCL_{v.upper()}": k for k, v in _NCCL_TYPES.items()}
    return types.SimpleNamespace(NcclCommunicator=_NcclCommunicator, NCCL_SUM=0,
                                 get_unique_id=lambda: tuple(range(128)), **consts)


_OWN = {"matmul": matmul, "dot": dot}
_LINALG = ("solve", "inv", "slogdet")


def module():
    """The fake `cupy` and `cupyx` modules."""
    cp = types.ModuleType("cupy")
    cp.__dict__.update(ndarray=ndarray, asarray=asarray, array=array, empty=empty,
                       empty_like=empty_like, copyto=copyto, is_available=is_available,
                       RawKernel=RawKernel, **_OWN)
    _Stream.null = _NULL
    cp.cuda = types.SimpleNamespace(Device=_Device, Stream=_Stream, MemoryPool=_MemoryPool,
                                    using_allocator=_Allocator,
                                    get_current_stream=get_current_stream,
                                    runtime=types.SimpleNamespace(
                                        getDeviceProperties=lambda dev: {"name": b"fake GPU",
                                                                     "totalGlobalMem": 1 << 30},
                                        runtimeGetVersion=lambda: 13000),
                                    nccl=_nccl())
    cp.__version__ = "fake"
    linalg = {n: getattr(np.linalg, n) for n in _LINALG}
    linalg["solve"] = _solve
    cp.linalg = types.SimpleNamespace(**{n: _numpy_function(f, f"linalg.{n}", library=True)
                                         for n, f in linalg.items()})

    # CuPy sorts stably (thrust), whatever `kind` says; NumPy's default quicksort is not
    # stable past small sizes (fuzz seed 1322: argsort of 131,073 ties differed from the CPU).
    for name in ("sort", "argsort"):
        setattr(cp, name, _numpy_function(
            lambda a, axis=-1, kind=None, _f=getattr(np, name): _f(a, axis=axis, kind="stable"),
            name))

    def getattr_(name):  # everything else: NumPy's function, on device arrays
        obj = getattr(np, name)
        if callable(obj) and not isinstance(obj, type):
            obj = _numpy_function(obj, name)
            setattr(cp, name, obj)
        return obj
    cp.__getattr__ = getattr_
    cpx = types.ModuleType("cupyx")

    def scatter_add(a, slices, value):
        h, s, v = (_unwrap(x, "cupyx.scatter_add") for x in (a, slices, value))
        _run(lambda: np.add.at(h, s, v), _hosts([s, v]), [h], "cupyx.scatter_add")
    cpx.scatter_add = scatter_add
    return cp, cpx


_BOUND = ("flowc_runtime.gpu.kernels", "flowc_runtime.gpu.executable",
          "flowc_runtime.gpu.conv_run")  # conv_run: the generated conv kernels


def reset():
    """A fresh device: no capture, the null stream current, no unfinished work."""
    _CAPTURE.clear()
    del _CURRENT[1:]
    for s in list(_ALL):
        s.done()


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
    monkeypatch.setitem(sys.modules, "cupy.cuda", cp.cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", cp.cuda.nccl)
    monkeypatch.setitem(sys.modules, "cupyx", cpx)
    monkeypatch.setattr(cupy_backend, "_BACKEND", None)
    reset()
    return cp


def uninstall():
    """Forget the runtime modules bound to the fake (call after monkeypatch has undone it)."""
    import flowc_runtime as runtime
    for name in _BOUND:
        sys.modules.pop(name, None)
        parent, _, leaf = name.rpartition(".")
        if parent in sys.modules and hasattr(sys.modules[parent], leaf):
            delattr(sys.modules[parent], leaf)
    reset()
