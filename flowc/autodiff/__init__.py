"""Automatic differentiation: reverse mode (grad, vjp)."""
from .reverse import grad, vjp_many  # noqa: F401
