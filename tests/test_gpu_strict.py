"""The GPU backend's fixes for what real CuPy rejects, tested on a fake device that rejects it
too (tests/fake_cupy.py) and on a real GPU where there is one (marker `gpu`), and the fake's
own strictness. Each fix is checked against the CPU (NumPy) at every optimize level, on the
first, second and third call."""
import numpy as np
import pytest

import flowc as fc
from tests import fake_cupy
from tests import gpu_emulator as emu
from tests.test_gpu import gpu, host, mlp_data, mlp_step, relink

LEVELS = ("O0", "O1", "O2")


@pytest.fixture
def fake(monkeypatch):
    if not emu.available():
        pytest.skip("no C++ compiler (g++) for the host emulator")
    cp = fake_cupy.install(monkeypatch)
    yield cp
    fake_cupy.uninstall()


@pytest.fixture(params=["fake", pytest.param("gpu", marks=gpu)])
def device(request, monkeypatch):
    """The fixes' tests run on the strict fake, and on a real GPU where there is one."""
    if request.param == "gpu":
        import cupy
        yield cupy
        return
    if not emu.available():
        pytest.skip("no C++ compiler (g++) for the host emulator")
    yield fake_cupy.install(monkeypatch)
    fake_cupy.uninstall()


# -- the fake refuses what CuPy refuses -----------------------------------------------------------
def test_fake_device_arrays_are_not_numpy_arrays(fake):
    d = fake.asarray(np.arange(6.0).reshape(2, 3))
    assert not isinstance(d, np.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(d)
    with pytest.raises(TypeError, match="NumPy's exp applied to a device array"):
        np.exp(d)
    with pytest.raises(TypeError, match="numpy.sum applied to a device array"):
        np.sum(d)
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        fake.add(d, np.ones(3))
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        d + np.ones(3)
    np.testing.assert_array_equal((d * 2).get(), np.arange(6.0).reshape(2, 3) * 2)


def test_fake_set_checks_shape_and_dtype_as_cupy(fake):
    d = fake.empty((), "float64")
    with pytest.raises(ValueError, match=r"Shape mismatch. Old shape: \(\), new shape: \(1,\)"):
        d.set(np.ascontiguousarray(np.float64(2.0)))
    with pytest.raises(TypeError, match="float32 array cannot be set to float64 array"):
        d.set(np.asarray(1.0, "float32"))
    d.set(np.asarray(2.0))
    assert float(d) == 2.0


def test_fake_refuses_library_calls_and_host_copies_during_capture(fake):
    a = fake.asarray(np.eye(3))
    s = fake.cuda.Stream(non_blocking=True)
    fake.cuda.get_current_stream().synchronize()
    with s:
        s.begin_capture()
        with pytest.raises(NotImplementedError, match="cuBLAS/cuSOLVER"):
            fake.matmul(a, a)
        with pytest.raises(NotImplementedError, match="cuBLAS/cuSOLVER"):
            fake.linalg.inv(a)
        with pytest.raises(RuntimeError, match="capturing"):
            a.get()
        b = a * 2  # generated elementwise work is captured, not run
        g = s.end_capture()
    b.fill(0)
    g.launch()
    np.testing.assert_array_equal(b.get(), 2 * np.eye(3))


def test_fake_streams_catch_a_read_before_another_stream_finished_writing(fake):
    a = fake.asarray(np.ones(4))  # written on the null stream, not synchronized
    s = fake.cuda.Stream(non_blocking=True)
    with s, pytest.raises(RuntimeError, match="stream race"):
        a * 2
    fake.cuda.get_current_stream().synchronize()
    with s:
        b = a * 2
    with pytest.raises(RuntimeError, match="stream race"):
        b + 1  # b is written on s, which has not finished
    s.synchronize()
    np.testing.assert_array_equal((b + 1).get(), [3, 3, 3, 3])


def test_fake_solve_wants_matching_leading_dims_as_cupy(fake):
    a = fake.asarray(np.stack([np.eye(3)] * 2))
    with pytest.raises(ValueError, match="same leading dims"):
        fake.linalg.solve(a, fake.asarray(np.ones((3, 1))))


# -- bug 1: CUDA graphs around cuBLAS / cuSOLVER calls --------------------------------------------
def test_cuda_graph_replays_an_mlp_step_with_gemms(device):
    X, Y = mlp_data("float64", n=16)
    f = mlp_step("float64")
    cpu, graph = relink(f, "cpu"), relink(f, "gpu", cuda_graph=True)
    for step in range(5):
        want, got = cpu(X, Y), graph(X, Y)
        np.testing.assert_allclose(host(got), want, rtol=1e-12, err_msg=f"step {step}")
    assert list(graph.graph_status().values()) == ["captured"], graph.graph_status()
    ((graphs, calls),) = graph.graph_parts().values()
    assert calls >= 4 and 2 <= graphs <= calls + 1  # forward and backward GEMMs
    for c_cpu, c_gpu in zip(cpu.cells, graph.cells):
        np.testing.assert_allclose(host(c_gpu.value), c_cpu.value, rtol=1e-12)


@pytest.mark.parametrize("level", LEVELS)
def test_cuda_graph_replays_solve_inv_slogdet(device, level):
    rng = np.random.default_rng(3)
    a = fc.input("a", (3, 3))
    b = fc.input("b", (3, 2))
    w = fc.param("w", np.float64(1.0))
    cost = fc.sum(fc.solve(a * w, b)) + fc.sum(fc.inv(a)) + fc.slogdet(a)[1] * w
    f = fc.function([a, b], cost, updates=[(w, w + 0.25)], optimize=level)
    cpu, graph = relink(f, "cpu"), relink(f, "gpu", cuda_graph=True)
    A = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    B = rng.standard_normal((3, 2))
    for call in range(4):
        np.testing.assert_allclose(float(host(graph(A, B))), float(cpu(A, B)), rtol=1e-12,
                                   err_msg=f"{level} call {call + 1}")
    assert list(graph.graph_status().values()) == ["captured"], graph.graph_status()


# -- bug 2: solve with a shared right-hand side ---------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("bshape", [(3, 1), (3, 2), (4, 3, 2)])
def test_solve_broadcasts_as_numpy_on_the_gpu(device, level, bshape):
    rng = np.random.default_rng(4)
    ashape = (4, 3, 3) if len(bshape) < 3 else (3, 3)
    a, b = fc.input("a", ashape), fc.input("b", bshape)
    f = fc.function([a, b], fc.solve(a, b) * 2, optimize=level, device="gpu")
    for call in range(3):
        A = rng.standard_normal(ashape) + 3 * np.eye(3)
        B = rng.standard_normal(bshape)
        np.testing.assert_allclose(host(f(A, B)), np.linalg.solve(A, B) * 2, rtol=1e-12,
                                   err_msg=f"{level} call {call + 1}")


# -- bug 3: graph replay with a 0-d input ---------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_cuda_graph_replay_with_a_0d_input(device, level):
    s = fc.input("s", ())
    x = fc.input("x", (None,))
    f = fc.function([s, x], fc.sum(x * s) + s, optimize=level)
    cpu, graph = relink(f, "cpu"), relink(f, "gpu", cuda_graph=True)
    for call in range(4):
        S, X = np.float64(call + 0.5), np.arange(5.0) - call
        np.testing.assert_allclose(float(host(graph(S, X))), float(cpu(S, X)), rtol=1e-14,
                                   err_msg=f"{level} call {call + 1}")
    assert list(graph.graph_status().values()) == ["captured"], graph.graph_status()


# -- bug 4: an in-place kernel handed a buffer another of its operands views ----------------------
@pytest.mark.parametrize("level", LEVELS)
def test_in_place_kernel_never_gets_a_buffer_an_operand_views(device, level):
    rng = np.random.default_rng(5)
    x = fc.input("x", (4, 4))
    w = fc.input("w", (4, 4))
    t = fc.exp(x)
    f = fc.function([x, w], (t + t.T) @ w, optimize=level, device="gpu")
    for call in range(3):
        X, W = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
        T = np.exp(X)
        np.testing.assert_allclose(host(f(X, W)), (T + T.T) @ W, rtol=1e-12,
                                   err_msg=f"{level} call {call + 1}")


# -- a launch scalar of -1 or -2 (a reversed operand's stride) was bound as a buffer --------------
@pytest.mark.parametrize("level", LEVELS)
def test_reversed_operands_pass_their_negative_strides(device, level):
    rng = np.random.default_rng(6)
    x = fc.input("x", (5, 4))
    y = fc.input("y", (5, 4))
    f = fc.function([x, y], [x[::-1] * 3 - y, fc.sum(x[:, ::-2] * 2, axis=1)], optimize=level,
                    device="gpu")
    for call in range(3):
        X, Y = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
        got = host(f(X, Y))
        np.testing.assert_allclose(got[0], X[::-1] * 3 - Y, rtol=1e-14,
                                   err_msg=f"{level} call {call + 1}")
        np.testing.assert_allclose(got[1], np.sum(X[:, ::-2] * 2, axis=1), rtol=1e-14,
                                   err_msg=f"{level} call {call + 1}")


@pytest.mark.parametrize("level", LEVELS)
def test_cuda_graph_with_library_calls_first_and_in_a_row(device, level):
    # inv straight from an input, then a matmul of its result: no graph before or between.
    a = fc.input("a", (3, 3))
    w = fc.param("w", np.eye(3))
    y = fc.inv(a) @ w
    f = fc.function([a], fc.sum(y), updates=[(w, w * 0.5)], optimize=level)
    cpu, graph = relink(f, "cpu"), relink(f, "gpu", cuda_graph=True)
    A = np.random.default_rng(7).standard_normal((3, 3)) + 3 * np.eye(3)
    for call in range(4):
        np.testing.assert_allclose(float(host(graph(A))), float(cpu(A)), rtol=1e-12,
                                   err_msg=f"{level} call {call + 1}")
    ((graphs, calls),) = graph.graph_parts().values()
    assert calls == 2 and graphs == 1, graph.graph_parts()
