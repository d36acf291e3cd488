"""Communicators for data-parallel programs: the world an `allreduce` kernel reduces over.

`current()` is the process's communicator: the one `set_comm` installed, else one made from
the environment on first use (an MPI launcher's variables → MPIComm, otherwise NullComm).
mpi4py is imported only when a launcher says the world has more than one process.
"""
from __future__ import annotations

import os

from .null import NullComm

_CURRENT = None

# Variables MPI launchers set in every rank (MPICH's hydra, Open MPI, Slurm's PMI).
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


def launched_size() -> int:
    """The world size an MPI launcher announced, 1 if none did (no MPI import)."""
    for var in SIZE_VARS[:2]:
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    return 1


DEFAULT_TIMEOUT = 600.0  # seconds a collective may wait for the slowest rank


def collective_timeout():
    """The watchdog's limit in seconds: FLOWC_COLLECTIVE_TIMEOUT (0 or "none": no watchdog)."""
    v = os.environ.get("FLOWC_COLLECTIVE_TIMEOUT", "").strip().lower()
    if not v:
        return DEFAULT_TIMEOUT
    if v in ("0", "none"):
        return None
    return float(v)


def current():
    """The communicator allreduce kernels use (made on first use)."""
    global _CURRENT
    if _CURRENT is None:
        if launched_size() > 1:
            from .mpi import MPIComm
            _CURRENT = MPIComm(timeout=collective_timeout())
        else:
            _CURRENT = NullComm()
    return _CURRENT


def set_comm(comm):
    """Install `comm` (None: detect again on next use); returns the previous one."""
    global _CURRENT
    old, _CURRENT = _CURRENT, comm
    return old


_DEVICE = None


def device_comm():
    """The communicator for device (CuPy) buffers: current() where it reduces device memory
    itself, else an NCCLComm bootstrapped over it (made once per communicator)."""
    global _DEVICE
    c = current()
    if hasattr(c, "device_allreduce_"):
        return c
    if _DEVICE is None or _DEVICE.host is not c:
        try:
            from cupy.cuda import nccl  # noqa: F401
        except ImportError as e:
            from ..errors import FlowcError
            raise FlowcError("a data-parallel program on the GPU with several processes "
                             f"needs CuPy's NCCL (cupy.cuda.nccl), which is missing ({e}); "
                             "run it on the CPU, or on one process") from None
        from .nccl import NCCLComm
        _DEVICE = NCCLComm(c)
    return _DEVICE


__all__ = ["NullComm", "current", "device_comm", "set_comm", "launched_size"]
