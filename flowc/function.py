"""flowc.function: compile inputs -> outputs (+ parameter updates) into a runtime executable."""
from __future__ import annotations

import flowc_runtime as runtime

from .ir.errors import FlowcError, InputError, InputShapeError
from .ir.graph import paused_gc
from .ir.tensor import Shape, Tensor
from .lower.lower import lower
from .ops.build import as_tensor
from .lower.unit import build_unit, cast_updates, with_default_updates
from .passes.pipeline import optimize as run_passes


MODES = (None, "fast", "check")


def check_mode(mode, check_tol, device):
    """The mode a Function runs in ("fast" or "check"), or a FlowcError saying what is allowed."""
    if mode not in MODES:
        raise FlowcError(f"mode must be None, 'fast' or 'check', got {mode!r}")
    if mode != "check" and check_tol is not None:
        raise FlowcError(f"check_tol applies to mode='check' only (mode is {mode!r})")
    if mode == "check" and device != "cpu":
        raise FlowcError(f"mode='check' runs on device='cpu' only, got device={device!r}")
    return mode or "fast"


class Function:
    """A compiled function. Call it with arrays; `program`, `source` and `graph` show the result.

    Theano's update semantics: every output and update value is computed from the values
    before the call; then all updates are applied. A failed call changes no parameter.
    """

    @paused_gc
    def __init__(self, inputs, outputs, updates, device, optimize, allow_input_downcast,
                 verify, givens=None, single_output=None, mode=None, check_tol=None,
                 no_default_updates=False, data_parallel=None, **device_options):
        outs = output_list(outputs)
        ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        pairs = list(updates.items()) if isinstance(updates, dict) else list(updates or [])
        pairs = cast_updates(with_default_updates(outs, pairs, no_default_updates))
        unit, self.user_graph = build_unit(ins, outs, pairs, givens)
        self.mode, self.level = check_mode(mode, check_tol, device), optimize
        if data_parallel:  # before the passes: specialize would fold a gradient into its update
            from .passes.data_parallel import data_parallel as dp_pass
            unit = dp_pass(unit, **({} if data_parallel is True else dict(data_parallel)))
        self.graph = run_passes(unit, optimize, verify=verify)
        cells = {nid: c for nid, c in self.user_graph.cells.items()}
        self.program = lower(self.graph, {n: c.value for n, c in cells.items()})
        self.device = device
        self.exe = runtime.link(self.program, device=device,
                                cells=[cells[p["key"]] for p in self.program.params],
                                single=len(outs) == 1 if single_output is None else single_output,
                                downcast=allow_input_downcast, **device_options)
        self.source = self.exe.source
        self.inputs, self.outputs, self.updates = ins, outs, pairs
        self.checker = None
        if self.mode == "check":  # see flowc/checked.py
            from .checked import Checker
            self.checker = Checker(self, unit, check_tol, allow_input_downcast)

    def __call__(self, *args):
        try:
            if self.checker is not None:
                return self.checker(args)
            return self.exe(*args)
        except runtime.CallError as e:
            shape = isinstance(e, runtime.CallShapeError)
            raise (InputShapeError if shape else InputError)(str(e)) from None

    def explain(self) -> str:
        """The passes and rules that changed the graph, one line each, with the user's line,
        then how often each fired."""
        log = [r for r in self.graph.graph.get("log", []) if r[0] != "dce"]
        algos = self._algorithm_rows()
        if not log:
            return "\n".join(["(no rewrites)"] + algos)
        width = max(len(r[0]) for r in log)
        rows = [f"{what:<{width}}  node {nid:<6} {name or '':<14} {trace or ''}"
                for what, nid, name, trace in log]
        counts = {}
        for r in log:
            counts[r[0]] = counts.get(r[0], 0) + 1
        rows += ["", "fired: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))]
        return "\n".join(rows + algos)

    def _algorithm_rows(self):
        """Lines naming the algorithm each conv ran on the last call (chosen per shape at
        run time, so nothing until the function has been called)."""
        algos = self.exe.algorithms() if hasattr(self.exe, "algorithms") else {}
        instrs = self.exe.program.instrs
        return ([""] + [f"{instrs[k].kernel}[{a}]  node {instrs[k].node}"
                        for k, a in sorted(algos.items())]) if algos else []

    def profile(self, *args, calls=20):
        """Time every instruction on these inputs (parameters are left as they were).

        Returns a Profile, shown as a table at the prompt (`print(p)` in a script): the
        instructions, the time per op kind, and the whole call split into the instructions,
        the runtime's work between them and flowc's own call. `p.by_op()` gives the time
        per op kind, `fc.render(f, path, heat=p)` colours the hot nodes.
        """
        from .profile import profile
        return profile(self, args, calls)

    def memory(self):
        """{"plan": bytes the buffers take, "lower_bound": liveness bound, "loop_stacks":
        bytes the loops' per-step outputs took (allocated by the loops, outside the plan)}
        for the last new shapes."""
        plan, bound, stacks = self.exe.memory(stacks=True)
        return {"plan": plan, "lower_bound": bound, "loop_stacks": stacks}

    def save(self, path: str) -> None:
        """Save the Program (JSON + .npz) with the parameters' current values."""
        for i, cell in enumerate(self.exe.cells):
            v = cell.value
            self.program.values[f"param{i}"] = v.get() if hasattr(v, "get") else v
        self.program.save(path)

    def __repr__(self):
        return (f"<flowc.Function {len(self.inputs)} inputs -> {len(self.outputs)} outputs, "
                f"{len(self.updates)} updates, {len(self.program.instrs)} instructions, "
                f"device={self.device}>")


def output_list(outputs):
    """The outputs as a list of tensors: one tensor, a Shape (its int64 vector) or a list of
    them; None or any other value is an error naming its position (never "no outputs")."""
    if outputs is None:
        return []
    if isinstance(outputs, (Tensor, Shape)):
        outputs = [outputs]
    elif not isinstance(outputs, (list, tuple)):
        raise InputError(f"outputs must be a tensor or a list of tensors, got "
                         f"{type(outputs).__name__} {outputs!r}")
    outs = []
    for k, o in enumerate(outputs):
        if isinstance(o, Shape):
            o = as_tensor(o)
        if not isinstance(o, Tensor):
            raise InputError(f"output {k} is {o!r} ({type(o).__name__}), not a tensor"
                             + (": a shape dim known when the graph is built is a Python "
                                "int; return fc.shape(x) for the run-time shape"
                                if isinstance(o, int) else ""))
        outs.append(o)
    return outs


def function(inputs, outputs=None, updates=None, device="cpu", optimize="O2",
             allow_input_downcast=False, verify=False, givens=None,
             single_output=None, explain=False, host_outputs=False,
             cuda_graph=False, mode=None, check_tol=None,
             no_default_updates=False, data_parallel=None) -> Function:
    """Compile a function of `inputs` returning `outputs` and applying `updates` (param, value).

    One output gives one array; several give a list. `optimize` is "O0", "O1" or "O2";
    `device` is "cpu" (NumPy) or "gpu" (CuPy). `allow_input_downcast` accepts e.g. float64
    arrays for float32 inputs. `verify` re-checks the graph after every pass. `givens`
    ({old: new} or pairs) computes with `new` in place of `old`. `single_output=False` returns
    a list even for one output (Theano's rule for a list of outputs). `explain=True` prints
    the rewrites that fired (the same text as `f.explain()`). On the GPU, outputs are CuPy
    arrays unless `host_outputs=True`; `cuda_graph=True` replays each step as a captured
    CUDA graph (fewer launches for small steps). Both are ignored on the CPU.

    `mode="check"` checks every call (flowc/checked.py): it stops at the first NaN/inf with
    the op, the forward op it differentiates and the user's line, and compares the optimized
    program and executable with the unoptimized one (`check_tol`: a relative tolerance, or
    {dtype: tolerance}). `mode=None` (or "fast") runs the executable alone.

    Random draws (flowc/random.py) advance their stream on every call: their state's default
    update is added unless `no_default_updates=True` (or a list of the states to leave).

    `data_parallel=True` (or a dict: `bucket_bytes`, `reduce_outputs`) averages every
    gradient the updates read, and every scalar float output, over the processes of the
    world (flowc/passes/data_parallel.py); each process passes its shard of the batch. With
    one process it changes no value and imports no MPI.
    """
    if device not in ("cpu", "gpu"):
        raise FlowcError(f"device must be 'cpu' or 'gpu', got {device!r}")
    f = Function(inputs, outputs, updates, device, optimize, allow_input_downcast, verify,
                 givens, single_output, mode=mode, check_tol=check_tol,
                 no_default_updates=no_default_updates, data_parallel=data_parallel,
                 host_outputs=host_outputs, cuda_graph=cuda_graph)
    if explain:
        print(f.explain())
    return f
