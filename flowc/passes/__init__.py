"""Optimization passes: pure functions from a compile-unit graph to a new one."""
from .algebra import RULES, simplify  # noqa: F401
from .cleanup import cse, dce, fold_constants  # noqa: F401
from .pipeline import PIPELINES, optimize  # noqa: F401
