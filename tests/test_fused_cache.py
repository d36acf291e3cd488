"""The cache of compiled fused groups is bounded: a process that compiles many models keeps
only the most recently used groups (each holds per-thread scratch arrays)."""
import numpy as np

import flowc as fc
from flowc_runtime.cpu import fused


def test_compiled_groups_are_kept_least_recently_used_first_out(monkeypatch):
    monkeypatch.setattr(fused, "_BLOCKS", type(fused._BLOCKS)())
    monkeypatch.setattr(fused, "BLOCKS_KEPT", 3)
    x = fc.input("x", (None, 4))
    X = np.linspace(-1, 1, 8).reshape(2, 4)
    fs = [fc.function([x], fc.tanh(x * float(k) + 1.0) * 2.0) for k in range(6)]
    for _ in range(2):  # the second round recompiles the groups the first evicted
        for k, f in enumerate(fs):
            for _ in range(3):
                np.testing.assert_allclose(f(X), np.tanh(X * k + 1.0) * 2.0, rtol=1e-12)
            assert len(fused._BLOCKS) <= 3
