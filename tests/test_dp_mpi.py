"""Real MPI jobs of 2 and 3 processes (mpiexec from the mpi4py/mpich wheels): equality with
one process, run-to-run and bucketing determinism, a saved data-parallel Program, resume
across world sizes, and the fault cases. Skipped where mpi4py or mpiexec is missing."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from flowc.launch import command

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "dp_worker.py")
BIN = os.path.dirname(sys.executable)
MPIEXEC = os.path.join(BIN, "mpiexec")


def _have_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return os.access(MPIEXEC, os.X_OK)


pytestmark = pytest.mark.skipif(not _have_mpi(), reason="needs mpi4py and its mpiexec "
                                "(pip install -e '.[mpi]')")


def env(**extra):
    """One BLAS thread per process (BLAS threading alone changes the bits), mpiexec's folder
    on PATH (its hydra proxy is found there), and no world variables of an outer job."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MPI_"))}
    e.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
             PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    e.update({k: str(v) for k, v in extra.items()})
    return e


def run(n, *args, timeout=60, **extra):
    """The worker on n processes (n=1: plain python); the CompletedProcess."""
    cmd = command(n, [WORKER, *map(str, args)], MPIEXEC) if n > 1 else \
        [sys.executable, WORKER, *map(str, args)]
    return subprocess.run(cmd, env=env(**extra), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def train(tmp_path, n, name, steps=3, bucket=4 << 20, mode="train"):
    out = tmp_path / f"{name}.npz"
    r = run(n, mode, out, steps, bucket)
    assert r.returncode == 0, r.stderr[-2000:]
    z = np.load(out)
    return [z[k] for k in sorted(z.files)]


@pytest.mark.parametrize("n", [2, 3])
def test_n_processes_equal_one(tmp_path, n):
    one = train(tmp_path, 1, "one")
    many = train(tmp_path, n, f"n{n}")
    for a, b in zip(one, many):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)


def test_two_runs_are_bitwise_equal_and_buckets_do_not_matter(tmp_path):
    a = train(tmp_path, 2, "a")
    b = train(tmp_path, 2, "b")
    per_tensor = train(tmp_path, 2, "c", bucket=0)
    for x, y, z in zip(a, b, per_tensor):
        assert np.array_equal(x, y)
        assert np.array_equal(x, z)  # with 2 ranks, a + b is b + a exactly


@pytest.mark.parametrize("n", [1, 2])
def test_saved_program_runs_on_one_or_n_processes(tmp_path, n):
    live = train(tmp_path, 1, "live")
    loaded = train(tmp_path, n, f"loaded{n}", mode="saved")
    for a, b in zip(live, loaded):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)


def test_sharded_inference_gathers_on_rank_0(tmp_path):
    r = run(3, "infer", tmp_path / "p.npz")
    assert r.returncode == 0, r.stderr[-2000:]
    z = np.load(tmp_path / "p.npz")
    assert z["gathered"].shape == (12,)
    np.testing.assert_allclose(z["gathered"], z["full"], rtol=1e-12)


def test_exception_on_one_rank_ends_the_job(tmp_path):
    t = time.monotonic()
    r = run(2, "raise", tmp_path / "x.npz", 5)
    assert r.returncode != 0
    assert "injected failure" in r.stderr
    assert time.monotonic() - t < 20


def test_watchdog_aborts_a_rank_that_stops_answering(tmp_path):
    t = time.monotonic()
    r = run(2, "hang", tmp_path / "x.npz", 5, FLOWC_COLLECTIVE_TIMEOUT=2)
    assert r.returncode != 0
    assert "stopped answering" in r.stderr and "rank 0" in r.stderr
    assert time.monotonic() - t < 20


