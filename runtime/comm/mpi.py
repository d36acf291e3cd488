"""MPIComm: collectives on NumPy buffers through mpi4py's buffer API (in place, no pickling)."""
from __future__ import annotations

import time

import numpy as np

from ..errors import FlowcError


SPIN = 0.05  # seconds a collective busy-waits before it sleeps between polls


class CollectiveTimeout(FlowcError):
    """A collective did not complete within the watchdog's time (a rank stopped answering)."""


class MPIComm:
    """A world of MPI processes; `timeout` (seconds, None: wait forever) arms a watchdog that
    aborts the whole job when a collective does not finish (a hung or dead peer)."""

    def __init__(self, comm=None, timeout=None):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = timeout

    def allreduce_(self, buf, op="sum"):
        """Reduce `buf` (a contiguous NumPy array) over every rank, in place."""
        if not buf.flags.c_contiguous:
            raise FlowcError("allreduce needs a contiguous buffer")
        if self.size > 1:
            if self.timeout is None:
                self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
            else:
                self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM),
                           "allreduce of %d bytes" % buf.nbytes)
        if op == "mean":
            np.divide(buf, self.size, out=buf)
        return buf

    def _wait(self, req, what):
        # MPI only progresses inside MPI calls: poll Test() and abort past the deadline, since
        # a blocking call would wait forever for a peer that stopped answering.
        now = time.monotonic()
        deadline = now + self.timeout
        # Spin for up to SPIN seconds first: a peer a few ms behind (one slower backward) is
        # the common case, and a sleep there adds up to its length to every step's exchange.
        spin_until = now + min(SPIN, self.timeout)
        while time.monotonic() < spin_until:
            if req.Test():
                return
        delay = 1e-5
        while not req.Test():
            if time.monotonic() > deadline:
                import sys
                print(f"flowc: rank {self.rank}: {what} did not complete within "
                      f"{self.timeout:g} s (a rank stopped answering); aborting the job",
                      file=sys.stderr, flush=True)
                self.abort(3)
            time.sleep(delay)
            delay = min(delay * 2, 1e-3)

    def bcast_(self, buf, root=0):
        """Broadcast NumPy array `buf` from `root` into every rank's `buf`, in place."""
        if self.size > 1:
            self.comm.Bcast(buf, root=root)
        return buf

    def gather(self, obj, root=0):
        """Python objects from every rank, a list on `root` (None elsewhere); pickled."""
        return self.comm.gather(obj, root=root)

    def barrier(self):
        if self.size > 1:
            if self.timeout is None:
                self.comm.Barrier()
            else:
                self._wait(self.comm.Ibarrier(), "barrier")

    def abort(self, code=1):
        """End the whole job; a moment first, so mpiexec forwards what this rank just wrote
        to stderr (an immediate Abort sometimes lost the message naming the rank)."""
        time.sleep(0.2)
        self.comm.Abort(code)
