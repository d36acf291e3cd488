"""NVRTC through ctypes, for compiling generated kernels the way CuPy does, with no GPU.

The `nvidia-cuda-nvrtc` wheel (the dev extra) ships libnvrtc; it needs no driver as long as
the architecture is pinned (`-arch=sm_90`). CuPy 14 compiles a RawKernel with NVRTC, one
source per program, with these options (cupy/cuda/compiler.py) plus the architecture.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os

CUPY_OPTIONS = ("-ftz=true", "--device-as-default-execution-space", "--pch")

_LIB = []


def _candidates():
    """libnvrtc.so.* inside the installed `nvidia` namespace package(s)."""
    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations or []) if spec else []
    out = []
    for root in roots:
        out += sorted(glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so*")), reverse=True)
    return [p for p in out if "builtins" not in os.path.basename(p)]


def load():
    """The loaded libnvrtc, or None; `why()` says why not."""
    if not _LIB:
        lib, reason = None, "the nvidia-cuda-nvrtc wheel is not installed " \
                            "(pip install 'flowc[dev]')"
        for path in _candidates():
            try:
                lib = ctypes.CDLL(path)
                break
            except OSError as e:
                reason = f"libnvrtc at {os.path.basename(path)} does not load ({e})"
        _LIB.append((lib, reason))
        if lib is not None:
            _declare(lib)
    return _LIB[0][0]


def why():
    """Why load() gave None."""
    load()
    return _LIB[0][1]


def _declare(lib):
    p, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(p), ctypes.c_char_p, ctypes.c_char_p, i,
                                       ctypes.POINTER(ctypes.c_char_p),
                                       ctypes.POINTER(ctypes.c_char_p)]
    lib.nvrtcCompileProgram.argtypes = [p, i, ctypes.POINTER(ctypes.c_char_p)]
    lib.nvrtcGetProgramLogSize.argtypes = [p, ctypes.POINTER(sz)]
    lib.nvrtcGetProgramLog.argtypes = [p, ctypes.c_char_p]
    lib.nvrtcGetCUBINSize.argtypes = [p, ctypes.POINTER(sz)]
    lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(p)]
    lib.nvrtcVersion.argtypes = [ctypes.POINTER(i), ctypes.POINTER(i)]


def version():
    """(major, minor) of the loaded NVRTC."""
    lib = load()
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def compile_source(source, name, arch, pch_dir=None):
    """Compile one kernel source to a cubin for sm_<arch>; returns (ok, log, cubin bytes).
    pch_dir: where NVRTC may keep precompiled headers (else its own temp folder)."""
    lib = load()
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), f"{name}.cu".encode(),
                                0, None, None)
    if rc:
        return False, f"nvrtcCreateProgram failed ({rc})", 0
    try:
        opts = [f"-arch=sm_{arch}".encode()] + [o.encode() for o in CUPY_OPTIONS]
        if pch_dir:
            opts.append(f"--pch-dir={pch_dir}".encode())
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        n = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
        buf = ctypes.create_string_buffer(n.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        size = ctypes.c_size_t()
        if rc == 0:
            lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
        return rc == 0, log, size.value
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def compile_many(jobs):
    """[(name, arch, ok, log, cubin size)] for (source, name, arch) jobs, in a process pool
    (NVRTC holds the GIL for a whole compile, so threads would not help); the precompiled
    headers that --pch makes go to a folder removed afterwards."""
    import tempfile
    from concurrent.futures import ProcessPoolExecutor
    workers = max(1, min(os.cpu_count() or 1, 8))
    with tempfile.TemporaryDirectory(prefix="flowc-nvrtc-") as d:
        jobs = [(s, n, a, d) for s, n, a in jobs]
        if workers == 1 or len(jobs) < 8:
            return [_one(j) for j in jobs]
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(_one, jobs, chunksize=max(1, len(jobs) // (4 * workers))))


def _one(job):
    s, n, a, d = job
    return (n, a) + tuple(compile_source(s, n, a, d))
