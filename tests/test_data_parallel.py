"""The data_parallel pass and its ops in one process: the bucket layout, a simulated world
(flowc_runtime.comm.loopback) against the full-batch step, save/load, the picture."""
import sys

import numpy as np
import pytest

import flowc as fc
import flowc_runtime as runtime
from flowc.passes.data_parallel import data_parallel
from flowc.render.dot import to_dot
from flowc_runtime import comm
from flowc_runtime.comm.loopback import LoopbackWorld


def mlp(dtype="float64", seed=0):
    """A two-layer regression net with SGD updates; (inputs, loss, params, updates)."""
    rng = np.random.default_rng(seed)
    x = fc.input("x", (None, 6), dtype)
    y = fc.input("y", (None,), dtype)
    W = fc.param("W", rng.standard_normal((6, 4)), dtype)
    b = fc.param("b", np.zeros(4), dtype)
    v = fc.param("v", rng.standard_normal(4), dtype)
    loss = fc.mean((fc.tanh(x @ W + b) @ v - y) ** 2)
    params = [W, b, v]
    gs = fc.grad(loss, params)
    return [x, y], loss, params, [(p, p - 0.1 * g) for p, g in zip(params, gs)]


def batch(n=12, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)), rng.standard_normal(n)


@pytest.fixture(autouse=True)
def null_comm():
    old = comm.set_comm(comm.NullComm())
    yield
    comm.set_comm(old)


def ops_of(f):
    return [i.kernel for i in f.program.instrs]


def test_one_process_is_unchanged():
    ins, loss, params, ups = mlp()
    X, Y = batch()
    f = fc.function(ins, loss, updates=ups, data_parallel=True)
    g = fc.function(ins, loss, updates=ups)
    assert ops_of(f).count("allreduce") == 2  # one gradient bucket, one for the loss
    assert "allreduce" not in ops_of(g)


def test_bucket_layout_backward_order_and_cap():
    ins, loss, params, ups = mlp()
    f = fc.function(ins, loss, updates=ups, data_parallel=dict(bucket_bytes=0))
    unpacks = [i for i in f.program.instrs if i.kernel == "grad_unpack"]
    # bucket_bytes=0: one bucket per gradient, in the order backward makes them (v first)
    assert [tuple(i.attrs["shape"]) for i in unpacks if i.attrs["shape"]] == [(4,), (4,), (6, 4)]
    assert ops_of(f).count("allreduce") == 3 + 1


def test_buckets_keep_one_dtype():
    x = fc.input("x", (3,), "float32")
    a = fc.param("a", np.ones(3), "float32")
    c = fc.param("c", np.ones(3), "float64")
    loss = fc.sum(x * a) + fc.sum(fc.cast(x, "float64") * c)
    ga, gc = fc.grad(loss, [a, c])
    f = fc.function([x], [], updates=[(a, a - ga), (c, c - gc)], data_parallel=True)
    packs = [i for i in f.program.instrs if i.kernel == "grad_pack"]
    assert sorted(i.dtype for i in packs) == ["float32", "float64"]


def run_world(f, params, shards):
    """Run one training step of f on each shard as the ranks of a simulated world; returns
    each rank's params after the step (they must agree)."""
    start = [p.get_value() for p in params]
    world = LoopbackWorld(len(shards))
    results = []
    for replay in (False, True):
        if replay:
            world.reduce()
        for r, shard in enumerate(shards):
            for p, v in zip(params, start):
                p.set_value(v.copy())
            comm.set_comm(world.comm(r))
            loss = f(*shard)
            if replay:
                results.append(([p.get_value() for p in params], float(loss)))
    comm.set_comm(comm.NullComm())
    return results


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("bucket_bytes", [0, 1 << 20])
def test_simulated_world_equals_full_batch(world_size, bucket_bytes):
    ins, loss, params, ups = mlp()
    X, Y = batch(12)
    full = fc.function(ins, loss, updates=ups)
    start = [p.get_value() for p in params]
    full_loss = float(full(X, Y))
    want = [p.get_value() for p in params]
    for p, v in zip(params, start):
        p.set_value(v)
    f = fc.function(ins, loss, updates=ups, data_parallel=dict(bucket_bytes=bucket_bytes))
    k = 12 // world_size
    shards = [(X[r * k:(r + 1) * k], Y[r * k:(r + 1) * k]) for r in range(world_size)]
    for got, got_loss in run_world(f, params, shards):
        assert got_loss == pytest.approx(full_loss, rel=1e-12)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_saved_program_keeps_the_exchange(tmp_path):
    ins, loss, params, ups = mlp()
    X, Y = batch()
    f = fc.function(ins, loss, updates=ups, data_parallel=True)
    f.save(str(tmp_path / "dp"))
    exe = runtime.load(str(tmp_path / "dp"))
    assert [i.kernel for i in exe.program.instrs].count("allreduce") == 2
    np.testing.assert_allclose(exe(X, Y), f(X, Y), rtol=1e-12)


