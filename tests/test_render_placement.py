"""Forward | backward | updates, left to right, in every picture (flowc/render/place.py):
each example picture is rendered and its columns' order read back from the SVG. Before the
placements, 5 of these 9 came out with the backward column on the left."""
import numpy as np
import pytest

import flowc as fc
from flowc.render import files
from flowc.render import place as P

pytestmark = pytest.mark.skipif(files.find_renderer() is None,
                                reason="needs a Graphviz renderer (pip install 'flowc[render]')")


def order_of(path):
    with open(path) as f:
        return P.column_order(f.read())


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("stage", ["backward", "all"])
def test_logistic_regression_pictures_put_forward_left(tmp_path, stage, raw):
    from flowc.examples import logreg
    with fc.Graph():
        m = logreg.build()
        out = fc.render([m["cost"], m["gw"], m["gb"]], tmp_path / "lr.svg", stage=stage, raw=raw)
    assert order_of(out) == ["forward", "backward"]


@pytest.mark.parametrize("model", ["breast_cancer", "digits_mlp", "lenet5", "digits_cnn"])
def test_model_file_training_steps_read_forward_backward_updates(tmp_path, model):
    from flowc.cli import main
    out = tmp_path / f"{model}.svg"
    assert main(["render", f"flowc/examples/{model}.toml", "-o", str(out)]) in (0, None)
    assert order_of(out) == ["forward", "backward", "update"]


def test_a_placement_adds_tied_anchors_only_where_two_columns_are_drawn():
    text = ("digraph g {\n  subgraph cluster_forward { label=x;\n    n1 [label=a];\n  }\n"
            "  subgraph cluster_backward { label=y;\n    subgraph cluster_b1 { label=z;\n"
            "      n2 [label=b];\n    }\n  }\n}\n")
    pl = P.Placement(anchors=True, weight=7, members=1)
    got = pl.apply(text)
    assert "place_forward -> n1 [style=invis, weight=7];" in got
    assert "place_backward -> n2 [style=invis, weight=7];" in got
    assert "{ rank=min; place_forward; place_backward; }" in got
    assert "place_forward -> place_backward [style=invis];" in got
    one = "digraph g {\n  subgraph cluster_forward { label=x;\n    n1 [label=a];\n  }\n}\n"
    assert pl.apply(one) == one and P.PLACEMENTS[0].apply(text) == text


def test_column_order_reads_graphviz_svg_clusters():
    svg = ('<g id="clust1" class="cluster">\n<title>cluster_forward</title>\n'
           '<path fill="#f" d="M694,-72C694,-72 1008,-72 1008,-72 682,-84 682,-84"/>\n</g>\n'
           '<g id="clust2" class="cluster">\n<title>cluster_backward</title>\n'
           '<polygon fill="#f" points="8,-66 572,-66 572,-1692 8,-1692 8,-66"/>\n</g>\n'
           '<g id="clust3" class="cluster">\n<title>cluster_b2</title>\n'
           '<polygon points="1,1 2,2"/>\n</g>\n')
    assert P.column_order(svg) == ["backward", "forward"]
    assert not P.in_order(svg)
    assert P.in_order("<svg/>")


def test_a_picture_no_placement_fixes_is_drawn_with_a_warning(tmp_path, monkeypatch):
    """Where no placement holds, the plain layout is kept and the user is told."""
    monkeypatch.setattr(P, "in_order", lambda svg: False)
    from flowc.examples import logreg
    with fc.Graph():
        m = logreg.build()
        with pytest.warns(files.RenderWarning, match="none of .* layouts"):
            out = fc.render([m["cost"], m["gw"], m["gb"]], tmp_path / "lr.svg")
    text = open(tmp_path / "lr.dot").read()
    assert "place_" not in text and np.size(order_of(out)) == 2
