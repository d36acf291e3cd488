"""The GPU backend, tested in two layers.

Without a GPU (CI): the clear error for device="gpu"; deterministic code generation; every
generated CUDA kernel of the test programs (the op table's rows alone, wrapped as out*3-1 and
sum(out*3-1) at O2, a logistic-regression step, an MLP step, the W3 expression and its
gradient) compiled with `nvcc --ptx -arch=sm_90` where nvcc is on PATH and with NVRTC as CuPy
compiles them (tests/nvrtc.py) where libnvrtc loads, and run on the CPU by the host emulator
(tests/gpu_emulator.py) against the NumPy kernels' results; the whole GPU backend (kernel
table, executable, CUDA-graph capture and replay, every op-table row) on a fake device as
strict as CuPy (tests/fake_cupy.py) against the CPU backend.

With a GPU (marker `gpu`; skipped cleanly without CuPy or a CUDA device): every op-table row
on the GPU equals NumPy within the row's tolerance, training reaches the CPU's cost, CUDA
graphs replay the same steps, outputs come back as CuPy or (host_outputs) NumPy arrays.
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import flowc as fc
import flowc_runtime as runtime
from flowc_runtime.gpu import codegen as cg
from flowc_runtime.gpu import launch_plan as cplan
from flowc_runtime.gpu.backend import GPUUnavailable, kernel_kinds, preview
from flowc_runtime.storage import Cell
from tests import fake_cupy
from tests import gpu_emulator as emu
from tests import nvrtc
from tests.opinfo import BY_NAME, SAMPLES
from tests.test_ops import assert_matches, build, draw


def _real_gpu():
    try:
        import cupy
        return bool(cupy.is_available())
    except Exception:
        return False


HAS_GPU = _real_gpu()
gpu = [pytest.mark.gpu,
       pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU and CuPy "
                          "(pip install 'flowc[gpu]')")]
NVCC = shutil.which("nvcc")


def host(x):
    """NumPy copies of (lists of) CuPy arrays."""
    if isinstance(x, list):
        return [host(v) for v in x]
    return x.get() if hasattr(x, "get") else np.asarray(x)


# -- test programs --------------------------------------------------------------------------------
def logreg_step(device="cpu", **link):
    from flowc.examples import logreg
    m = logreg.build()
    f = fc.function([m["x"], m["y"]], [m["cost"], m["prediction"]], device="cpu",
                    updates=[(m["w"], m["w"] - 0.1 * m["gw"]), (m["b"], m["b"] - 0.1 * m["gb"])])
    return f if device == "cpu" and not link else relink(f, device, **link)


def relink(f, device, **options):
    """f's Program linked for `device` with fresh parameter cells (its initial values)."""
    values = [f.program.values[f"param{i}"] for i in range(len(f.program.params))]
    return runtime.link(f.program, device=device, cells=[Cell(np.array(v)) for v in values],
                        single=len(f.outputs) == 1, **options)


def mlp_step(dtype="float32", n_in=20, hidden=32, n_out=5, seed=0):
    rng = np.random.default_rng(seed)
    x = fc.input("x", (None, n_in), dtype=dtype)
    y = fc.input("y", (None, n_out), dtype=dtype)
    W1 = fc.param("W1", (rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)).astype(dtype))
    b1 = fc.param("b1", np.zeros(hidden, dtype))
    W2 = fc.param("W2", (rng.standard_normal((hidden, n_out)) / np.sqrt(hidden)).astype(dtype))
    b2 = fc.param("b2", np.zeros(n_out, dtype))
    h = fc.relu(x @ W1 + b1)
    cost = -fc.mean(fc.sum(y * fc.log_softmax(fc.tanh(h @ W2 + b2), axis=1), axis=1))
    updates = fc.optim.momentum(cost, [W1, b1, W2, b2], lr=0.5, mu=0.9)
    return fc.function([x, y], cost, updates=updates)


def mlp_data(dtype="float32", n=64, n_in=20, n_out=5, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, n_in)).astype(dtype),
            np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, n)])


def w3_function():
    """W3 of the benchmark, small: sum(tanh(a*x+b)*sigmoid(x) + exp(-x*x)) and its gradient."""
    x = fc.input("x", (None,), dtype="float32")
    a = fc.param("a", np.float32(0.7))
    b = fc.param("b", np.float32(-0.2))
    cost = fc.sum(fc.tanh(a * x + b) * fc.sigmoid(x) + fc.exp(-x * x))
    return fc.function([x], [cost] + fc.grad(cost, [x, a, b]))


