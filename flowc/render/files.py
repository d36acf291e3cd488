"""Write pictures: the .dot text always, then SVG/PNG with whichever Graphviz is installed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
import warnings

from ..ir.errors import FlowcError
from . import place as P
from .dot import to_dot

FORMATS = ("svg", "png", "dot", "html")
HOW_TO_GET = "pip install 'flowc[render]' (the graphviz-pure renderer) or install Graphviz (dot)"


class RenderWarning(UserWarning):
    """No Graphviz renderer was found, so only the .dot file was written."""


def render(what, path, stage="all", origins=None, legend=True, title=None, heat=None,
           collapse_loops=False, raw=False, collapse="auto") -> str:
    """Draw `what` to `path` (.svg/.png/.dot) with the .dot beside it; return the path written.
    collapse_loops=True draws each loop as one box instead of a cluster holding its body;
    collapse: each layer / optimizer / fc.scope as one box (True), a cluster (False) or "auto".
    A .html path gets one self-contained interactive page instead (flowc/render/html.py)."""
    path = os.fspath(path)
    base, ext = os.path.splitext(path)
    fmt = ext[1:].lower()
    if fmt not in FORMATS:
        raise FlowcError(f"render: the path must end in .svg, .png or .dot (or .html for "
                         f"the interactive page); got {path!r}")
    if fmt == "html":
        from .html import to_html
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        _write_atomic(path, to_html(what, stage=stage, heat=heat, title=title,
                                    collapse_loops=collapse_loops).encode("ascii"))
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    dot_path = base + ".dot"
    exe = None if fmt == "dot" else find_renderer()

    def dot_text(k):
        return to_dot(what, stage=stage, origins=origins, legend=legend, title=title,
                      heat=heat, collapse_loops=collapse_loops, raw=raw, collapse=collapse,
                      placement=k)

    _write_atomic(dot_path, dot_text(0).encode("ascii"))
    if exe is None:
        if fmt != "dot":
            warnings.warn(f"flowc.render: no Graphviz renderer found, so only {dot_path} was "
                          f"written; for {fmt.upper()}: {HOW_TO_GET}", RenderWarning,
                          stacklevel=2)
        return dot_path
    # The plain layout is kept when its columns read forward | backward | updates (an SVG
    # of it, which is the picture itself for .svg); else the narrowest placement that does.
    if not _holds(exe, dot_path, base, first=True, keep=path if fmt == "svg" else None):
        _replace_placement(exe, dot_text, dot_path, base, path)
        if fmt == "svg":
            _run(exe, fmt, dot_path, path)
    if fmt != "svg":
        _run(exe, fmt, dot_path, path)
    return path


def _replace_placement(exe, dot_text, dot_path, base, path):
    """Rewrite dot_path with the narrowest of place.PLACEMENTS[1:] whose drawing holds the
    column order; warn (and keep the plain one) where none does."""
    held = [(w, k) for k in range(1, len(P.PLACEMENTS))
            for w in [_holds(exe, _write_text(base, dot_text(k)), base, temp=True)] if w]
    if held:
        _write_atomic(dot_path, dot_text(min(held)[1]).encode("ascii"))
    else:
        warnings.warn(f"flowc.render: none of {len(P.PLACEMENTS)} layouts of {path} put the "
                      "forward column left of the backward one; drawn as Graphviz placed it",
                      RenderWarning, stacklevel=3)


def _write_text(base, text):
    """`text` in a fresh temp .dot beside `base`; its path."""
    tmp = _temp_name(base + ".dot")
    with open(tmp, "x") as f:
        f.write(text)
    return tmp


def _holds(exe, dot_path, base, first=False, temp=False, keep=None):
    """The width of dot_path's SVG drawing if its columns are in order, else 0 (and that SVG
    moved to `keep` if given). A placement Graphviz cannot rank counts as not holding (the
    plain one, `first`, raises instead: the anchors are not to blame there)."""
    svg = _temp_name(base + ".svg")
    try:
        _run(exe, "svg", dot_path, svg)
        with open(svg) as f:
            text = f.read()
        if not P.in_order(text):
            return 0
        if keep:
            os.replace(svg, keep)
        m = re.search(r'<svg width="([\d.]+)pt"', text)
        return float(m.group(1)) if m else 1.0
    except FlowcError:
        if first:
            raise
        return 0
    finally:
        for leftover in (svg, dot_path if temp else None):
            if leftover and os.path.exists(leftover):
                os.remove(leftover)


def find_renderer():
    """Path of `dot`, else of `graphviz-pure` (on PATH or beside this Python), else None."""
    for name in ("dot", "graphviz-pure"):
        found = shutil.which(name)
        if found:
            return found
    # A venv's bin/ is not on PATH unless it is activated, but its Python knows where it is.
    here = os.path.join(os.path.dirname(sys.executable), "graphviz-pure")
    for cand in (here, here + ".exe"):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


# Graphviz (and graphviz-pure) sometimes cannot rank a graph with clusters ("trouble in
# init_rank"). Each retry gives up a little of the layout: classic ranking (less aligned
# columns), then rank constraints from forward values into the backward column, then both.
RETRIES = (
    (("newrank=true", "newrank=false"),),
    (("constraint=false, ", ""),),
    (("newrank=true", "newrank=false"), ("constraint=false, ", "")),
)


def _run(exe, fmt, dot_path, path):
    """Render into a temp file beside `path` and rename it, so a failure leaves no half file."""
    tmp = _temp_name(path)
    retry = None
    try:
        res = subprocess.run([exe, f"-T{fmt}", dot_path, "-o", tmp], capture_output=True,
                             text=True, timeout=300)
        for edits in RETRIES:
            if res.returncode == 0 or "init_rank" not in res.stderr:
                break
            retry = retry or _temp_name(dot_path)
            with open(dot_path) as f:
                text = f.read()
            for old, new in edits:
                text = text.replace(old, new)
            with open(retry, "w") as f:
                f.write(text)
            res = subprocess.run([exe, f"-T{fmt}", retry, "-o", tmp], capture_output=True,
                                 text=True, timeout=300)
        if res.returncode != 0 or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise FlowcError(f"render: {os.path.basename(exe)} failed on {dot_path} (exit "
                             f"{res.returncode}): {res.stderr.strip()[:500]}")
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, retry):
            if leftover and os.path.exists(leftover):
                os.remove(leftover)


def _write_atomic(path, data: bytes):
    tmp = _temp_name(path)
    try:
        with open(tmp, "xb") as f:  # a fresh file gets the user's usual permissions (umask)
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _temp_name(path) -> str:
    """An unused hidden name beside `path`, keeping its suffix for the renderer."""
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
                                f"{os.path.splitext(base)[1]}")
