"""A simulated world inside one process: N ranks run one after the other, each with its own
LoopbackComm; a reduction returns the rank's value of the sum over ranks. Used by tests."""
from __future__ import annotations

import numpy as np


class LoopbackWorld:
    """Shared state of a simulated world: every rank's contributions, in call order.

    The ranks run their programs in turn (rank 0 completely, then rank 1, ...), recording
    each allreduce's operand; `reduce()` then sums call k over ranks, and a second pass in
    `replay` mode makes every rank's kth allreduce return that sum.
    """

    def __init__(self, size):
        self.size = size
        self.calls = [[] for _ in range(size)]
        self.sums = None

    def comm(self, rank):
        return LoopbackComm(self, rank)

    def reduce(self):
        """Sum the recorded calls over ranks (in rank order); switch to replay mode."""
        counts = {len(c) for c in self.calls}
        if len(counts) != 1:
            raise RuntimeError(f"ranks issued different numbers of collectives: {counts}")
        self.sums = [sum(c[k] for c in self.calls[1:]) + self.calls[0][k]
                     for k in range(counts.pop())]
        self.replayed = [0] * self.size


class LoopbackComm:
    """One rank of a LoopbackWorld (record pass, then replay pass)."""

    def __init__(self, world, rank):
        self.world, self.rank, self.size = world, rank, world.size

    def allreduce_(self, buf, op="sum"):
        w = self.world
        if w.sums is None:
            w.calls[self.rank].append(np.array(buf, copy=True))
            return buf
        k = w.replayed[self.rank]
        w.replayed[self.rank] += 1
        np.copyto(buf, w.sums[k])
        if op == "mean":
            np.divide(buf, self.size, out=buf)
        return buf

    def bcast_(self, buf, root=0):
        return buf

    def barrier(self):
        pass
