"""theano.scan_module: scan and until (a condition that ends a scan after the step that
makes it true)."""
from __future__ import annotations

from .scan import scan, until  # noqa: F401