def test_saved_program_refuses_bad_collective_attrs(tmp_path):
    import json
    ins, loss, params, ups = mlp()
    fc.function(ins, loss, updates=ups, data_parallel=True).save(str(tmp_path / "dp"))
    path = tmp_path / "dp.json"
    doc = json.loads(path.read_text())
    for ins_ in doc["instrs"]:
        if ins_["kernel"] == "allreduce":
            ins_["attrs"]["op"] = "max"
    path.write_text(json.dumps(doc))
    with pytest.raises(runtime.ProgramFileError, match="op"):
        runtime.load(str(tmp_path / "dp"))


def test_picture_shows_the_exchange():
    ins, loss, params, ups = mlp()
    f = fc.function(ins, loss, updates=ups, data_parallel=True)
    dot = to_dot(f, stage="optimized")
    assert "allreduce" in dot and "grad_pack" in dot and "data-parallel exchange" in dot


def test_pass_without_updates_is_a_no_op():
    ins, loss, params, ups = mlp()
    f = fc.function(ins, [], updates=[], data_parallel=dict(reduce_outputs=False))
    assert "allreduce" not in ops_of(f)


def test_one_process_never_imports_mpi():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys, numpy as np, flowc as fc\n"
            "x = fc.input('x', (None, 2)); w = fc.param('w', np.ones(2))\n"
            "loss = fc.mean(x @ w); g, = fc.grad(loss, [w])\n"
            "f = fc.function([x], loss, updates=[(w, w - g)], data_parallel=True)\n"
            "f(np.ones((4, 2)))\n"
            "from flowc import parallel; parallel.broadcast_params([w]); parallel.mark_done()\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_"))}
    r = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_broadcast_params_keeps_a_0_d_param_0_d():
    """Adam's step count is a 0-d param: np.ascontiguousarray made it 1-d, and the first step
    of a data-parallel run with Adam failed on its shape."""
    from flowc.parallel import broadcast_params
    t = fc.param("t", np.array(3.0))
    w = fc.param("w", np.arange(6.0).reshape(2, 3))
    broadcast_params([t, w], LoopbackWorld(2).comm(1))
    assert t.get_value().shape == () and t.get_value() == 3.0
    assert w.get_value().shape == (2, 3)


def dropout_mlp(stream_seed=5):
    """mlp() with dropout (p=0.5) and a normal noise on the hidden layer: both are draws as
    long as the batch; (inputs, loss, params, updates, the stream's state param)."""
    rng = np.random.default_rng(0)
    x, y = fc.input("x", (None, 6)), fc.input("y", (None,))
    W, b = fc.param("W", rng.standard_normal((6, 4))), fc.param("b", np.zeros(4))
    v = fc.param("v", rng.standard_normal(4))
    s = fc.random.Stream(seed=stream_seed)
    h = fc.tanh(x @ W + b)
    h = h * fc.cast(s.binomial(like=h, p=0.5), "float64") * 2.0 + s.normal(like=h, std=0.1)
    loss = fc.mean((h @ v - y) ** 2)
    params = [W, b, v]
    gs = fc.grad(loss, params)
    return [x, y], loss, params, [(p, p - 0.1 * g) for p, g in zip(params, gs)], s.state


