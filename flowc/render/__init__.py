"""Graphviz pictures of graphs: DOT text (deterministic) and SVG/PNG files."""
from .dot import to_dot  # noqa: F401
from .files import render  # noqa: F401
