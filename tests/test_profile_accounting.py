"""f.profile accounts for the whole call: the instructions' shares, the runtime's work
between them and flowc's own call add up to the call a user makes; the table shows at the
prompt (repr) as well as through print."""
import numpy as np
import pytest

import flowc as fc


@pytest.mark.parametrize("n", [3, 200])
def test_the_parts_add_up_to_the_whole_call(n):
    x = fc.input("x", (n, n))
    w = fc.param("w", np.eye(n))
    f = fc.function([x], fc.sum(fc.tanh(x @ w)), updates=[(w, w * 0.5)])
    before = w.get_value().copy()
    p = f.profile(np.ones((n, n)), calls=5)
    np.testing.assert_array_equal(w.get_value(), before)   # parameters restored
    parts = dict((what.split(" (")[0], sec) for what, sec in p.parts())
    assert all(v >= 0 for v in parts.values())
    assert sum(parts.values()) == pytest.approx(p.total, rel=1e-9)
    rows = sum(p.share(r[3]) for r in p.rows)
    assert rows == pytest.approx(parts["instructions"] / p.total, rel=1e-9)
    assert sum(s for _, _, s in p.by_op()) == pytest.approx(rows, rel=1e-9)
    text = repr(p)
    assert text == str(p) and "whole call" in text and "flowc's call" in text
    assert "runtime between instructions" in text