@pytest.mark.parametrize("world_size", [2, 3])
def test_dropout_draws_are_keyed_by_the_global_example(world_size):
    """A data-parallel step with dropout equals the one-process step of the global batch:
    each process draws its shard's rows of the global batch's numbers (the draws are marked
    sharded), for three steps in a row (the stream advances alike)."""
    ins, loss, params, ups, state = dropout_mlp()
    X, Y = batch(12)
    full = fc.function(ins, loss, updates=ups)
    f = fc.function(ins, loss, updates=ups, data_parallel=True)
    assert sum(i.attrs.get("sharded", False) for i in f.program.instrs) == 3   # normal: 2
    assert not any("sharded" in i.attrs for i in full.program.instrs)   # older runtimes run it
    k = 12 // world_size
    shards = [(X[r * k:(r + 1) * k], Y[r * k:(r + 1) * k]) for r in range(world_size)]
    for step in range(3):
        start = [p.get_value() for p in params + [state]]
        full_loss = float(full(X, Y))
        want = [p.get_value() for p in params]
        for p, v in zip(params + [state], start):
            p.set_value(v)
        for got, got_loss in run_world(f, params + [state], shards):
            assert got_loss == pytest.approx(full_loss, rel=1e-12), step
            for a, b in zip(got[:len(params)], want):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        for p, v in zip(params + [state], got):
            p.set_value(v)


def test_an_unsharded_draw_differs_between_processes_only_by_design():
    """A draw of a fixed size is not sharded: every process draws the same numbers, as one
    process does (a noise added to a parameter, say)."""
    x = fc.input("x", (None, 3))
    s = fc.random.Stream(seed=1)
    f = fc.function([x], fc.sum(x * s.uniform((3,))), data_parallel=True)
    assert not any(i.attrs.get("sharded") for i in f.program.instrs)


def test_running_statistics_are_averaged_over_the_processes():
    """A state update computed from the process's own rows (BatchNorm's running mean and
    variance) is averaged over the processes, so every process keeps the same state; for
    equal shards the running mean is the one-process value. Updates from reduced gradients
    and the stream's counter are not exchanged again."""
    ins, loss, params, ups = mlp()
    x = ins[0]
    rm, rv = fc.param("rm", np.zeros(6)), fc.param("rv", np.ones(6))
    ups = ups + [(rm, 0.9 * rm + 0.1 * fc.mean(x, axis=0)),
                 (rv, 0.9 * rv + 0.1 * fc.mean((x - fc.mean(x, axis=0)) ** 2, axis=0))]
    f = fc.function(ins, loss, updates=ups, data_parallel=True)
    assert sum(i.kernel == "allreduce" for i in f.program.instrs) == 3   # grads, stats, loss
    X, Y = batch(12)
    full = fc.function(ins, loss, updates=ups)
    full(X, Y)
    want_rm = rm.get_value()
    rm.set_value(np.zeros(6))
    rv.set_value(np.ones(6))
    shards = [(X[:6], Y[:6]), (X[6:], Y[6:])]
    results = run_world(f, params + [rm, rv], shards)
    (a, _), (b, _) = results
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)          # every process holds the same state
    np.testing.assert_allclose(a[-2], want_rm, rtol=1e-14)
    local_var = [np.var(s[0], axis=0) for s in shards]
    np.testing.assert_allclose(a[-1], 0.9 + 0.1 * np.mean(local_var, axis=0), rtol=1e-14)


def test_several_gpu_processes_without_nccl_say_what_is_missing(monkeypatch):
    """CuPy memory never goes to MPI (the pip wheels are not CUDA-aware): without CuPy's NCCL
    the device allreduce refuses, naming what is missing and what to do instead."""
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", None)
    old = comm.set_comm(LoopbackWorld(2).comm(0))
    try:
        with pytest.raises(fc.FlowcError, match=r"needs CuPy's NCCL .*on the CPU, or on one"):
            comm.device_comm()
    finally:
        comm.set_comm(old)
