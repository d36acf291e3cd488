"""The GPU Executable: the linker's Executable with parameters on the device, NumPy or CuPy
inputs, CuPy (or NumPy) outputs, the generated CUDA on show, and optional CUDA-graph replay.

Imported only by the GPU backend (it needs CuPy).

CUDA graphs (cuda_graph=True): a small training step is mostly launch overhead (a few
microseconds of Python and driver work per kernel). The first call of a shape signature runs
the ordinary linked code (allocating, compiling the kernels). The second call builds a
*graph state*: a private memory pool, staging buffers for the inputs, planned buffers for
every instruction output (runtime/memory/plan.py), then one uncaptured warm-up run of the body and
one run under stream capture. CuPy cannot capture cuBLAS or cuSOLVER calls (matmul, gemm,
solve, inv, slogdet), so the capture is cut at each of them: the step becomes graphs with a
library call between each two, which runs on its fixed buffers at replay. Every later call of
that signature copies the inputs into the staging buffers, replays the parts in order (one
launch per graph), and copies the outputs out. Parameters
are updated *in place* inside the graph (all new values are computed first, then copied in),
so their device pointers stay the ones the graph was captured with; if another executable
swaps a parameter's array, the pointers no longer match and the state is captured again.
If capture fails (an op that synchronizes, say), that signature falls back to the ordinary
path for good, and `graph_status()` says why.
"""
from __future__ import annotations

import functools

import cupy as cp
import numpy as np

from ..cpu.kernels import Kernel
from ..link.linker import CallError, Executable, ProgramError
from ..memory import plan as memory
from .kinds import kernel_kind, kernel_kinds

RECAPTURES = 3  # pointer changes per signature before graphs are given up for it


class CupyExecutable(Executable):
    """A Program linked for the GPU; see the module docstring for the options."""

    def __init__(self, program, backend, cells=None, single=None, downcast=False,
                 host_outputs=False, cuda_graph=False, checks=True):
        if cells is not None:  # parameters live on the device, in their (shared) Cells
            for c in cells:
                if type(c.value) is not cp.ndarray:
                    c.value = cp.asarray(c.value)
        self._prepared = []
        super().__init__(program, self._recording(backend), cells=cells, single=single,
                         downcast=downcast, checks=checks)
        self.backend = backend
        self.host_outputs = bool(host_outputs)
        self.single = len(program.outputs) == 1 if single is None else single
        self._graphs = GraphRunner(self, downcast) if cuda_graph else None
        # Instructions whose kernel has `prepare` got their objects in program order.
        with_prepare = [k for k, ins in enumerate(program.instrs)
                        if backend.kernels[ins.kernel].prepare is not None]
        self.prepared = dict(zip(with_prepare, self._prepared)) \
            if len(with_prepare) == len(self._prepared) else {}

    def _recording(self, backend):
        """The backend, with every `prepare` also recording the object it made."""
        import dataclasses
        kernels = {}
        for name, kern in backend.kernels.items():
            if kern.prepare is None:
                kernels[name] = kern
                continue

            def prep(_p=kern.prepare, **attrs):
                obj = _p(**attrs)
                self._prepared.append(obj)
                return obj
            kernels[name] = Kernel(kern.fn, kern.kind, prep, kern.inplace)
        return dataclasses.replace(backend, kernels=kernels)

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, *inputs):
        self._own_cells()
        if self._graphs is not None:
            out = self._graphs.call(inputs, fresh=not self.host_outputs)
        else:
            out = super().__call__(*inputs)
        return _host(out) if self.host_outputs else out

    def call_timed(self, *inputs):
        """As Executable.call_timed; on the GPU a kernel's time is its launch's unless the
        caller synchronizes (cupy.cuda.get_current_stream().synchronize())."""
        self._own_cells()
        out = super().call_timed(*inputs)
        return _host(out) if self.host_outputs else out

    def _own_cells(self):
        # Another (CPU) executable sharing a Cell may have stored a NumPy array there.
        for c in self.cells:
            if type(c.value) is not cp.ndarray:
                c.value = cp.asarray(c.value)

    # -- what runs -------------------------------------------------------------------------
    def kernel_kinds(self):
        """[(instruction index, kernel, node id, kind)]: cuBLAS / cuSOLVER / generated CUDA /
        CuPy / view, for drawing which instruction runs as which kernel."""
        return kernel_kinds(self.program)

    def kernel_sources(self):
        """[(instruction index, kernel, where, [CUDA sources])] for the instructions that run
        as generated CUDA; sources appear once a call has met their operands' layout."""
        out = []
        for k, obj in sorted(self.prepared.items()):
            srcs = getattr(obj, "cuda_sources", None)
            if srcs is not None:
                ins = self.program.instrs[k]
                out.append((k, ins.kernel, ins.where, list(srcs)))
        return out

    @property
    def cuda_source(self) -> str:
        """Every generated kernel of this function, printable, each under its instruction."""
        parts = []
        for k, kernel, where, srcs in self.kernel_sources():
            for s in srcs:
                # ascii(): the Program's text on one line, even in a listing never compiled
                parts.append(f"// ---- instruction {k}: {kernel} for {ascii(where)}\n{s}")
        return "\n".join(parts) if parts else "// (no generated kernel has run yet: call first)"

    def graph_status(self):
        """{shape signature: "captured" | "ordinary path" | "failed: why"} with cuda_graph."""
        return {} if self._graphs is None else dict(self._graphs.status)

    def graph_parts(self):
        """{shape signature: (graphs, library calls)} replayed per call, for each captured
        signature (the capture is cut at every cuBLAS / cuSOLVER call)."""
        if self._graphs is None:
            return {}
        return {key: (sum(hasattr(p, "launch") for p in st.parts),
                      sum(not hasattr(p, "launch") for p in st.parts))
                for key, st in self._graphs.states.items() if st is not None}


