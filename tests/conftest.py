"""Shared fixtures: every test builds into its own fresh default graph."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flowc as fc  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_graph():
    """Each test gets a new default graph, so tests never see each other's nodes."""
    with fc.Graph() as g:
        yield g


# Every Executable the suite links verifies each memory plan it makes and the arrays of
# every call (runtime/memory/verify.py): a wrong plan fails even when numbers come out right.
# The environment variable carries the switch into subprocesses (the CLI tests);
# FLOWC_VERIFY_PLAN=0 turns it off (to time the suite without it).
from flowc_runtime.memory import verify as plan_verify  # noqa: E402

os.environ.setdefault("FLOWC_VERIFY_PLAN", "1")
plan_verify.enable(os.environ["FLOWC_VERIFY_PLAN"] != "0")