def w3_data(n=1000):
    return [np.random.default_rng(2).standard_normal(n).astype("float32")]


@pytest.fixture(scope="module")
def generated():
    """[(label, tolerance row or None, Generated)] over every test program (CPU runs)."""
    out = []
    with fc.Graph():
        for s in SAMPLES:
            with fc.Graph():
                xs, o = build(s)
                fs = [fc.function(xs, o, optimize="O1")]
                if np.dtype(o.dtype).kind in "fiu":
                    fs.append(fc.function(xs, [o * 3 - 1, fc.sum(o * 3 - 1)], optimize="O2"))
                for f in fs:
                    out += [(s.name, s, g) for g in preview(f.program, draw(s), sms=1)]
        from flowc.examples import logreg
        X, Y = logreg.make_data(0)
        progs = [("logreg", logreg_step().program, [X, Y]),
                 ("mlp", mlp_step().program, mlp_data()),
                 ("mlp64", mlp_step("float64").program, mlp_data("float64")),
                 ("w3", w3_function().program, w3_data())]
        for label, prog, args in progs:
            out += [(label, None, g) for g in preview(prog, args, sms=1)]
    return out


def _kernels(generated):
    return list({k.name: k for _, _, g in generated if g.plan for k in g.plan.sources}.values())


# -- without a GPU: errors ------------------------------------------------------------------------
def test_gpu_without_cupy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    x = fc.input("x", (3,))
    with pytest.raises(GPUUnavailable, match=r"needs CuPy.*pip install 'flowc\[gpu\]'"):
        fc.function([x], x * 2, device="gpu")


def test_gpu_without_a_device_says_so(monkeypatch):
    cp, _ = fake_cupy.module()
    cp.is_available = lambda: False
    monkeypatch.setitem(sys.modules, "cupy", cp)
    x = fc.input("x", (3,))
    with pytest.raises(GPUUnavailable, match="no usable CUDA device.*device='cpu'"):
        fc.function([x], x * 2, device="gpu")
    cp.is_available = lambda: 1 / 0  # a broken driver is reported, not raised raw
    with pytest.raises(GPUUnavailable, match="ZeroDivisionError"):
        runtime.link(fc.function([x], x * 2).program, device="gpu")


def test_cpu_accepts_and_ignores_the_gpu_options():
    x = fc.input("x", (3,))
    f = fc.function([x], x * 2)
    exe = runtime.link(f.program, device="cpu", host_outputs=True, cuda_graph=True)
    np.testing.assert_array_equal(exe(np.ones(3)), [2, 2, 2])


def test_codegen_needs_no_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    x = np.ones((4, 3), "float32")
    plan = cplan.elementwise_plan(("sigmoid", (), (("arg", 0),)), [x])
    assert 'extern "C" __global__' in plan.sources[0].source


# -- without a GPU: code generation -----------------------------------------------------------------
def test_every_fusable_op_has_cuda_code():
    fusable = sorted(n for n, o in fc.OPS.items() if o.elementwise
                     and n not in ("fused", "stop_gradient"))
    assert set(fusable) == set(cg.ELEMENTWISE_OPS), "an elementwise op has no CUDA code"
    for op in fusable:
        for dt in ("float32", "float64"):
            dts = ["bool"] + [dt] * (cg.ARITY[op] - 1) if op == "where" else [dt] * cg.ARITY[op]
            attrs = {"dtype": "float32"} if op == "cast" else {}
            fn, _ = cg.expression_function(cplan.node_expr(op, attrs, len(dts)), dts)
            assert "fc_expr" in fn


def _w3_kernel_names():
    with fc.Graph():
        prog, args = w3_function().program, w3_data()
    return [k.name for g in preview(prog, args, sms=1) for k in g.plan.sources]


def test_codegen_is_deterministic():
    # The same program gives the same kernels, in this process and in a fresh one whose
    # string hashing is seeded differently.
    names = _w3_kernel_names()
    assert names == _w3_kernel_names() and len(names) >= 3
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "from tests.test_gpu import _w3_kernel_names; print(' '.join(_w3_kernel_names()))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env=dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=root),
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == names


def test_generated_sources_name_themselves_by_hash(generated):
    for k in _kernels(generated):
        assert f'void {k.name}(' in k.source and k.name.startswith("flowc_")


