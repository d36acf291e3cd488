"""fc.norm's kernel scales by the largest magnitude (no overflow for large entries); an
infinite or NaN entry must still give NumPy's answer (inf, nan), not inf/inf = nan."""
import numpy as np
import pytest

import flowc as fc


@pytest.mark.parametrize("level", ["O0", "O2"])
def test_norm_of_infinite_and_nan_entries_matches_numpy(level):
    x = fc.input("x", (2, 3))
    f = fc.function([x], [fc.norm(x, axis=-1), fc.norm(x)], optimize=level)
    # (x, its row norms, its norm); 1e300 entries overflow NumPy's unscaled sum of squares
    cases = [(np.array([[-np.inf, 1.0, 2.0], [3.0, 4.0, 0.0]]), [np.inf, 5.0], np.inf),
             (np.array([[np.nan, np.inf, 1.0], [1e300, 1e300, 0.0]]),
              [np.nan, np.sqrt(2) * 1e300], np.nan),
             (np.array([[0.0, 0.0, 0.0], [np.inf, -np.inf, 1.0]]), [0.0, np.inf], np.inf)]
    for v, want_rows, want in cases + cases[:1]:   # the first again: buffers reused
        rows, whole = f(v)
        np.testing.assert_allclose(rows, want_rows, rtol=1e-15)
        assert np.array_equal(whole, want, equal_nan=True)
