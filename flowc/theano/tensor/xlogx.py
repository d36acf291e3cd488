"""theano.tensor.xlogx: x * log(x) with 0 at x = 0."""
from __future__ import annotations

from ...ops.api import xlogx  # noqa: F401
