"""The CuPy (GPU) backend entry point: explains what is missing when no GPU can be used."""
from __future__ import annotations


class GPUUnavailable(RuntimeError):
    """device="gpu" was asked for where it cannot run."""


def load_backend():
    """The GPU backend, or a GPUUnavailable error that says what is missing and how to fix it."""
    try:
        import cupy
    except ImportError:
        raise GPUUnavailable("device='gpu' needs CuPy, which is not installed; install the "
                             "GPU extra: pip install 'flowc[gpu]' (CuPy for CUDA 13)") from None
    try:
        available = cupy.is_available()
    except Exception:  # CuPy present but the CUDA runtime is not usable
        available = False
    if not available:
        raise GPUUnavailable("device='gpu' needs an NVIDIA GPU, but CuPy finds no CUDA device "
                             "on this machine; use device='cpu'")
    raise GPUUnavailable("the CuPy backend is not part of this flowc version yet; "
                         "use device='cpu'")
