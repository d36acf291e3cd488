"""Pictures: golden DOT text, determinism, stage filtering, node kinds, SVG and the .dot fallback.

Regenerate the golden file after an intended change with
    FLOWC_UPDATE_GOLDEN=1 PYTHONPATH=. python -m pytest tests/test_render.py
and look at the picture before committing it.
"""
import os
import re
import stat
import sys

import numpy as np
import pytest

import flowc as fc
from flowc.render import files, style


def small_model():
    """Forward + backward of a tiny regression; kept at the top so its line numbers are stable."""
    x = fc.input("x", shape=(None, 3))
    y = fc.input("y", shape=(None,))
    w = fc.param("w", np.zeros(3))
    b = fc.param("b", 0.0)
    p = fc.sigmoid(x @ w + b)
    p.graph.nx.nodes[p.id]["name"] = "p"  # a user-given name (as Theano's `.name = "p"`)
    cost = fc.mean((p - y) ** 2) + 0.01 * fc.sum(w * w)
    gw, gb = fc.grad(cost, [w, b])
    return dict(x=x, y=y, w=w, b=b, p=p, cost=cost, gw=gw, gb=gb)


GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "render_small.dot")


def node_lines(text):
    """{node id: its DOT line} for the graph's own nodes (n<id>)."""
    return {int(m.group(1)): line for line in text.splitlines()
            if (m := re.match(r"\s*n(\d+) \[", line))}


def test_golden_dot_text():
    m = small_model()
    text = fc.to_dot([m["cost"], m["gw"], m["gb"]])
    if os.environ.get("FLOWC_UPDATE_GOLDEN"):
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w") as f:
            f.write(text)
    with open(GOLDEN) as f:
        want = f.read()
    assert text == want, "DOT text changed; if intended, regenerate with FLOWC_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("stage", ["forward", "backward", "all", "optimized"])
def test_same_graph_twice_gives_the_same_text(stage):
    texts = []
    for _ in range(2):
        with fc.Graph():
            m = small_model()
            texts.append(fc.to_dot([m["cost"], m["gw"], m["gb"]], stage=stage))
    assert texts[0] == texts[1]
    assert texts[0].isascii() and "0x" not in texts[0]


def test_forward_stage_draws_only_forward_nodes():
    m = small_model()
    G = m["cost"].graph.nx
    drawn = node_lines(fc.to_dot([m["cost"], m["gw"], m["gb"]], stage="forward"))
    assert drawn and all(G.nodes[n]["phase"] == "forward" for n in drawn)
    assert m["gw"].id not in drawn and m["p"].id in drawn
    assert "cluster_backward" not in fc.to_dot(m["cost"], stage="forward")


def test_backward_stage_shows_forward_values_faded():
    m = small_model()
    G = m["cost"].graph.nx
    # raw: every backward node autodiff made (the default folds bookkeeping away)
    text = fc.to_dot([m["cost"], m["gw"], m["gb"]], stage="backward", raw=True)
    drawn = node_lines(text)
    backward = {n for n in G if G.nodes[n]["phase"] == "backward"}
    assert backward - _inlined(text) <= set(drawn)
    read = {u for n in backward for u in G.predecessors(n)} - backward
    assert read - _inlined(text) <= set(drawn)
    for n, line in drawn.items():
        assert ("dashed" in line) == (n not in backward), line  # forward part is background
    assert "forward values the backward pass reads" in text


def test_all_stage_has_both_clusters_with_different_fills():
    m = small_model()
    text = fc.to_dot([m["cost"], m["gw"], m["gb"]], stage="all")
    fills = dict(re.findall(r'subgraph cluster_(forward|backward) .*?fillcolor="([^"]+)"', text))
    assert set(fills) == {"forward", "backward"} and fills["forward"] != fills["backward"]


def test_each_kind_has_its_own_look():
    looks = [(a.get("shape"), a.get("fillcolor")) for a, _ in style.KINDS.values()]
    assert len(set(looks)) == len(looks)
    m = small_model()
    f = fc.function([m["x"], m["y"]], m["cost"],
                    updates=[(m["w"], m["w"] - 0.1 * m["gw"]), (m["b"], m["b"] - 0.1 * m["gb"])])
    text = fc.to_dot(f)
    lines = node_lines(text)
    shape = {n: re.search(r'shape="(\w+)"', line).group(1) for n, line in lines.items()}
    assert shape[m["x"].id] == "invhouse" and shape[m["w"].id] == "cylinder"
    assert shape[m["gw"].id] == "hexagon" and shape[m["p"].id] == "box"
    assert re.search(r'out0 \[shape="doubleoctagon"', text)
    assert re.search(r'upd\d+ \[shape="cylinder", style="filled,bold", fillcolor="#c2a5cf"', text)


def test_labels_show_ops_names_types_and_gradients():
    m = small_model()
    text = fc.to_dot([m["cost"], m["gw"], m["gb"]])
    lines = node_lines(text)
    assert "sigmoid<BR/><I>p</I>" in lines[m["p"].id]
    assert "<B>dcost/dw</B>" in lines[m["gw"].id] and "<B>dcost/db</B>" in lines[m["gb"].id]
    assert "<I>cost</I>" in lines[m["cost"].id]  # the unnamed cost is called what dcost/dw says
    assert 'label="a: f64[?,3]"' in text and 'label="f64[]"' in text
    assert 'label="0.01"' in text  # a scalar constant is drawn small beside its use


