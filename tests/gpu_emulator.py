"""Runs generated CUDA kernels on the CPU, so their results are checked on machines with no GPU.

The kernel source is compiled unchanged as C++ after a small shim: the CUDA threads of a block
are fibers (ucontext) on one host thread, resumed round-robin; __syncthreads waits until the
whole block has arrived and __shfl_down_sync exchanges values through a per-warp barrier; the
blocks of a grid run one after another (so a `static` stands in for __shared__ memory).
Every thread of every block runs the real code path; only speed differs.
"""
from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from flowc_runtime.gpu.codegen import KernelSource

SHIM = r"""
#include <cmath>
#include <cstring>
#include <functional>
#include <ucontext.h>
#include <vector>
struct emu_dim3 { unsigned x, y, z; };
static emu_dim3 emu_threadIdx, emu_blockIdx, emu_blockDim, emu_gridDim;
#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
// The threads of a block are fibers on one host thread, resumed round-robin; a barrier
// yields until every thread it counts has arrived (a block for __syncthreads, a warp for
// shuffles). Blocks run one after another, so a `static` is one block's shared memory.
struct emu_fiber { ucontext_t ctx; std::vector<char> stack; bool done; };
static std::vector<emu_fiber> emu_fibers;
static ucontext_t emu_main;
static unsigned emu_cur;
static const std::function<void()>* emu_body;
struct emu_barrier { unsigned n, count, gen; };
static emu_barrier emu_block_bar;
static std::vector<emu_barrier> emu_warp_bars;
static void emu_yield() { swapcontext(&emu_fibers[emu_cur].ctx, &emu_main); }
static void emu_wait(emu_barrier& b) {
  const unsigned gen = b.gen;
  if (++b.count == b.n) { b.count = 0; ++b.gen; return; }
  while (b.gen == gen) emu_yield();
}
static inline void __syncthreads() { emu_wait(emu_block_bar); }
template <class T> static T __shfl_down_sync(unsigned, T v, int off) {
  static T buf[1024];
  const unsigned t = threadIdx.x, lane = t % 32;
  emu_barrier& b = emu_warp_bars[t / 32];
  buf[t] = v;
  emu_wait(b);
  const T r = (lane + off < 32 && t + off < blockDim.x) ? buf[t + off] : v;
  emu_wait(b);
  return r;
}
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(long long i) { double f; std::memcpy(&f, &i, 8); return f; }
static void emu_entry() {
  (*emu_body)();
  emu_fibers[emu_cur].done = true;
  swapcontext(&emu_fibers[emu_cur].ctx, &emu_main);
}
template <class F> static void emu_run(unsigned gx, unsigned gy, unsigned bx, F kernel) {
  const std::function<void()> body = kernel;
  emu_body = &body;
  emu_gridDim = {gx, gy, 1};
  emu_blockDim = {bx, 1, 1};
  emu_fibers.assign(bx, emu_fiber());
  for (auto& f : emu_fibers) f.stack.resize(1 << 16);
  for (unsigned y = 0; y < gy; ++y)
    for (unsigned x = 0; x < gx; ++x) {
      emu_blockIdx = {x, y, 0};
      emu_block_bar = {bx, 0, 0};
      emu_warp_bars.assign((bx + 31) / 32, emu_barrier{32, 0, 0});
      if (bx % 32) emu_warp_bars.back().n = bx % 32;
      for (unsigned t = 0; t < bx; ++t) {
        emu_fiber& f = emu_fibers[t];
        f.done = false;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, emu_entry, 0);
      }
      for (bool alive = true; alive;) {
        alive = false;
        for (unsigned t = 0; t < bx; ++t) {
          if (emu_fibers[t].done) continue;
          emu_cur = t;
          emu_threadIdx = {t, 0, 0};
          swapcontext(&emu_main, &emu_fibers[t].ctx);
          alive |= !emu_fibers[t].done;
        }
      }
    }
}
// Kernels without __syncthreads or shuffles: threads never meet, so they simply run one
// after another, block after block.
template <class F> static void emu_run_serial(unsigned gx, unsigned gy, unsigned bx, F kernel) {
  emu_gridDim = {gx, gy, 1};
  emu_blockDim = {bx, 1, 1};
  for (unsigned y = 0; y < gy; ++y)
    for (unsigned x = 0; x < gx; ++x)
      for (unsigned t = 0; t < bx; ++t) {
        emu_blockIdx = {x, y, 0};
        emu_threadIdx = {t, 0, 0};
        kernel();
      }
}
"""

