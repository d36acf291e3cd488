"""Reading and writing graphs: the IR as JSON (networkx node-link data)."""
from .graph_json import GraphFileError, dumps, load_graph, loads, save_graph  # noqa: F401
