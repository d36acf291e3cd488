"""One rank of the data-parallel MPI tests (tests/test_dp_mpi.py): MODE OUT [STEPS BUCKET].

train: a float64 MLP trained STEPS steps on seeded global batches of 12 rows, each rank on its
shard; rank 0 saves the parameters to OUT. saved: the same with the Program saved by rank 0
and loaded by every rank (flowc_runtime.load). raise / hang / exit0: rank 1 fails at step 2.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import flowc as fc  # noqa: E402
from flowc import parallel  # noqa: E402

mode, out = sys.argv[1], sys.argv[2]
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
bucket = int(sys.argv[4]) if len(sys.argv) > 4 else 4 << 20
w = parallel.world()
rng = np.random.default_rng(0)
x = fc.input("x", (None, 6), "float64")
y = fc.input("y", (None,), "float64")
W = fc.param("W", rng.standard_normal((6, 32)))
b = fc.param("b", np.zeros(32))
V = fc.param("V", rng.standard_normal((32, 8)))
v = fc.param("v", rng.standard_normal(8))
if w.rank != 0:  # rank 0's values must win
    for p in (W, V):
        p.set_value(p.get_value() + 1.0)
parallel.broadcast_params([W, b, V, v], w)
loss = fc.mean((fc.tanh(fc.tanh(x @ W + b) @ V) @ v - y) ** 2)
params = [W, b, V, v]
gs = fc.grad(loss, params)
f = fc.function([x, y], loss, updates=[(p, p - 0.05 * g) for p, g in zip(params, gs)],
                data_parallel=dict(bucket_bytes=bucket))
if mode == "infer":  # sharded inference, outputs gathered on rank 0
    pred = fc.function([x], fc.tanh(fc.tanh(x @ W + b) @ V) @ v)
    X = np.random.default_rng(2).standard_normal((12, 6))
    rows = parallel.gather_rows(pred(X[parallel.shard(12, w.rank, w.size)]), w)
    if w.rank == 0:
        np.savez(out, gathered=rows, full=pred(X))
    parallel.mark_done(w)
    sys.exit(0)
step_fn = f
if mode == "saved":
    import flowc_runtime
    if w.rank == 0:
        f.save(out + "-program")
    w.barrier()
    step_fn = flowc_runtime.load(out + "-program")
data = np.random.default_rng(1)
losses = []
for step in range(steps):
    X, Y = data.standard_normal((12, 6)), data.standard_normal(12)
    if step == 2 and w.rank == 1 and mode != "train":
        if mode == "raise":
            raise RuntimeError("injected failure")
        if mode == "hang":
            time.sleep(60)
        if mode == "exit0":
            os._exit(0)
    s = parallel.shard(12, w.rank, w.size)
    losses.append(float(step_fn(X[s], Y[s])))
if w.rank == 0:
    if mode == "saved":
        values = {p["name"]: c.value for p, c in zip(step_fn.program.params, step_fn.cells)}
    else:
        values = {p.name: p.get_value() for p in params}
    np.savez(out, losses=np.array(losses), **values)
parallel.mark_done(w)