_FUNCS = {}   # kernel name -> ctypes function
_LIBS = []
_DIR = None


def available():
    """A C++ compiler is on PATH (g++ or clang++) and the platform has ucontext (POSIX)."""
    return _compiler() is not None


def _compiler():
    if os.name != "posix":
        return None
    for cxx in ("g++", "clang++"):
        path = shutil.which(cxx)
        if path:
            return path
    return None


def _workdir():
    global _DIR
    if _DIR is None:
        _DIR = tempfile.mkdtemp(prefix="flowc-emu-")
        atexit.register(shutil.rmtree, _DIR, True)
    return _DIR


def _wrapper(k):
    casts = [f"({t})p[{j}]" if t.endswith("*") else f"*({t}*)p[{j}]"
             for j, (t, _) in enumerate(k.params)]
    run = "emu_run" if "__syncthreads" in k.source or "__shfl" in k.source else "emu_run_serial"
    return (f'extern "C" void emu_{k.name}(unsigned gx, unsigned gy, unsigned bx, void** p) {{\n'
            f"  {run}(gx, gy, bx, [=] {{ {k.name}({', '.join(casts)}); }});\n}}\n")


def compile_kernels(kernels):
    """Compile the kernels not compiled yet: a few host libraries, built in parallel."""
    todo = list({k.name: k for k in kernels if k.name not in _FUNCS}.values())
    if not todo:
        return
    parts = max(1, min(os.cpu_count() or 1, 8, len(todo) // 8 or 1))
    jobs = []
    for i in range(parts):
        chunk = todo[i::parts]
        # One namespace per kernel: each source brings its own helpers.
        text = "\n".join([SHIM] + [f"namespace ns_{k.name} {{\n{k.source}\n{_wrapper(k)}}}\n"
                                   for k in chunk])
        digest = hashlib.sha1(text.encode()).hexdigest()[:16]
        src = os.path.join(_workdir(), f"k{digest}.cpp")
        lib = os.path.join(_workdir(), f"k{digest}.so")
        with open(src, "w") as f:
            f.write(text)
        proc = subprocess.Popen([_compiler(), "-std=c++17", "-O1", "-shared", "-fPIC",
                                 "-w", src, "-o", lib],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        jobs.append((proc, lib, chunk))
    for proc, lib, chunk in jobs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"host compile of generated kernels failed:\n{err[:4000]}")
        dll = ctypes.CDLL(lib)
        _LIBS.append(dll)
        for k in chunk:
            fn = getattr(dll, f"emu_{k.name}")
            fn.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]
            fn.restype = None
            _FUNCS[k.name] = fn


def from_source(source, name):
    """A KernelSource from raw CUDA text (its parameters read off the kernel's signature)."""
    sig = re.search(r"void\s+" + re.escape(name) + r"\s*\(([^)]*)\)", source).group(1)
    params = []
    for p in sig.split(","):
        p = p.replace("__restrict__", " ").split()
        params.append((" ".join(p[:-1]), p[-1]))
    return KernelSource(name, source, tuple(params))


def launch(kernel, grid, block, args):
    """Run one kernel: args are arrays (passed as pointers) and NumPy scalars (by value)."""
    compile_kernels([kernel])
    ptrs = (ctypes.c_void_p * len(args))()
    keep = []
    for j, a in enumerate(args):
        if isinstance(a, np.ndarray):
            ptrs[j] = a.__array_interface__["data"][0]
        else:
            box = np.array(a)  # the scalar's own dtype: int32 or int64
            keep.append(box)
            ptrs[j] = box.ctypes.data
    gx, gy = (tuple(grid) + (1,))[:2] if isinstance(grid, tuple) else (grid, 1)
    bx = block[0] if isinstance(block, tuple) else block
    _FUNCS[kernel.name](gx, gy, bx, ptrs)


def run(plan, arrays, out=None):
    """Execute a runtime.cuda_plan.Plan on NumPy operands; returns the output array."""
    compile_kernels(plan.sources)
    arrays = [np.asarray(a) for a in arrays]
    if out is None:
        out = np.empty(plan.out_shape, dtype=plan.out_dtype)
    work = np.empty(plan.work[0], dtype=plan.work[1]) if plan.work else None
    for ln in plan.launches:
        args = [a if not isinstance(a, tuple) else arrays[a[1]] if a[0] == "arg" else
                out if a[0] == "out" else work for a in ln.args]
        launch(ln.kernel, ln.grid, ln.block, args)
    return out
