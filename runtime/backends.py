"""Backends: a kernel table plus how arrays move to and from the device."""


def get_backend(device: str):
    """The backend for device "cpu" (NumPy) or "gpu" (CuPy, imported only when asked for)."""
    if device == "cpu":
        from .cpu.backend import BACKEND
        return BACKEND
    if device == "gpu":
        from .gpu.backend import load_backend
        return load_backend()
    raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
