"""Find the user's `file:line` that created a node (the first frame outside flowc)."""
import os
import sys

_FLOWC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_trace() -> str:
    """Return 'file:line' of the innermost caller outside the flowc package."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_FLOWC_DIR):
            return f"{os.path.basename(fn)}:{f.f_lineno}"
        f = f.f_back
    return "<flowc>"
