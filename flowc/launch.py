"""`flowc launch -n N COMMAND ...`: run a flowc command (or a Python script) on N local
processes through the mpiexec that came with mpi4py's MPI, and make its exit status honest.

MPICH's mpiexec returns 0 when a rank exits with status 0 before the others finish (the
others are killed): every rank therefore leaves a done marker when it finishes, and a job
without all N markers fails, naming the ranks that did not finish.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from .ir.errors import FlowcError

DONE_DIR = "FLOWC_DONE_DIR"


def find_mpiexec():
    """mpiexec next to this Python (a venv's bin/, where the mpich wheel puts it), else PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("mpiexec")
    if found:
        return found
    raise FlowcError("no mpiexec found next to this Python or on PATH: install MPI with "
                     "`pip install 'flowc[mpi]'` (mpi4py and the mpich wheel)")


def command(n, argv, mpiexec=None):
    """The mpiexec command line for N ranks of `argv` (a flowc command, or SCRIPT.py ARGS)."""
    target = list(argv) if argv and argv[0].endswith(".py") else ["-m", "flowc"] + list(argv)
    # -m mpi4py: an uncaught exception in any rank aborts the whole job instead of leaving
    # the others waiting forever in their next collective.
    return [mpiexec or find_mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py"] + target


def launch(n, argv, collective_timeout=None, env=None):
    """Run argv on n processes; the exit status (non-zero unless every rank finished)."""
    if n < 1:
        raise FlowcError(f"-n must be at least 1, got {n}")
    if not argv:
        raise FlowcError("launch needs a command, e.g. `flowc launch -n 2 train MODEL`")
    mpiexec = find_mpiexec()
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.path.dirname(mpiexec) + os.pathsep + env.get("PATH", "")
    if collective_timeout is not None:
        env["FLOWC_COLLECTIVE_TIMEOUT"] = str(collective_timeout)
    done = tempfile.mkdtemp(prefix="flowc-launch-")
    env[DONE_DIR] = done
    try:
        rc = subprocess.call(command(n, argv, mpiexec), env=env)
        missing = [r for r in range(n) if not os.path.exists(os.path.join(done, f"done.{r}"))]
    finally:
        shutil.rmtree(done, ignore_errors=True)
    if rc == 0 and missing:
        print(f"flowc: error: rank{'s' * (len(missing) > 1)} "
              f"{', '.join(map(str, missing))} of {n} exited before finishing (no done "
              "marker); the job failed", file=sys.stderr)
        return 1
    return rc


def mark_done(rank):
    """Leave this rank's done marker for `flowc launch` (nothing when not launched by it)."""
    folder = os.environ.get(DONE_DIR)
    if folder and os.path.isdir(folder):
        with open(os.path.join(folder, f"done.{rank}"), "w"):
            pass