def test_function_draws_updates_and_optimized_graph():
    m = small_model()
    f = fc.function([m["x"], m["y"]], [m["cost"], m["p"]],
                    updates=[(m["w"], m["w"] - 0.1 * m["gw"])])
    text = fc.to_dot(f)
    assert "subgraph cluster_update" in text and "<B>new w</B>" in text
    assert "output 0" in text and "output 1" in text
    opt = fc.to_dot(f, stage="optimized")
    assert set(node_lines(opt)) == set(f.graph.nodes) - _inlined(opt)
    assert "optimized graph" in fc.to_dot([m["cost"], m["gw"]], stage="optimized")


def _inlined(text):
    return {int(a) for a in re.findall(r"\bn(\d+)_\d+_\d+ \[", text)}


def test_origin_links_default_on_for_backward_only():
    m = small_model()
    what = [m["cost"], m["gw"], m["gb"]]
    dashed = 'style=dashed, color="#8c8c8c"'
    assert dashed in fc.to_dot(what, stage="backward")
    assert dashed not in fc.to_dot(what, stage="all")
    assert dashed in fc.to_dot(what, stage="all", origins=True)
    assert dashed not in fc.to_dot(what, stage="backward", origins=False)


def test_bad_arguments_are_named():
    m = small_model()
    with pytest.raises(fc.FlowcError, match="stage must be one of"):
        fc.to_dot(m["cost"], stage="bwd")
    with pytest.raises(fc.FlowcError, match="got int"):
        fc.to_dot(3)
    with pytest.raises(fc.FlowcError, match=r"\.svg, \.png or \.dot"):
        fc.render(m["cost"], "out/picture.pdf")


def test_render_svg_with_an_installed_renderer(tmp_path):
    if files.find_renderer() is None:
        pytest.skip("no Graphviz renderer (pip install graphviz-pure, or install Graphviz)")
    m = small_model()
    out = tmp_path / "pics" / "backward.svg"
    assert fc.render([m["cost"], m["gw"]], out, stage="backward") == str(out)
    assert "<svg" in out.read_text() and (tmp_path / "pics" / "backward.dot").exists()
    assert sorted(os.listdir(tmp_path / "pics")) == ["backward.dot", "backward.svg"]


def test_without_a_renderer_only_the_dot_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "find_renderer", lambda: None)
    m = small_model()
    out = tmp_path / "a" / "b" / "forward.svg"
    with pytest.warns(files.RenderWarning, match="flowc\\[render\\]"):
        written = fc.render(m["cost"], out, stage="forward")
    assert written == str(tmp_path / "a" / "b" / "forward.dot")
    assert os.listdir(tmp_path / "a" / "b") == ["forward.dot"]
    assert open(written).read() == fc.to_dot(m["cost"], stage="forward")


def test_a_failed_render_leaves_no_half_written_file(tmp_path, monkeypatch):
    fake = tmp_path / "bad-dot"
    fake.write_text('#!/bin/sh\necho partial > "$4"\necho "syntax error" >&2\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(files, "find_renderer", lambda: str(fake))
    m = small_model()
    with pytest.raises(fc.FlowcError, match="syntax error"):
        fc.render(m["cost"], tmp_path / "out" / "g.png")
    assert os.listdir(tmp_path / "out") == ["g.dot"]


def test_renderer_is_found_beside_the_python_of_a_venv(tmp_path, monkeypatch):
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    exe = bindir / "graphviz-pure"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setattr(files.shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "executable", str(bindir / "python"))
    assert files.find_renderer() == str(exe)


def test_init_rank_failures_are_retried_with_looser_ranking(tmp_path, monkeypatch):
    # A fake renderer that, like graphviz-pure on the digits model's "all" picture, fails with
    # "trouble in init_rank" while any edge has constraint=false; it logs every attempt.
    fake, log = tmp_path / "picky-dot", tmp_path / "attempts"
    fake.write_text('#!/bin/sh\ncat "$2" >> "%s"; echo "@@" >> "%s"\n'
                    'if grep -q "constraint=false" "$2"; then\n'
                    '  echo "Error: trouble in init_rank" >&2; exit 1; fi\n'
                    'echo "<svg/>" > "$4"\n' % (log, log))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(files, "find_renderer", lambda: str(fake))
    m = small_model()
    out = tmp_path / "pics" / "all.svg"
    assert fc.render([m["cost"], m["gw"], m["gb"]], out, stage="all") == str(out)
    assert out.read_text() == "<svg/>\n"
    attempts = log.read_text().split("@@\n")[:-1]
    assert len(attempts) == 3 and "constraint=false" in attempts[0]
    assert "newrank=false" in attempts[1] and "constraint=false" not in attempts[2]
    assert "newrank=true" in attempts[2]  # the aligned ranking is kept where it can be
    assert sorted(os.listdir(tmp_path / "pics")) == ["all.dot", "all.svg"]  # no temp files
    # Another error is not retried.
    fake.write_text('#!/bin/sh\necho "syntax error" >&2\nexit 1\n')
    with pytest.raises(fc.FlowcError, match="syntax error"):
        fc.render(m["cost"], tmp_path / "pics" / "f.svg", stage="forward")
