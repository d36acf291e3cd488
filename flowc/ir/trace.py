"""Find the user's `file:line` that created a node (the first frame outside flowc)."""
import os
import sys

_FLOWC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shipped examples are user code: their lines are the ones to show.
_USER_DIRS = (os.path.join(_FLOWC_DIR, "examples"),)


def _is_user(filename) -> bool:
    return not filename.startswith(_FLOWC_DIR) or filename.startswith(_USER_DIRS)


def user_trace() -> str:
    """Return 'file:line' of the innermost caller outside flowc's own machinery."""
    f = sys._getframe(1)
    while f is not None:
        if _is_user(f.f_code.co_filename):
            return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"
        f = f.f_back
    return "<flowc>"


def user_stacklevel() -> int:
    """warnings.warn's stacklevel, called from the warning function, that names the user's
    line (the same frame user_trace reports)."""
    f, level = sys._getframe(1), 1
    while f is not None and not _is_user(f.f_code.co_filename):
        f, level = f.f_back, level + 1
    return level
