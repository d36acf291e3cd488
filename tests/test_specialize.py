"""The specialize pass (C +- k * A @ B -> one gemm) and the gemm kernel, against plain NumPy
and against the unspecialized pipeline."""
import numpy as np
import pytest

import flowc as fc
import flowc_runtime.cpu.gemm as kg


def kernels(f):
    return [ins.kernel for ins in f.program.instrs]


def mlp_step(optimize, rng=None):
    rng = rng or np.random.default_rng(0)
    x = fc.input("x", shape=(None, 6), dtype="float32")
    y = fc.input("y", shape=(None, 3), dtype="float32")
    ps = [fc.param("W1", rng.standard_normal((6, 5)).astype("float32")),
          fc.param("b1", np.zeros(5, "float32")),
          fc.param("W2", rng.standard_normal((5, 3)).astype("float32")),
          fc.param("b2", np.zeros(3, "float32"))]
    h = fc.tanh(x @ ps[0] + ps[1])
    cost = fc.mean((h @ ps[2] + ps[3] - y) ** 2)
    return fc.function([x, y], cost, updates=fc.optim.sgd(cost, ps, lr=0.1),
                       optimize=optimize), ps


def test_mlp_step_uses_gemm_and_matches_the_unspecialized_step():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 6)).astype("float32")
    Y = rng.standard_normal((8, 3)).astype("float32")
    with fc.Graph():
        f2, p2 = mlp_step("O2")
    with fc.Graph():
        f1, p1 = mlp_step("O1")
    # Two bias adds and two weight updates become gemm; the biases' updates stay elementwise.
    assert kernels(f2).count("gemm") == 4
    assert "gemm" not in kernels(f1)
    assert "gemm x4" in f2.explain() and "test_specialize.py" in f2.explain()
    for _ in range(3):
        np.testing.assert_allclose(f2(X, Y), f1(X, Y), rtol=2e-6)
    for a, b in zip(p2, p1):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("expr, ref", [
    (lambda a, b, c: c - 0.5 * (a @ b), lambda a, b, c: c - 0.5 * (a @ b)),
    (lambda a, b, c: (a @ b) * 3.0 + c, lambda a, b, c: 3 * (a @ b) + c),
    (lambda a, b, c: a @ b - c, lambda a, b, c: a @ b - c),
    (lambda a, b, c: c + fc.transpose(a).T @ b, lambda a, b, c: c + a @ b),
])
def test_forms_fold_into_one_gemm(expr, ref):
    rng = np.random.default_rng(2)
    A, B, C = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
    a, b, c = fc.matrix("a"), fc.matrix("b"), fc.matrix("c")
    f = fc.function([a, b, c], expr(a, b, c))
    assert kernels(f) == ["gemm"] or kernels(f)[-1] == "gemm"
    np.testing.assert_allclose(f(A, B, C), ref(A, B, C), rtol=1e-12)


def test_products_needed_elsewhere_stay_matmul():
    a, b, c = fc.matrix("a"), fc.matrix("b"), fc.matrix("c")
    p = a @ b
    f = fc.function([a, b, c], [p + c, p])  # p is returned: its value must exist
    assert "gemm" not in kernels(f)
    i, j = fc.input("i", shape=(2, 2), dtype="int64"), fc.input("j", shape=(2, 2), dtype="int64")
    g = fc.function([i, j], i @ j + i)  # integer products: no BLAS
    assert "gemm" not in kernels(g)
    I = np.arange(4).reshape(2, 2)
    np.testing.assert_array_equal(g(I, I), I @ I + I)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("blas", [True, False])
def test_gemm_kernel_layouts(dtype, blas, monkeypatch):
    if not blas:  # the fallback when NumPy's BLAS cannot be found (or the product is small)
        monkeypatch.setattr(kg, "blas_gemm", lambda dt: None)
    else:  # the one BLAS call, which products this small otherwise skip
        monkeypatch.setattr(kg, "BLAS_MIN_ELEMENTS", 0)
    rng = np.random.default_rng(3)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for ta in (False, True):
        for tb in (False, True):
            A = rng.standard_normal((7, 5)).astype(dtype)
            B = rng.standard_normal((5, 6)).astype(dtype)
            a = np.ascontiguousarray(A.T).T if ta else A      # a column-major view
            b = np.ascontiguousarray(B.T).T if tb else B
            for C in (rng.standard_normal(6), rng.standard_normal((7, 6)),
                      rng.standard_normal((7, 1))):
                C = C.astype(dtype)
                out = np.full((7, 6), np.nan, dtype)
                got = kg.gemm(a, b, C, alpha=-0.3, beta=0.7, out=out)
                assert got is out
                np.testing.assert_allclose(out, -0.3 * (A @ B) + 0.7 * C, rtol=tol, atol=tol)
    strided = rng.standard_normal((10, 8)).astype(dtype)[::2, 1::2]
    np.testing.assert_allclose(kg.gemm(strided, B[:4], np.zeros(6, dtype)), strided @ B[:4],
                               rtol=tol, atol=tol)