def _host(out):
    if isinstance(out, list):
        return [o.get() if type(o) is cp.ndarray else o for o in out]
    return out.get() if type(out) is cp.ndarray else out


class _State:
    """One shape signature's captured graph and the buffers it reads and writes."""

    __slots__ = ("parts", "pool", "stream", "stage", "fixed", "kernels", "B", "outs",
                 "outbuf", "updtmp", "ptrs", "libout", "empty")



class GraphRunner:
    """CUDA-graph capture and replay of an executable's step (see the module docstring)."""

    def __init__(self, exe, downcast):
        from .inputs import make_gpu_input_checker
        self.exe = exe
        prog = exe.program
        self.checkers = [make_gpu_input_checker(s, downcast, CallError) for s in prog.inputs]
        kern = [exe.backend.kernels[ins.kernel] for ins in prog.instrs]
        self.kinds = [k.kind for k in kern]
        self.inplace = [k.inplace for k in kern]
        # cuBLAS / cuSOLVER calls cannot be captured, nor kernels that read values on
        # the host (index and probability checks): they run between graphs at replay.
        self.library = [kernel_kind(ins.kernel, ins.dtype) in ("cuBLAS", "cuSOLVER",
                                                              "CuPy, checked")
                        for ins in prog.instrs]
        self.states, self.status, self.captures = {}, {}, {}

    def call(self, inputs, fresh=True):
        exe, prog = self.exe, self.exe.program
        if len(inputs) != len(prog.inputs):
            raise CallError(f"expected {len(prog.inputs)} input(s) "
                            f"({', '.join(i['name'] for i in prog.inputs)}), got {len(inputs)}")
        hosts = [x if type(x) is cp.ndarray else chk.host(x)
                 for chk, x in zip(self.checkers, inputs)]
        xs = [chk(x) if type(x) is cp.ndarray else x for chk, x in zip(self.checkers, hosts)]
        key = tuple(x.shape for x in xs) + tuple(c.value.shape for c in exe.cells)
        st = self.states.get(key)
        if st is not None and st.ptrs != tuple(c.value.data.ptr for c in exe.cells):
            st = self.states[key] = None  # a parameter's array was swapped: capture again
        if st is None:
            if key not in self.status:  # first call: compile and allocate the ordinary way
                self.status[key] = "ordinary path"
                return Executable.__call__(exe, *[cp.asarray(x) for x in xs])
            if self.status[key].startswith("failed"):
                return Executable.__call__(exe, *[cp.asarray(x) for x in xs])
            n = self.captures[key] = self.captures.get(key, 0) + 1
            if n > RECAPTURES:
                self.status[key] = "failed: parameters keep changing arrays (shared with an " \
                                   "executable that swaps them)"
                return Executable.__call__(exe, *[cp.asarray(x) for x in xs])
            try:
                st = self.states[key] = self._capture([cp.asarray(x) for x in xs])
                self.status[key] = "captured"
            except Exception as e:  # e.g. an op that synchronizes: not capturable
                self.status[key] = f"failed: {type(e).__name__}: {e}"
                self.states.pop(key, None)
                return Executable.__call__(exe, *[cp.asarray(x) for x in xs])
        for buf, x in zip(st.stage, xs):
            if type(x) is cp.ndarray:
                cp.copyto(buf, x)
            else:
                # Host to device, straight into the buffer (CuPy's set wants its exact
                # shape: np.ascontiguousarray would make a 0-d input 1-d).
                buf.set(np.asarray(x, order="C"))
        for part in st.parts:
            part.launch() if hasattr(part, "launch") else part()
        outs = [o.copy() for o in st.outs] if fresh else list(st.outs)
        return outs[0] if exe.single and len(outs) == 1 else outs

    # -- building a graph state ------------------------------------------------------------
    def _capture(self, xs):
        exe, prog = self.exe, self.exe.program
        st = _State()
        st.pool = cp.cuda.MemoryPool()
        st.stream = cp.cuda.Stream(non_blocking=True)
        # The capture stream does not wait for the current one (non_blocking): the inputs and
        # parameters it reads must be written before it starts.
        cp.cuda.get_current_stream().synchronize()
        with cp.cuda.using_allocator(st.pool.malloc), st.stream:
            st.stage = [cp.empty(x.shape, x.dtype) for x in xs]
            for buf, x in zip(st.stage, xs):
                cp.copyto(buf, x)
            st.fixed = {spec["slot"]: buf for spec, buf in zip(prog.inputs, st.stage)}
            st.fixed.update({p["slot"]: c.value for p, c in zip(prog.params, exe.cells)})
            st.fixed.update({c["slot"]: cp.asarray(prog.values[f"const{c['slot']}"])
                             for c in prog.consts})
            st.kernels = []
            for ins in prog.instrs:
                kern = exe.backend.kernels[ins.kernel]
                st.kernels.append(kern.prepare(**ins.attrs) if kern.prepare is not None else
                                  functools.partial(kern.fn, **ins.attrs) if ins.attrs
                                  else kern.fn)
            # 1. Allocate: fresh arrays show every output's size; the plan shares buffers.
            st.B, st.libout, st.parts = None, None, None
            vals = self._body(st, commit=False)
            arrays = {ins.out: vals[ins.out] for ins, kind in zip(prog.instrs, self.kinds)
                      if kind == "out" and hasattr(vals[ins.out], "shape")}
            exclusive = set(prog.outputs) | {u["slot"] for u in prog.updates}
            st.B = memory.plan(prog, self.kinds, self.inplace, arrays, exclusive)
            first = set()
            st.outbuf = {}
            for p, s in enumerate(prog.outputs):
                if s not in st.B or s in first:
                    st.outbuf[p] = cp.empty_like(vals[s])
                first.add(s)
            st.updtmp = {j: cp.empty_like(vals[u["slot"]]) for j, u in enumerate(prog.updates)
                         if u["slot"] not in st.B}
            # A library call's result needs a fixed buffer too: later graphs read it there.
            st.libout = {k: cp.empty_like(vals[ins.out]) for k, ins in enumerate(prog.instrs)
                         if self.library[k] and ins.out not in st.B}
            del vals, arrays
            # 2. Warm up with the buffers (nothing committed), so every temporary the body
            #    needs is already in this pool when it is captured.
            self._body(st, commit=False)
            st.stream.synchronize()
            # 3. Capture (nothing runs until the graphs are launched), cut at library calls.
            st.parts, st.empty = [], True
            st.stream.begin_capture()
            try:
                self._body(st, commit=True)
            except BaseException:
                try:
                    st.stream.end_capture()
                except Exception:
                    pass
                raise
            st.parts.append(st.stream.end_capture())
        st.ptrs = tuple(c.value.data.ptr for c in exe.cells)
        return st

    def _library_call(self, st, k, args):
        """A cuBLAS / cuSOLVER instruction into its fixed buffer: run now, or, while the
        step is captured, cut the capture and run it there at every replay."""
        out = self.exe.program.instrs[k].out
        buf = st.B[out] if out in st.B else st.libout[k]

        def call():
            try:
                if out in st.B:
                    st.kernels[k](*args, out=buf)
                else:
                    cp.copyto(buf, st.kernels[k](*args))
            except Exception as e:  # at replay too: say which instruction and whose line
                ins = self.exe.program.instrs[k]
                raise ProgramError(f"instruction {k} ({ins.kernel}) for {ins.where} failed: "
                                   f"{type(e).__name__}: {e}") from e
        if st.parts is None:
            call()
        else:
            graph = st.stream.end_capture()
            if not st.empty:  # two library calls in a row: no graph between them
                st.parts.append(graph)
            st.parts.append(call)
            st.empty = True
            st.stream.begin_capture()
        return buf

    def _body(self, st, commit):
        """One pass over the instructions; with `commit`, outputs and updates land in their
        fixed buffers and the parameters take their new values (copied in place)."""
        prog = self.exe.program
        vals = dict(st.fixed)
        for k, ins in enumerate(prog.instrs):
            args = [vals[a] for a in ins.args]
            if self.library[k] and st.libout is not None:
                vals[ins.out] = self._library_call(st, k, args)
                continue
            st.empty = False
            if st.B is not None and ins.out in st.B:
                vals[ins.out] = st.kernels[k](*args, out=st.B[ins.out])
            else:
                r = st.kernels[k](*args)
                vals[ins.out] = r if hasattr(r, "shape") else cp.asarray(r)
        if not commit:
            return vals
        st.outs = []
        for p, s in enumerate(prog.outputs):
            if p in st.outbuf:
                cp.copyto(st.outbuf[p], vals[s])
                st.outs.append(st.outbuf[p])
            else:
                st.outs.append(st.B[s])
        new = []
        for j, u in enumerate(prog.updates):
            if j in st.updtmp:  # a view or a leaf: copy it before any parameter changes
                cp.copyto(st.updtmp[j], vals[u["slot"]])
                new.append(st.updtmp[j])
            else:
                new.append(st.B[u["slot"]])
        for u, v in zip(prog.updates, new):
            cp.copyto(self.exe.cells[u["param"]].value, v)
        return vals
