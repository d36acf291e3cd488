"""The shipped examples train to the accuracy they promise (fewer steps where that suffices)."""
import importlib.util

import pytest

from flowc.examples import logreg

needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                   reason="scikit-learn not installed (pip install -e '.[data]')")


def test_logreg_trains_and_draws(tmp_path):
    out = tmp_path / "pictures"
    fig = logreg.main(steps=300, out=str(out), verbose=False)
    assert fig["cost_before"] == pytest.approx(0.6931471805599453)   # w = 0, b = 0: log 2
    assert fig["cost_after"] < 0.5 * fig["cost_before"]
    assert fig["accuracy"] >= 0.99
    for stem in ("forward", "backward"):
        written = sorted(p.name for p in out.glob(f"{stem}.*"))
        assert set(written) & {f"{stem}.svg", f"{stem}.dot"}, written
    assert len(fig["files"]) == 2


def test_logreg_cli_options(tmp_path, capsys):
    logreg.cli(["--steps", "2", "--out", str(tmp_path), "--no-draw"])
    text = capsys.readouterr().out
    assert "cost before training: 0.693147" in text and "training accuracy" in text
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@needs_sklearn
def test_breast_cancer_held_out_accuracy():
    from flowc.examples import breast_cancer
    fig = breast_cancer.main(verbose=False)
    assert fig["test_accuracy"] >= 0.95
    assert fig["train_accuracy"] >= 0.95


@pytest.mark.slow
@needs_sklearn
def test_digits_mlp_held_out_accuracy():
    from flowc.examples import digits_mlp
    fig = digits_mlp.main(verbose=False)
    assert fig["test_accuracy"] >= 0.95
    assert fig["train_cost"] < fig["test_cost"] < 0.5
