"""Find the user's `file:line` that created a node (the first frame outside flowc)."""
import os
import sys

_FLOWC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shipped examples are user code: their lines are the ones to show.
_USER_DIRS = (os.path.join(_FLOWC_DIR, "examples"),)


def user_trace() -> str:
    """Return 'file:line' of the innermost caller outside flowc's own machinery."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_FLOWC_DIR) or fn.startswith(_USER_DIRS):
            return f"{os.path.basename(fn)}:{f.f_lineno}"
        f = f.f_back
    return "<flowc>"
