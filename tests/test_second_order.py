"""The second-order examples: Newton converges quadratically, Levenberg-Marquardt recovers the
curve's parameters, and the logistic-regression Hessian equals its closed form."""
import numpy as np
import pytest

from flowc.examples import levenberg_marquardt, logreg_hessian, newton


def test_newton_converges_quadratically(capsys):
    fig = newton.main(verbose=True)
    g = fig["grad_norms"]
    assert g[-1] < 1e-13 and fig["iterations"] <= 8
    # Near the end the error squares each step: log|g_k+1| / log|g_k| about 2 (or more) and
    # |g_k+1| / |g_k|^2 about constant, while linear convergence would give order 1.
    assert len(fig["orders"]) >= 2 and all(o > 1.8 for o in fig["orders"])
    near = [(a, b) for a, b in zip(g, g[1:]) if 1e-11 < b and a < 0.1]
    ratios = [b / a ** 2 for a, b in near]
    assert max(ratios) < 1.0 and max(ratios) / min(ratios) < 3
    # The result is the minimizer: grad f = A^T exp(A x) + x = 0, checked in NumPy.
    A, x = newton.make_problem(), fig["x"]
    assert np.linalg.norm(A.T @ np.exp(A @ x) + x) < 1e-12
    assert np.all(np.diff(fig["costs"]) <= 1e-15)
    out = capsys.readouterr().out
    assert "|grad f(x)|" in out and "convergence order" in out


def test_levenberg_marquardt_recovers_the_parameters():
    fig = levenberg_marquardt.main(verbose=False)
    np.testing.assert_allclose(fig["theta"], levenberg_marquardt.TRUE, atol=0.03)
    # It is the least-squares optimum: J^T r = 0, with J and r written in NumPy.
    t, y = levenberg_marquardt.make_data()
    a, b, c = fig["theta"]
    e = np.exp(-b * t)
    r = a * e + c - y
    J = np.stack([e, -a * t * e, np.ones_like(t)], axis=1)
    assert np.linalg.norm(J.T @ r) < 1e-8 * np.linalg.norm(J.T @ (a * e + c))


def test_levenberg_marquardt_damping_rescues_a_poor_start():
    t, y = levenberg_marquardt.make_data()
    theta, costs, lambdas = levenberg_marquardt.fit(t, y, start=(10.0, 5.0, -3.0))
    assert max(lambdas) > lambdas[0]           # some steps were rejected and damped more
    assert all(b <= a for a, b in zip(costs, costs[1:]))
    np.testing.assert_allclose(theta, levenberg_marquardt.TRUE, atol=0.03)


def test_logreg_hessian_matches_the_closed_form():
    fig = logreg_hessian.main(steps=5, verbose=False)
    assert fig["shape"] == (784, 784)
    assert fig["rel_error"] < 1e-10
    assert fig["symmetric_error"] < 1e-12
    assert fig["min_eig"] >= 0.02 - 1e-12
    np.testing.assert_allclose(fig["hessian"], fig["closed_form"], rtol=0,
                               atol=1e-10 * np.abs(fig["closed_form"]).max())


@pytest.mark.parametrize("mod, args", [(newton, ["--dim", "4", "--rows", "10"]),
                                       (levenberg_marquardt, ["--points", "30"])])
def test_example_command_lines(mod, args, capsys):
    mod.cli(args)
    assert capsys.readouterr().out.strip()
