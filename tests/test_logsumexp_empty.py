"""logsumexp over nothing is log(0) = -inf, as NumPy's log(sum(exp(x))), which the stabilize
pass rewrites into logsumexp: the levels must agree (the fuzzer found O1 raising)."""
import numpy as np
import pytest

import flowc as fc


@pytest.mark.parametrize("level", ["O0", "O1", "O2"])
@pytest.mark.parametrize("shape,axis", [((0, 2), None), ((0, 2), 0), ((0, 2), 1),
                                        ((2, 0, 3), (1,)), ((0,), None)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_of_nothing_is_minus_inf_at_every_level(shape, axis, keepdims, level):
    with fc.Graph():
        x = fc.input("x", shape)
        outs = [fc.logsumexp(x, axis=axis, keepdims=keepdims),
                fc.log(fc.sum(fc.exp(x), axis=axis, keepdims=keepdims))]
        f = fc.function([x], outs, optimize=level)
        with np.errstate(divide="ignore"):
            ref = np.log(np.sum(np.exp(np.zeros(shape)), axis=axis, keepdims=keepdims))
            for call in range(3):
                for got in f(np.zeros(shape)):
                    assert got.shape == ref.shape and np.array_equal(got, ref), call