def test_every_instruction_of_the_test_programs_is_planned(generated):
    assert generated and all(g.plan is not None for _, _, g in generated), \
        "an expression fell back to CuPy functions"
    kinds = {g.kernel for _, _, g in generated}
    assert {"fused", "fused_reduce", "sigmoid", "sum", "mean", "max"} <= kinds


@pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not on PATH")
def test_generated_kernels_compile_with_nvcc(generated, tmp_path):
    kernels = _kernels(generated)
    # All of them in one translation unit (one namespace each: every source is complete)...
    text = "\n".join(f"namespace ns_{k.name} {{\n{k.source}}}\n" for k in kernels)
    (tmp_path / "all.cu").write_text(text)
    res = subprocess.run([NVCC, "--ptx", "-arch=sm_90", "all.cu", "-o", "all.ptx"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "all.cu(" not in res.stderr, res.stderr[-4000:]  # no warning about our code
    ptx = (tmp_path / "all.ptx").read_text()
    missing = [k.name for k in kernels if f".entry {k.name}(" not in ptx]
    assert not missing, f"no PTX entry for {missing[:5]}"
    # ...and a few exactly as CuPy compiles them: one source per file.
    for k in [k for k in kernels if "rows" in k.source][:1] + kernels[:2]:
        (tmp_path / "one.cu").write_text(k.source)
        res = subprocess.run([NVCC, "--ptx", "-arch=sm_90", "one.cu", "-o", "one.ptx"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert res.returncode == 0, res.stderr[-4000:]


def _kernels_64(generated, monkeypatch):
    """The same kernels planned with 64-bit indices (as for arrays past 2**30 elements)."""
    from flowc_runtime.gpu.backend import make_plan
    monkeypatch.setattr(cplan, "INT32_SAFE", 0)
    plans = [make_plan(g.spec, g.args, sms=1) for _, _, g in generated if g.plan]
    monkeypatch.undo()
    return list({k.name: k for p in plans for k in p.sources}.values())


def _nvrtc_problems(log):
    """Warnings and errors in an NVRTC log, less the notes about precompiled headers."""
    return [ln for ln in log.splitlines() if re.search(r"\b(warning|error)\b", ln, re.I)
            and "precompiled header" not in ln and not ln.startswith("Remark")]


@pytest.mark.skipif(nvrtc.load() is None, reason=f"NVRTC cannot be loaded: {nvrtc.why()}")
def test_generated_kernels_compile_with_nvrtc_as_cupy_does(generated, monkeypatch, request):
    # Every kernel, one source per program as CuPy's RawKernel compiles it, with CuPy's
    # options, for sm_90 and sm_100, with 32- and 64-bit indices. Passes are remembered in
    # pytest's cache (by source, architecture, options and NVRTC version), so a rerun
    # compiles only what changed.
    import hashlib
    import time
    k32 = _kernels(generated)
    k64 = _kernels_64(generated, monkeypatch)
    assert k64 and all("long long" in k.source for k in k64)
    k64 = [k for k in k64 if k.name not in {k.name for k in k32}]  # e.g. random_uniform's
    tag = f"{nvrtc.version()}{nvrtc.CUPY_OPTIONS}"
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    passed = set(cache.get("flowc/nvrtc-passed", []) if cache else [])

    def key(k, arch):
        return hashlib.sha1(f"{tag} sm_{arch}\n{k.source}".encode()).hexdigest()
    jobs = [(k.source, k.name, arch) for arch in (90, 100) for k in k32 + k64]
    todo = [j for j in jobs if key(_Src(j[0]), j[2]) not in passed]
    t0 = time.perf_counter()
    results = nvrtc.compile_many(todo)
    took = time.perf_counter() - t0
    by = {(k.name, arch): k for arch in (90, 100) for k in k32 + k64}
    bad = [f"{n} sm_{a}: {log[-2000:]}" for n, a, ok, log, size in results
           if not ok or not size or _nvrtc_problems(log)]
    assert not bad, "\n".join(bad[:5])
    passed |= {key(by[(n, a)], a) for n, a, *_ in results}
    if cache:
        cache.set("flowc/nvrtc-passed", sorted(passed))
    print(f"NVRTC {nvrtc.version()}: {len(k32)} + {len(k64)} kernels (32/64-bit index) x 2 "
          f"archs = {len(jobs)} compiles, {len(todo)} run now in {took:.1f} s")


class _Src:
    def __init__(self, source):
        self.source = source


def _tols(row, dtype):
    if row is not None:
        return row.tols(dtype)
    return (1e-5, 1e-6) if dtype in ("float32", "float16") else (1e-10, 1e-12)


@pytest.mark.skipif(not emu.available(), reason="no C++20 compiler (g++) for the host emulator")
def test_generated_kernels_match_numpy_in_emulation(generated):
    emu.compile_kernels(_kernels(generated))
    bad = []
    for label, row, g in generated:
        got = emu.run(g.plan, g.args)
        want = np.asarray(g.result)
        if got.dtype != want.dtype or got.shape != want.shape:
            bad.append(f"{label} #{g.index} {g.kernel}: {got.dtype}{got.shape}, NumPy "
                       f"{want.dtype}{want.shape}")
            continue
        rtol, atol = _tols(row, want.dtype.name)
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0))) if g.spec[1] else 1.0
        if want.dtype.kind in "fc":
            ok = np.allclose(got, want, rtol=rtol, atol=atol * scale, equal_nan=True)
        else:
            ok = np.array_equal(got, want)
        if not ok:
            bad.append(f"{label} #{g.index} {g.kernel}: max |diff| "
                       f"{np.max(np.abs(got.astype(float) - want.astype(float)))}")
    assert not bad, "\n".join(bad[:20])


def test_reductions_use_both_strategies_and_two_passes():
    x = np.random.default_rng(0).standard_normal((300, 700))
    plans = {"rows": cplan.reduce_plan(cplan.ARG0, [x], "sum", (1,), False),
             "cols": cplan.reduce_plan(cplan.ARG0, [x], "sum", (0,), False),
             "all": cplan.reduce_plan(cplan.ARG0, [x], "sum", None, False)}
    assert "(rows)" in plans["rows"].sources[0].source
    assert "(cols)" in plans["cols"].sources[0].source
    assert len(plans["all"].launches) == 2 and plans["all"].work is not None  # partials, finish


# -- without a GPU: render data ---------------------------------------------------------------------
def test_kernel_kinds_say_how_each_instruction_runs():
    f = logreg_step()
    kinds = {k: kind for _, k, _, kind in kernel_kinds(f.program)}
    assert kinds["matmul"] == "cuBLAS"
    assert kinds["fused"] == kinds["fused_reduce"] == "generated CUDA"
    assert kinds["transpose"] == "view"
    nodes = {node for _, _, node, _ in kernel_kinds(f.program)}
    assert nodes == {ins.node for ins in f.program.instrs}


# -- without a GPU: the whole backend on a fake device ---------------------------------------------
@pytest.fixture
def fake_gpu(monkeypatch, generated):
    if not emu.available():
        pytest.skip("no C++20 compiler (g++) for the host emulator")
    emu.compile_kernels(_kernels(generated))  # one compile for what the programs launch
    cp = fake_cupy.install(monkeypatch)
    yield cp
    fake_cupy.uninstall()


def test_every_cpu_kernel_has_a_gpu_kernel_of_the_same_kind(fake_gpu):
    from flowc_runtime.gpu import kernels as kernels_cupy
    from flowc_runtime.cpu.kernels import KERNELS
    missing = sorted(set(KERNELS) - set(kernels_cupy.KERNELS))
    assert not missing, f"ops with no GPU kernel: {missing}"
    differ = [n for n in KERNELS if KERNELS[n].kind != kernels_cupy.KERNELS[n].kind]
    assert not differ, f"ops whose GPU kernel is of another kind (out/view): {differ}"


def test_a_sharded_draw_on_the_fake_device_matches_the_cpu(fake_gpu):
    """A data-parallel dropout mask (random_uniform marked sharded) on rank 1 of 2 takes the
    global batch's elements rank * size onwards on the GPU as on the CPU, bit for bit."""
    from flowc_runtime import comm
    from flowc_runtime.comm.loopback import LoopbackWorld
    x = fc.input("x", (None, 5))
    s = fc.random.Stream(seed=4)
    draws = [s.uniform(like=x), s.uniform(like=x, dtype="float32")]
    f = fc.function([x], draws, data_parallel=True, no_default_updates=True)
    assert [i.attrs.get("sharded") for i in f.program.instrs
            if i.kernel == "random_uniform"] == [True, True]
    dev = relink(f, "gpu")
    X = np.zeros((3, 5))
    old = comm.set_comm(LoopbackWorld(2).comm(1))
    try:
        for call in range(3):
            want, got = f(X), dev(X)
            for w, g in zip(want, got):
                np.testing.assert_array_equal(host(g), w)
    finally:
        comm.set_comm(old)
    whole = fc.function([x], draws, no_default_updates=True)(np.zeros((6, 5)))
    for w, g in zip(want, whole):
        np.testing.assert_array_equal(w, g[3:])   # rank 1's rows of the one-process draw


def test_training_on_fake_device_matches_cpu(fake_gpu):
    from flowc.examples import logreg
    X, Y = logreg.make_data(0)
    cpu, dev = logreg_step(), logreg_step("gpu")
    assert type(dev.cells[0].value) is fake_gpu.ndarray  # parameters live on the device
    for step in range(3):
        want, got = cpu(X, Y), dev(X if step % 2 else fake_gpu.asarray(X), Y)
        assert type(got[0]) is fake_gpu.ndarray  # outputs stay on the device by default
        np.testing.assert_allclose(host(got[0]), want[0], rtol=1e-13)
        np.testing.assert_array_equal(host(got[1]), want[1])
    for c_cpu, c_dev in zip(cpu.exe.cells, dev.cells):
        np.testing.assert_allclose(host(c_dev.value), c_cpu.value, rtol=1e-12, atol=1e-15)
    src = dev.cuda_source
    assert src.count('extern "C" __global__') >= 5 and "instruction" in src
    assert any(k == "fused_reduce" for _, k, _, _ in dev.kernel_sources())


def test_mlp_float32_on_fake_device_matches_cpu(fake_gpu):
    X, Y = mlp_data()
    with fc.Graph():
        f = mlp_step()
        cpu, dev = relink(f, "cpu"), relink(f, "gpu", host_outputs=True)
        for _ in range(3):
            want, got = cpu(X, Y), dev(X, Y)
            assert isinstance(got, np.ndarray) and type(got) is not fake_gpu.ndarray
            np.testing.assert_allclose(got, want, rtol=1e-5)


def test_input_errors_on_fake_device_are_the_cpus(fake_gpu):
    x = fc.input("x", (None, 3), dtype="float32")
    f = fc.function([x], fc.sum(x), device="gpu")
    with pytest.raises(fc.InputError, match="expected dtype float32, got float64"):
        f(fake_gpu.asarray(np.ones((2, 3))))
    with pytest.raises(fc.InputError, match=r"expected shape \(None, 3\), got \(2, 4\)"):
        f(fake_gpu.asarray(np.ones((2, 4), "float32")))
    assert float(host(f(fake_gpu.asarray(np.ones((2, 3), "int8"))))) == 6.0  # a safe cast


def test_cuda_graph_on_fake_device_replays_the_same_steps(fake_gpu):
    from flowc.examples import logreg
    X, Y = logreg.make_data(0)
    plain, graph = logreg_step("gpu"), logreg_step("gpu", cuda_graph=True)
    for step in range(5):
        want, got = plain(X, Y), graph(X, fake_gpu.asarray(Y))
        np.testing.assert_array_equal(host(got[0]), host(want[0]))
        np.testing.assert_array_equal(host(got[1]), host(want[1]))
        if step == 3:  # somebody swaps a parameter's array: captured again, still right
            graph.cells[0].value = graph.cells[0].value.copy()
    assert list(graph.graph_status().values()) == ["captured"]
    assert graph._graphs.captures == {next(iter(graph.graph_status())): 2}
    first = graph(X, Y)[0]
    value = host(first)
    graph(X, Y)
    assert type(first) is fake_gpu.ndarray
    np.testing.assert_array_equal(host(first), value)  # outputs are fresh arrays


def test_cuda_graph_capture_failure_falls_back(fake_gpu, monkeypatch):
    def refuse(self, mode=None):
        raise RuntimeError("operation not permitted when stream is capturing")
    monkeypatch.setattr(type(fake_gpu.cuda.Stream()), "begin_capture", refuse)
    x = fc.input("x", (None,), dtype="float32")
    w = fc.param("w", np.float32(1.5))
    f = fc.function([x], fc.sum(w * x), updates=[(w, w * 0.5)])
    g = relink(f, "gpu", cuda_graph=True)
    got = [float(host(g(np.ones(4, "float32")))) for _ in range(3)]
    assert got == [6.0, 3.0, 1.5]
    assert list(g.graph_status().values())[0].startswith("failed: RuntimeError")


def _op_row_body(s, cupy):
    """One op-table row on the GPU backend (real or fake `cupy`) against NumPy: O1 and O2,
    three calls (the second of a shape runs the buffered body), device inputs, an output
    written into a buffer, and the row fused into out*3-1 and its sum."""
    xs, out = build(s)
    wants = [np.asarray(s.ref(*draw(s, k))) for k in (0, 1)]
    for level in ("O1", "O2"):
        f = fc.function(xs, out, optimize=level, device="gpu")
        for k in (0, 1, 0):
            assert_matches(s, host(f(*draw(s, k))), wants[k], f"GPU {level}, draw {k}")
        got = f(*[cupy.asarray(a) for a in draw(s, 1)])  # device inputs too
        assert_matches(s, host(got), wants[1], f"GPU {level}, CuPy inputs")
    f = fc.function(xs, fc.stack([out]), optimize="O1", device="gpu")  # into a buffer
    for k in (0, 1, 0):
        assert_matches(s, host(f(*draw(s, k)))[0], wants[k], f"GPU buffered, draw {k}")
    if np.dtype(out.dtype).kind in "fiu":
        f = fc.function(xs, [out * 3 - 1, fc.sum(out * 3 - 1)], optimize="O2", device="gpu")
        for k in (0, 1, 0):
            got = host(f(*draw(s, k)))
            assert_matches(s, got[0], wants[k] * 3 - 1, f"GPU fused, draw {k}")
            assert_matches(s, got[1], np.sum(wants[k] * 3 - 1), f"GPU fused sum, draw {k}")


ROWS = [pytest.param(s, id=s.name) for s in SAMPLES]


@pytest.mark.parametrize("s", ROWS)
def test_op_row_on_fake_device_matches_numpy(fake_gpu, s):
    # Every row, the real-GPU test's body, on the strict fake: generated CUDA in the host
    # emulator, CuPy functions on device arrays NumPy cannot see.
    _op_row_body(s, fake_gpu)


# -- with a GPU -------------------------------------------------------------------------------------

@pytest.mark.parametrize("s", ROWS)
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU and CuPy (pip install 'flowc[gpu]')")
def test_op_row_on_gpu_matches_numpy(s):
    import cupy
    _op_row_body(s, cupy)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU and CuPy (pip install 'flowc[gpu]')")
def test_logreg_training_reaches_the_cpu_cost_on_gpu():
    import cupy
    from flowc.examples import logreg
    X, Y = logreg.make_data(0)
    cpu, dev = logreg_step(), logreg_step("gpu")
    for _ in range(200):
        want, got = cpu(X, Y), dev(X, Y)
    assert type(got[0]) is cupy.ndarray and type(dev.cells[0].value) is cupy.ndarray
    np.testing.assert_allclose(host(got[0]), want[0], rtol=1e-10)
    np.testing.assert_allclose(host(dev.cells[0].value), cpu.exe.cells[0].value, rtol=1e-8,
                               atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU and CuPy (pip install 'flowc[gpu]')")
@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-4), ("float64", 1e-10)])
def test_mlp_training_reaches_the_cpu_cost_on_gpu(dtype, rtol):
    X, Y = mlp_data(dtype, n=256)
    f = mlp_step(dtype)
    cpu, dev = relink(f, "cpu"), relink(f, "gpu", host_outputs=True)
    for _ in range(100):
        want, got = cpu(X, Y), dev(X, Y)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, want, rtol=rtol)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU and CuPy (pip install 'flowc[gpu]')")
def test_cuda_graph_replays_the_same_steps_on_gpu():
    from flowc.examples import logreg
    X, Y = logreg.make_data(0)
    plain, graph = logreg_step("gpu"), logreg_step("gpu", cuda_graph=True)
    for _ in range(20):
        want, got = plain(X, Y), graph(X, Y)
        np.testing.assert_allclose(host(got[0]), host(want[0]), rtol=1e-12)
    assert list(graph.graph_status().values()) == ["captured"], graph.graph_status()
    np.testing.assert_allclose(host(graph.cells[0].value), host(plain.cells[0].value), rtol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU and CuPy (pip install 'flowc[gpu]')")
def test_w3_and_its_gradient_on_gpu():
    f = w3_function()
    (x,) = w3_data(100_000)
    want = f(x)
    got = host(relink(f, "gpu")(x))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-3)
