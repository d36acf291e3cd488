"""Named scopes: `with fc.scope("encoder"):` tags the nodes made inside with a path.

The path ("encoder/dense1") is the node attr `scope`; pictures draw each scope as a
cluster and, for large graphs, as one box (flowc/render/scopes.py). Layers and
optimizers open one themselves. Scopes nest; the stack is per thread.
"""
from __future__ import annotations

import contextlib
import threading

_LOCAL = threading.local()


def _stack() -> list:
    if not hasattr(_LOCAL, "stack"):
        _LOCAL.stack = []
    return _LOCAL.stack


@contextlib.contextmanager
def scope(name):
    """Nodes made inside carry `scope` = the enclosing names joined by '/'."""
    name = str(name)
    if not name or "/" in name:
        raise ValueError(f"fc.scope: a name must be non-empty and have no '/'; got {name!r}")
    _stack().append(name)
    try:
        yield "/".join(_stack())
    finally:
        _stack().pop()


def current():
    """The path of the innermost open scope, or None outside every scope."""
    s = _stack()
    return "/".join(s) if s else None
