"""NCCLComm: the gradient allreduce of a data-parallel GPU program, through CuPy's NCCL.

The pip MPI wheels are not CUDA-aware, so CuPy memory never goes to MPI: the host-side
collectives (broadcasting parameters, barriers, gathering outputs) stay on the MPI
communicator this one is bootstrapped from, and only device buffers go through NCCL. The
NCCL unique id is made by rank 0 and broadcast over MPI, as NCCL's documentation does.

NCCL runs on a stream of its own; events order it after the work that packed the bucket
(on the caller's current stream) and the caller's later work after it, so the reduction
neither reads a half-written bucket nor lets an unpack read a half-reduced one.
"""
from __future__ import annotations

_DTYPES = ("float16", "float32", "float64", "int32", "int64")


class NCCLComm:
    """One process's NCCL communicator (one GPU per process), made over `host` (an MPIComm:
    rank, size, and the MPI communicator for the unique id)."""

    def __init__(self, host):
        import cupy as cp
        from cupy.cuda import nccl
        self.cp, self.nccl, self.host = cp, nccl, host
        self.rank, self.size = host.rank, host.size
        uid = nccl.get_unique_id() if host.rank == 0 else None
        uid = host.comm.bcast(uid, root=0)   # a tuple of ints: pickling it is harmless
        self.comm = nccl.NcclCommunicator(host.size, uid, host.rank)
        self.stream = cp.cuda.Stream(non_blocking=True)
        self._types = {d: getattr(nccl, "NCCL_" + d.upper()) for d in _DTYPES}

    def device_allreduce_(self, x, op="sum"):
        """Reduce the contiguous CuPy array `x` over every process, in place; returns x."""
        if not x.flags.c_contiguous:
            raise ValueError("NCCL allreduce needs a contiguous buffer")
        dtype = str(x.dtype)
        if dtype not in self._types:
            raise TypeError(f"NCCL allreduce of {dtype}: supported are {', '.join(_DTYPES)}")
        caller = self.cp.cuda.get_current_stream()
        self.stream.wait_event(caller.record())
        self.comm.allReduce(x.data.ptr, x.data.ptr, x.size, self._types[dtype],
                            self.nccl.NCCL_SUM, self.stream.ptr)
        caller.wait_event(self.stream.record())
        if op == "mean":
            self.cp.divide(x, self.size, out=x)
        return x

    # Host-side collectives go to MPI (NumPy buffers only).
    def allreduce_(self, buf, op="sum"):
        return self.host.allreduce_(buf, op)

    def bcast_(self, buf, root=0):
        return self.host.bcast_(buf, root)

    def gather(self, obj, root=0):
        return self.host.gather(obj, root)

    def barrier(self):
        self.host.barrier()

    def abort(self, code=1):
        self.host.abort(code)
