"""Inputs of a GPU call: checked by the CPU backend's rules, then on the device once."""
from __future__ import annotations

import numpy as np


def make_gpu_input_checker(spec, downcast, error):
    """Like the CPU's checker (same rules, same messages); CuPy arrays pass through, anything
    else is checked on the host and copied to the device once."""
    import cupy
    from ..cpu.backend import make_input_checker
    host = make_input_checker(spec, downcast, error)
    want = np.dtype(spec["dtype"])
    shape = tuple(spec["shape"])
    known = [(i, d) for i, d in enumerate(shape) if d is not None]
    ndim = len(shape)

    def check(x):
        if type(x) is cupy.ndarray:
            if x.dtype == want and x.ndim == ndim and all(x.shape[i] == d for i, d in known):
                return x
            # A zero-stride host stand-in of x's dtype and shape gets the CPU backend's errors.
            host(np.broadcast_to(np.zeros((), x.dtype), x.shape))
            return x.astype(want)
        return cupy.asarray(host(x))
    check.host = host  # the host-side check alone (graph replay uploads into its own buffers)
    return check
