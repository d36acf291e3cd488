"""Lowering: optimized graph -> runtime.Program."""
from .lower import lower, schedule  # noqa: F401
