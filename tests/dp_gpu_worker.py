"""One rank of the fake-GPU data-parallel MPI test (tests/test_dp_mpi.py): OUT [STEPS].

The float64 MLP of tests/dp_worker.py, trained on the fake CuPy device (tests/fake_cupy.py,
kernels run by the host emulator) with its gradients reduced through runtime/comm/nccl.py:
the fake NCCL checks pointers, counts, dtypes and stream order, and moves the bytes with MPI.
Rank 0 saves the parameters to OUT.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from tests import fake_cupy  # noqa: E402

cp, cpx = fake_cupy.module()
sys.modules.update({"cupy": cp, "cupy.cuda": cp.cuda, "cupy.cuda.nccl": cp.cuda.nccl,
                    "cupyx": cpx})

import flowc as fc  # noqa: E402
from flowc import parallel  # noqa: E402
from flowc_runtime import comm  # noqa: E402

out = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
w = parallel.world()
rng = np.random.default_rng(0)
x, y = fc.input("x", (None, 6)), fc.input("y", (None,))
W, b = fc.param("W", rng.standard_normal((6, 8))), fc.param("b", np.zeros(8))
v = fc.param("v", rng.standard_normal(8))
params = [W, b, v]
loss = fc.mean((fc.tanh(x @ W + b) @ v - y) ** 2)
gs = fc.grad(loss, params)
f = fc.function([x, y], loss, updates=[(p, p - 0.05 * g) for p, g in zip(params, gs)],
                data_parallel=w.size > 1 or None, device="gpu")
data = np.random.default_rng(1)
losses = []
for step in range(steps):
    X, Y = data.standard_normal((12, 6)), data.standard_normal(12)
    s = parallel.shard(12, w.rank, w.size)
    losses.append(float(f(X[s], Y[s]).get()))
if w.size > 1:
    assert type(comm.device_comm()).__name__ == "NCCLComm"
if w.rank == 0:
    values = {p.name: p.get_value() for p in params}
    np.savez(out, losses=np.array(losses), **values)
parallel.mark_done(w)
