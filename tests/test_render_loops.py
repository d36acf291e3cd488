"""Pictures of loops (clusters with their bodies, carry back edges, collapsed boxes), conv."""
import re

import numpy as np
import pytest

import flowc as fc
from flowc.render import clusters, files, style


def block(text, cluster):
    """The lines of `subgraph cluster_<cluster>`, up to its closing brace."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.strip().startswith(f"subgraph cluster_{cluster} {{"))
    depth, out = 0, []
    for line in lines[start:]:
        out.append(line)
        depth += line.strip().startswith("subgraph ") - (line.strip() == "}")
        if depth == 0:
            return out
    raise AssertionError(f"cluster_{cluster} is not closed")


def declared(lines):
    """Names of the nodes declared in these lines."""
    return {m.group(1) for line in lines if (m := re.match(r"\s*(\w+) \[", line))}


def loop_ids(G, **attrs):
    return sorted(n for n in G if G.nodes[n]["op"] == "loop"
                  and all(G.nodes[n]["attrs"].get(k) == v for k, v in attrs.items()))


def rnn():
    """A tanh RNN over 5 steps and its gradient for W."""
    x = fc.input("x", shape=(5, 3))
    W = fc.param("W", np.ones((3, 3)) * 0.1)
    h0 = fc.input("h0", shape=(3,))
    _, hs = fc.scan(lambda h, xt: (fc.tanh(h @ W + xt),) * 2, h0, x)
    cost = fc.sum(hs)
    gW, = fc.grad(cost, [W])
    return x, h0, cost, gW


def test_scan_is_a_cluster_with_its_body_ports_and_carry_back_edge():
    x, h0, cost, _ = rnn()
    G = cost.graph.nx
    L, = [n for n in loop_ids(G) if G.nodes[n]["phase"] == "forward"]
    text = fc.to_dot(cost, stage="forward")
    inside = declared(block(text, f"n{L}"))
    assert f"n{L}" not in declared(text.splitlines())  # the loop is its cluster, not a box
    assert {f"n{L}_i0", f"n{L}_i1", f"n{L}_i2", f"n{L}_o0", f"n{L}_o1"} <= inside
    ops = {re.search(r"label=<(\w+)", line).group(1) for line in block(text, f"n{L}")
           if re.match(rf"\s*n{L}_b\d+ \[", line)}
    assert ops == {"matmul", "add", "tanh"}
    assert "scan, 5 steps" in text
    back = [line for line in text.splitlines() if f"n{L}_o0 -> n{L}_i1 " in line]
    assert len(back) == 1 and "constraint=false" in back[0] and 'label="carry c0"' in back[0]
    assert f"n{x.id} -> n{L}_i0 " in text and f"n{h0.id} -> n{L}_i1 " in text
    part = next(n for n in G.successors(L) if G.nodes[n]["attrs"].get("index") == 1)
    assert f"n{L}_o1 -> n{part} " in text  # ys leave from their out-port
    assert text.isascii() and text == fc.to_dot(cost, stage="forward")


def test_fori_loop_cluster_and_back_edge():
    c = fc.input("c", (2,))
    out = fc.fori_loop(0, 4, lambda i, v: v * 0.5 + fc.cast(i, "float64"), c)
    L, = loop_ids(out.graph.nx)
    text = fc.to_dot(out, stage="forward")
    assert "scan, 4 steps" in "\n".join(block(text, f"n{L}"))
    body = "\n".join(block(text, f"n{L}"))
    assert {"mul", "add", "cast"} <= set(re.findall(r"label=<(\w+)", body))
    assert re.search(rf"n{L}_o0 -> n{L}_i1 \[constraint=false.*carry c0", text)


def test_cond_has_true_and_false_branch_clusters():
    a = fc.input("a", ())
    y = fc.cond(a > 0, lambda v: v * 2.0, lambda v: fc.exp(v) - 1.0, a)
    C = next(n for n in y.graph.nx if y.graph.nx.nodes[n]["op"] == "cond")
    text = fc.to_dot(y, stage="forward")
    outer = block(text, f"n{C}")
    true, false = block(text, f"n{C}_t"), block(text, f"n{C}_f")
    assert "true" in true[0] and "false" in false[0]
    assert set(true) <= set(outer) and set(false) <= set(outer)
    assert "mul" in "\n".join(true) and "exp" in "\n".join(false) and "exp" not in "\n".join(true)
    assert f"n{a.id} -> n{C}_i1 " in text  # the operand enters the cond's port
    assert re.search(rf"-> n{C}_i0 ", text)  # and so does the predicate


def test_while_loop_draws_its_condition():
    v = fc.input("v", ())
    s = fc.while_loop(lambda c: c < 10.0, lambda c: c * 2.0 + 1.0, v, max_steps=8)
    L, = loop_ids(s.graph.nx)
    text = fc.to_dot(s, stage="forward")
    cond = block(text, f"n{L}_c")
    assert "condition" in cond[0] and "less" in "\n".join(cond) and f"n{L}_go" in declared(cond)
    assert "while_loop" in block(text, f"n{L}")[0]


def test_nested_loops_nest_clusters():
    x = fc.input("x", (4, 3))

    def outer(c, xt):
        inner, _ = fc.scan(lambda a, k: (a * 0.5 + k, None), c, fc.reshape(xt, (3, 1)))
        return inner, fc.sum(inner)

    _, ys = fc.scan(outer, fc.zeros((1,)), x)
    L, = loop_ids(ys.graph.nx)
    text = fc.to_dot(ys, stage="forward")
    nested = [m.group(1) for m in re.finditer(rf"subgraph cluster_(n{L}_b\d+) ", text)]
    assert len(nested) == 1
    inner = block(text, nested[0])
    assert set(inner) <= set(block(text, f"n{L}"))
    assert "scan, 3 steps" in inner[0] and "mul" in "\n".join(inner)
    assert f"{nested[0]}_o0 -> {nested[0]}_i1 " in text  # the inner carry's back edge
    assert f"n{L}_o0 -> n{L}_i1 " in text  # and the outer one


def test_backward_picture_draws_both_loops_side_by_side():
    _, _, cost, gW = rnn()
    G = cost.graph.nx
    fwd = [n for n in loop_ids(G) if G.nodes[n]["phase"] == "forward"]
    bwd = loop_ids(G, reverse=True)
    assert len(fwd) == 1 and len(bwd) == 1
    text = fc.to_dot([cost, gW], stage="backward")
    f_lines, b_lines = block(text, f"n{fwd[0]}"), block(text, f"n{bwd[0]}")
    assert "scan, 5 steps" in f_lines[0] and "scan (reverse), 5 steps" in b_lines[0]
    assert style.CONTEXT["border"] in f_lines[0]  # the forward loop is faded background
    assert style.PHASE["backward"]["border"] in b_lines[0]
    assert f"{{ rank=same; n{fwd[0]}_i0; n{bwd[0]}_o0; }}" in text
    nc = G.nodes[bwd[0]]["attrs"]["n_carry"]
    ns = G.nodes[bwd[0]]["attrs"]["n_seq"]
    for j in range(nc):
        assert f"n{bwd[0]}_o{j} -> n{bwd[0]}_i{ns + j} " in text
    # The backward column reads bottom-up, so the backward body's edges are reversed too.
    body_edges = [line for line in text.splitlines() if re.match(rf"\s*n{bwd[0]}_b\d+ -> ", line)]
    assert body_edges and all("dir=back" in line for line in body_edges)


def test_collapse_draws_each_loop_as_one_box():
    _, _, cost, gW = rnn()
    G = cost.graph.nx
    text = fc.to_dot([cost, gW], collapse_loops=True)
    assert "subgraph cluster_n" not in text
    for L in loop_ids(G):
        line = next(line for line in text.splitlines() if line.strip().startswith(f"n{L} ["))
        assert 'shape="box3d"' in line and "steps" in line
    fwd = [n for n in loop_ids(G) if G.nodes[n]["phase"] == "forward"][0]
    rev = loop_ids(G, reverse=True)[0]
    assert f"{{ rank=same; n{fwd}; n{rev}; }}" in fc.to_dot([cost, gW], stage="backward",
                                                          collapse_loops=True)
    assert "carries: c0 f64[3]" in text and "loop (body not drawn)" in text


def test_big_bodies_collapse_by_themselves():
    def step(c, xt):
        for _ in range(clusters.COLLAPSE_OVER):
            c = fc.sin(c) + xt
        return c, None

    x = fc.input("x", (3,))
    big, _ = fc.scan(step, fc.zeros(()), x)
    small, _ = fc.scan(lambda c, xt: (c + xt, None), big, x)
    G = big.graph.nx
    L_big, L_small = loop_ids(G)
    text = fc.to_dot(small, stage="forward")
    assert f"subgraph cluster_n{L_big} " not in text and f"subgraph cluster_n{L_small} " in text
    assert re.search(rf"\s*n{L_big} \[.*box3d", text)


def test_pictures_without_loops_have_no_loop_parts():
    x = fc.input("x", (3,))
    text = fc.to_dot(fc.sum(fc.tanh(x)))
    assert "cluster_n" not in text and "port" not in text and "carry" not in text


@pytest.mark.parametrize("kernel, attrs, want", [
    ((5, 5), dict(stride=(2, 2), pad=((1, 1), (1, 1))), "conv 5\u00d75 /2 pad 1"),
    ((3, 3), {}, "conv 3\u00d73"),
    ((3, 3), dict(pad=((0, 1), (0, 1)), dilation=(2, 2), groups=2, flip=True),
     "conv 3\u00d73 pad (0,1) dil 2 g 2 flip"),
    ((4, 4), dict(lhs_dilation=(2, 2), pad=((2, 2), (2, 2))), "conv 4\u00d74 transposed /2 pad 2"),
    ((3, 1), dict(stride=(2, 1), pad=((1, 1), (0, 0))), "conv 3\u00d71 /2\u00d71 pad 1\u00d70"),
    ((7,), dict(stride=(3,)), "conv 7 /3"),
])
def test_conv_geometry_text(kernel, attrs, want):
    assert style.conv_text(kernel, attrs) == want


def test_conv_nodes_are_labelled_by_geometry_and_algorithm():
    img = fc.input("img", (2, 3, 8, 8))
    y = fc.conv(img, fc.param("k", np.ones((4, 3, 5, 5))), stride=2, padding=1)
    text = fc.to_dot(y, stage="forward")
    assert "label=<conv 5&#215;5 /2 pad 1<BR/>" in text and "stride=" not in text
    f = fc.function([img], y, optimize="O1")  # O1 keeps the conv a conv
    n = next(n for n in f.graph if f.graph.nodes[n]["op"] == "conv")
    f.graph.nodes[n]["attrs"]["algorithm"] = "im2col"  # as an algorithm-choosing pass would
    opt = fc.to_dot(f, stage="optimized")
    assert "algorithm im2col" in opt and "conv 5&#215;5 /2 pad 1" in opt
    assert "algorithm" not in fc.to_dot(f, stage="forward")
    # O2 lowers it to its im2col window copy (labelled with the geometry) and a GEMM.
    opt2 = fc.to_dot(fc.function([img], y), stage="optimized")
    assert "label=<im2col 5&#215;5 /2 pad 1<BR/>" in opt2 and "conv_cols" in opt2


@pytest.mark.skipif(files.find_renderer() is None, reason="no Graphviz renderer installed")
@pytest.mark.parametrize("stage", ["forward", "backward", "optimized"])
def test_loop_pictures_render(tmp_path, stage):
    x, h0, cost, gW = rnn()
    what = fc.function([x, h0], [cost, gW]) if stage == "optimized" else [cost, gW]
    path = fc.render(what, tmp_path / f"rnn_{stage}.svg", stage=stage)
    with open(path) as f:
        svg = f.read()
    assert "<svg" in svg and "carry c0" in svg


def test_deeply_nested_loops_nest_one_cluster_in_the_next():
    def nest(depth):
        if depth == 0:
            return lambda i, c: c * 0.5 + 1.0
        inner = nest(depth - 1)
        return lambda i, c: fc.fori_loop(0, 2, inner, c)

    out = fc.fori_loop(0, 2, nest(7), fc.input("c", ()))
    text = fc.to_dot(out, stage="forward")
    names = re.findall(r"subgraph cluster_(n\w+) ", text)
    assert len(names) == 8
    for outer, inner in zip(names, names[1:]):
        assert inner.startswith(outer + "_b") and set(block(text, inner)) <= set(block(text, outer))