def test_early_exit_with_status_0_is_a_failure(tmp_path):
    """MPICH's mpiexec returns 0 here; flowc launch checks every rank's done marker."""
    r = subprocess.run([sys.executable, "-m", "flowc", "launch", "-n", "2", WORKER, "exit0",
                        str(tmp_path / "x.npz"), "5"], env=env(), capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode != 0
    assert "exited before finishing" in r.stderr


def test_launch_runs_a_script(tmp_path):
    r = subprocess.run([sys.executable, "-m", "flowc", "launch", "-n", "2", WORKER, "train",
                        str(tmp_path / "x.npz"), "2"], env=env(), capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "x.npz").exists()


def test_data_parallel_flag_without_ranks_says_how_to_launch(tmp_path):
    r = subprocess.run([sys.executable, "-m", "flowc", "train", "breast_cancer.toml",
                        "--data-parallel", "--epochs", "1", "--out", str(tmp_path)],
                       env=env(), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode != 0
    assert "flowc launch -n N" in r.stderr


def cli_train(tmp_path, n, out, *more):
    args = ["train", "breast_cancer.toml", "--test-size", "0.3", "--no-progress",
            "--out", str(out), *map(str, more)]
    cmd = [sys.executable, "-m", "flowc"] + (["launch", "-n", str(n)] + args +
                                             ["--data-parallel"] if n > 1 else args)
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def history(folder):
    text = (folder / "breast_cancer_logreg-history.csv").read_text().splitlines()
    return np.array([[float(v) for v in row.split(",")[:-1]] for row in text[1:]])


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The reference: 2 epochs on one process, with a checkpoint."""
    one = tmp_path_factory.mktemp("one")
    cli_train(one, 1, one, "--epochs", 2, "--checkpoint", one)
    return one


def test_cli_history_and_checkpoint_equal_one_process(tmp_path, one_process_run):
    one, two = one_process_run, tmp_path / "two"
    cli_train(tmp_path, 2, two, "--epochs", 2, "--checkpoint", two)
    np.testing.assert_allclose(history(two), history(one), rtol=1e-6)
    a, b = np.load(one / "checkpoint.npz"), np.load(two / "checkpoint.npz")
    for k in a.files:
        if a[k].dtype.kind == "f":
            np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-7)


def test_checkpoint_of_two_processes_resumes_on_one(tmp_path, one_process_run):
    mixed = tmp_path / "mixed"
    cli_train(tmp_path, 2, mixed, "--epochs", 1, "--checkpoint", mixed)
    out = cli_train(tmp_path, 1, mixed, "--epochs", 2, "--checkpoint", mixed, "--resume")
    assert "resumed" in out
    np.testing.assert_allclose(history(mixed), history(one_process_run), rtol=1e-5)


def test_dropout_and_adam_on_two_processes_equal_one(tmp_path):
    """digits_mlp.toml has a dropout layer and Adam: its masks are keyed by the global example
    (the draws are sharded) and Adam's 0-d step count survives rank 0's broadcast, so two
    processes give one process's history and checkpoint (float64, to 1e-9)."""
    def run_cli(n, out):
        args = ["train", "flowc/examples/digits_mlp.toml", "--epochs", "2", "--test-size", "0.35",
                "--no-progress", "--out", str(out), "--checkpoint", str(out)]
        cmd = [sys.executable, "-m", "flowc"] + (["launch", "-n", str(n)] + args +
                                                 ["--data-parallel"] if n > 1 else args)
        r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-2000:]
    one, two = tmp_path / "one", tmp_path / "two"
    run_cli(1, one)
    run_cli(2, two)
    read = lambda d: np.array([[float(v) for v in row.split(",")[1:-1]] for row in  # noqa: E731
                               (d / "digits_mlp-history.csv").read_text().splitlines()[1:]])
    np.testing.assert_allclose(read(two), read(one), rtol=1e-9)
    a, b = np.load(one / "checkpoint.npz"), np.load(two / "checkpoint.npz")
    assert "dropout1.rng" in a.files and a["adam.t"].shape == b["adam.t"].shape == ()
    for k in a.files:
        if a[k].dtype.kind == "f":
            np.testing.assert_allclose(b[k], a[k], rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("n", [2, 3])
def test_gpu_data_parallel_through_nccl_on_fake_devices(tmp_path, n):
    """The GPU path on fake devices (tests/fake_cupy.py): gradients reduced through
    runtime/comm/nccl.py (unique id over MPI, its own stream ordered by events; the fake NCCL
    checks pointers, counts, dtypes and stream order, and moves the bytes with MPI) give the
    one-process parameters (float64, to 1e-12)."""
    from tests import gpu_emulator
    if not gpu_emulator.available():
        pytest.skip("no C++ compiler for the fake device's kernel emulator")
    worker = os.path.join(HERE, "dp_gpu_worker.py")
    got = {}
    for k in (1, n):
        out = tmp_path / f"{k}.npz"
        cmd = command(k, [worker, str(out), "3"], MPIEXEC) if k > 1 else \
            [sys.executable, worker, str(out), "3"]
        r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-2000:]
        got[k] = np.load(out)
    for key in got[1].files:
        np.testing.assert_allclose(got[n][key], got[1][key], rtol=1e-12, atol=1e-14, err_msg=key)


def test_checkpoint_of_one_process_resumes_on_two(tmp_path, one_process_run):
    """The other direction: one epoch on one process, the second on two (rank 0's checkpoint
    values are broadcast), equals two epochs on one process."""
    mixed = tmp_path / "mixed"
    cli_train(tmp_path, 1, mixed, "--epochs", 1, "--checkpoint", mixed)
    out = cli_train(tmp_path, 2, mixed, "--epochs", 2, "--checkpoint", mixed, "--resume")
    assert "resumed" in out
    np.testing.assert_allclose(history(mixed), history(one_process_run), rtol=1e-5)
