"""Random streams (flowc/random.py, flowc.theano's RandomStreams and MRG_RandomStreams).

References: the counter hash written out in NumPy (the runtime's own `random_bits` is
checked against a pure-Python one in tests/opinfo.py), Box-Muller in NumPy, and the
Kolmogorov-Smirnov test (own implementation, asymptotic p-value) over 10**6 draws. Every
seed is fixed, so every statistic below is one fixed number."""
import math

import numpy as np
import pytest

import flowc as fc
from flowc.nn import checkpoint
from flowc_runtime.cpu.kernels_extra import random_bits
from tests import fake_cupy
from tests import gpu_emulator as emu
from tests.test_gpu import host, relink

LEVELS = ("O0", "O1", "O2")
N = 10 ** 6


# -- references ----------------------------------------------------------------------------------
def ref_uniform(stream, counter, shape, dtype="float64"):
    """The numbers of draw `stream` at call `counter` (0 = first call), as the op defines them."""
    bits = random_bits(stream_key(), counter, stream, int(np.prod(shape, dtype=np.int64)))
    if dtype == "float32":
        return ((bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)).reshape(shape)
    return ((bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).reshape(shape)


_KEY = {}


def stream_key(seed=None):
    if seed is not None:
        _KEY["key"] = fc.random.seed_key(seed)
    return _KEY["key"]


def ref_normal(s1, s2, counter, shape):
    u1, u2 = ref_uniform(s1, counter, shape), ref_uniform(s2, counter, shape)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


def ks(sample, cdf):
    """(D, p): the Kolmogorov-Smirnov statistic of `sample` against `cdf` and its asymptotic
    p-value (Kolmogorov's series, with Stephens' small-sample correction)."""
    x = np.sort(np.asarray(sample, dtype=np.float64))
    n = len(x)
    F = cdf(x)
    d = max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return float(d), float(min(max(p, 0.0), 1.0))


_erf = np.frompyfunc(math.erf, 1, 1)


def normal_cdf(x):
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def uniform_cdf(x):
    return np.clip(x, 0.0, 1.0)


# -- the numbers: every level, first, second and third call ---------------------------------------
@pytest.mark.parametrize("level", LEVELS)
def test_draws_equal_the_reference_at_every_level_and_call(level):
    with fc.Graph():
        stream_key(7)
        x = fc.input("x", (None, 3))
        s = fc.random.Stream(7)
        u = s.uniform(like=x)                    # stream 0
        z = s.normal((5,), mean=1.0, std=2.0)    # streams 1, 2
        u32 = s.uniform((4,), low=-1.0, high=3.0, dtype="float32")  # stream 3
        b = s.binomial((2, 3), n=4, p=0.25)      # stream 4 (4 rows)
        k = s.integers(3, 9, size=6)             # stream 5
        f = fc.function([x], [u, z, u32, b, k, x + u], optimize=level)
        for call in range(3):
            got = f(np.zeros((2, 3)))
            np.testing.assert_array_equal(got[0], ref_uniform(0, call, (2, 3)))
            np.testing.assert_allclose(got[1], 1.0 + 2.0 * ref_normal(1, 2, call, (5,)),
                                       rtol=1e-14, atol=1e-14)
            want32 = np.float32(-1.0) + np.float32(4.0) * ref_uniform(3, call, (4,), "float32")
            np.testing.assert_allclose(got[2], want32, rtol=1e-6)
            assert got[2].dtype == np.float32 and got[3].dtype == np.int64
            np.testing.assert_array_equal(got[3], (ref_uniform(4, call, (4, 2, 3)) < 0.25).sum(0))
            np.testing.assert_array_equal(got[4], 3 + np.floor(ref_uniform(5, call, (6,)) * 6))
            np.testing.assert_array_equal(got[5], got[0])    # one draw used twice: same numbers
        assert s.state.get_value()[1] == 3.0


@pytest.mark.parametrize("level", LEVELS)
def test_permutation_and_choice(level):
    with fc.Graph():
        stream_key(3)
        s = fc.random.Stream(3)
        perm = s.permutation(7)
        pick = s.choice(np.array([10.0, 20.0, 30.0, 40.0, 50.0]), size=(2, 2), replace=False)
        weighted = s.choice(3, size=2000, p=[0.2, 0.0, 0.8])
        f = fc.function([], [perm, pick, weighted], optimize=level)
        for call in range(3):
            p, c, w = f()
            np.testing.assert_array_equal(p, np.argsort(ref_uniform(0, call, (7,)), kind="stable"))
            order = np.argsort(ref_uniform(1, call, (5,)), kind="stable")[:4].reshape(2, 2)
            np.testing.assert_array_equal(c, 10.0 * (order + 1))
            assert 1 not in w and abs((w == 2).mean() - 0.8) < 0.03


@pytest.mark.parametrize("level", LEVELS)
def test_choice_with_p_as_a_streams_first_draw(level):
    # The fuzzer's finding: choice(..., p=...) as the first draw of a fresh stream failed with
    # AttributeError (the probabilities were checked before the stream had its state).
    with fc.Graph():
        stream_key(5)
        pool = fc.input("pool", (3,))
        picked = fc.random.Stream(5).choice(pool, size=(4,), p=[0.25, 0.0, 0.75])
        stream_key(6)
        labels = fc.random.Stream(6).choice(3, size=(5,), p=[0.0, 1.0, 0.0])
        g = fc.grad(fc.sum(picked), pool)
        f = fc.function([pool], [picked, labels, g], optimize=level)
        pv = np.array([1.0, 2.0, 3.0])
        for call in range(3):
            got_p, got_l, got_g = f(pv)
            stream_key(5)
            idx = np.where(ref_uniform(0, call, (4,)) >= 0.25, 2, 0)
            np.testing.assert_array_equal(got_p, pv[idx])
            np.testing.assert_array_equal(got_l, np.ones(5, np.int64))
            np.testing.assert_array_equal(got_g, np.bincount(idx, minlength=3).astype(float))


def test_float32_normal_is_the_float64_one_rounded_once():
    s = fc.random.Stream(5)
    z64, z32 = s.normal((1000,)), None
    s2 = fc.random.Stream(5)
    z32 = s2.normal((1000,), dtype="float32")
    a, b = fc.function([], [z64, z32])()
    assert b.dtype == np.float32
    np.testing.assert_array_equal(b, a.astype(np.float32))


# -- statistics over 10**6 draws ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ks_uniform_and_normal(dtype):
    s = fc.random.Stream(2024)
    u, z = s.uniform(N, dtype=dtype), s.normal(N, dtype=dtype)
    f = fc.function([], [u, z])
    for call in range(2):
        uu, zz = f()
        assert uu.dtype == zz.dtype == np.dtype(dtype)
        assert 0.0 <= uu.min() and uu.max() < 1.0
        du, pu = ks(uu, uniform_cdf)
        dn, pn = ks(zz, normal_cdf)
        # D's 0.1% critical value at n = 10**6 is 1.95e-3; a fixed seed makes these fixed.
        assert du < 1.95e-3 and pu > 1e-3, (du, pu)
        assert dn < 1.95e-3 and pn > 1e-3, (dn, pn)
        assert abs(zz.mean()) < 5e-3 and abs(zz.std() - 1.0) < 5e-3


def test_ks_detects_a_wrong_distribution():
    """The KS helper itself: a shifted sample fails."""
    u = fc.function([], fc.random.Stream(1).uniform(N))()
    d, p = ks(np.minimum(u * 1.01, 1.0), uniform_cdf)
    assert d > 5e-3 and p < 1e-6


def test_binomial_mean_and_variance():
    s = fc.random.Stream(11)
    n, p = 5, 0.3
    b, b1 = s.binomial(N // 5, n=n, p=p), s.binomial(N, p=0.7, dtype="float32")
    v, v1 = fc.function([], [b, b1])()
    se = math.sqrt(n * p * (1 - p) / len(v))
    assert abs(v.mean() - n * p) < 4 * se
    assert abs(v.var() - n * p * (1 - p)) < 0.02
    assert set(np.unique(v)) <= set(range(n + 1))
    assert v1.dtype == np.float32 and abs(v1.mean() - 0.7) < 4 * math.sqrt(0.21 / N)
    assert abs(v1.var() - 0.21) < 0.002


def _independent(a, b, what):
    a, b = a.ravel(), b.ravel()
    r = np.corrcoef(a, b)[0, 1]
    assert abs(r) < 5 / math.sqrt(len(a)), (what, r)
    # Joint 10 x 10 histogram: chi-square with 99 degrees of freedom, 0.1% quantile 148.
    h = np.histogram2d(a, b, 10, [[0, 1], [0, 1]])[0]
    e = len(a) / 100
    chi2 = ((h - e) ** 2 / e).sum()
    assert chi2 < 148, (what, chi2)


def test_independence_of_streams_draws_and_calls():
    s1, s2 = fc.random.Stream(1), fc.random.Stream(2)
    a, b, c = s1.uniform(N // 4), s1.uniform(N // 4), s2.uniform(N // 4)
    f = fc.function([], [a, b, c])
    first, second = f(), f()
    _independent(first[0], first[1], "two draws of one stream")
    _independent(first[0], first[2], "two streams")
    _independent(first[0], second[0], "successive calls")
    same = fc.function([], fc.random.Stream(1).uniform(N // 4))()
    np.testing.assert_array_equal(same, first[0])   # same seed, same numbers


# -- default updates ----------------------------------------------------------------------------------
def test_default_update_no_default_updates_and_user_update():
    x = fc.input("x", (None,))
    s = fc.random.Stream(0)
    u = s.uniform(like=x)
    f = fc.function([x], u)
    frozen = fc.function([x], u, no_default_updates=True)
    frozen_list = fc.function([x], u, no_default_updates=[s.state])
    a = frozen(np.zeros(4))
    np.testing.assert_array_equal(frozen_list(np.zeros(4)), a)
    np.testing.assert_array_equal(f(np.zeros(4)), a)       # the first call: counter 0
    b = f(np.zeros(4))
    assert not np.array_equal(a, b)
    f(np.zeros(4))
    c = frozen(np.zeros(4))   # reads the current state: the next call's numbers
    np.testing.assert_array_equal(f(np.zeros(4)), c)
    assert s.state.get_value()[1] == 4.0
    # The user's own update of the state wins over the default one.
    jump = fc.function([x], u, updates=[(s.state, s.state + np.array([0.0, 10.0]))])
    jump(np.zeros(4))
    assert s.state.get_value()[1] == 14.0
    # A function not using the stream does not advance it.
    fc.function([x], x * 2)(np.zeros(4))
    assert s.state.get_value()[1] == 14.0


def test_seed_restarts_the_stream():
    s = fc.random.Stream(4)
    f = fc.function([], s.normal((6,)))
    a, b = f(), f()
    s.seed(4)
    np.testing.assert_array_equal(f(), a)
    np.testing.assert_array_equal(f(), b)
    s.seed(5)
    assert not np.array_equal(f(), a)


def build_noisy(seed):
    x = fc.input("x", (None, 4))
    w = fc.param("w", np.ones(4))
    s = fc.random.Stream(seed, name="noise")
    y = (x + s.normal(like=x, std=0.1)) * s.binomial(like=x, p=0.8, dtype="float64")
    f = fc.function([x], fc.sum(y @ w), updates=[(w, w * 0.99)])
    return f, [w, s.state]


def test_checkpoint_resumes_the_same_stream(tmp_path):
    X = np.ones((3, 4))
    with fc.Graph():
        f, params = build_noisy(9)
        straight = [f(X) for _ in range(6)]
    with fc.Graph():
        f, params = build_noisy(9)
        first = [f(X) for _ in range(3)]
        checkpoint.save_params(tmp_path / "ck.npz", params)
    with fc.Graph():
        f, params = build_noisy(9)
        checkpoint.load_params(tmp_path / "ck.npz", params)
        rest = [f(X) for _ in range(3)]
    np.testing.assert_array_equal(first + rest, straight)


# -- errors: build time when known, call time otherwise; a failed call advances nothing -------------
def test_bad_sizes_and_arguments_are_build_time_errors():
    s = fc.random.Stream(0)
    with pytest.raises(fc.ArgumentError, match=r"random uniform at .*test_random.py.*size must "
                                               r"not be negative, got \(3, -1\)"):
        s.uniform((3, -1))
    with pytest.raises(fc.ArgumentError, match=r"random binomial .*p must be in \[0, 1\], got 1.5"):
        s.binomial(4, p=1.5)
    with pytest.raises(fc.ArgumentError, match=r"p must be in \[0, 1\], got -0.1"):
        s.binomial(4, p=np.array([0.5, -0.1, 0.2, 0.3]))
    with pytest.raises(fc.ArgumentError, match=r"p must be in \[0, 1\], got nan"):
        s.binomial(4, p=fc.constant(np.array([0.5, np.nan, 0.2, 0.3])))
    with pytest.raises(fc.ArgumentError, match="known only at call time; pass like="):
        s.normal((None, 3))
    with pytest.raises(fc.ArgumentError, match="needs low < high"):
        s.integers(5, 5)
    with pytest.raises(fc.ArgumentError, match="cannot take 5 entries of 3 without replacement"):
        s.choice(3, size=5, replace=False)
    with pytest.raises(fc.ArgumentError, match="probabilities p must sum to 1"):
        s.choice(3, size=5, p=[0.5, 0.2, 0.2])
    with pytest.raises(fc.ArgumentError, match="seed must be a non-negative integer"):
        fc.random.Stream(-1)
    with pytest.raises(fc.ArgumentError, match="dtype must be float32 or float64"):
        s.normal(3, dtype="int32")


@pytest.mark.parametrize("level", LEVELS)
def test_bad_probability_at_call_time_changes_nothing(level):
    with fc.Graph():
        stream_key(6)
        p = fc.input("p", (None,))
        w = fc.param("w", np.zeros(3))
        s = fc.random.Stream(6)
        b = s.binomial(p=p, like=p, dtype="float64")
        f = fc.function([p], b, updates=[(w, w + 1.0)], optimize=level)
        with pytest.raises(fc.FlowcError, match=r"random binomial: probability p must be in "
                                                r"\[0, 1\], got 1.5 at index \(1,\)"):
            f(np.array([0.5, 1.5, 0.5]))
        assert s.state.get_value()[1] == 0.0 and not w.get_value().any()
        with pytest.raises(fc.FlowcError, match="got nan"):
            f(np.array([np.nan, 0.5, 0.5]))
        for call in range(3):
            got = f(np.full(3, 0.5))
            np.testing.assert_array_equal(got, (ref_uniform(0, call, (3,)) < 0.5).astype(float))
        assert s.state.get_value()[1] == 3.0 and (w.get_value() == 3.0).all()


# -- the GPU: the same numbers on the strict fake device (generated CUDA run by the emulator) -------
@pytest.fixture
def fake(monkeypatch):
    if not emu.available():
        pytest.skip("no C++ compiler (g++) for the host emulator")
    cp = fake_cupy.install(monkeypatch)
    yield cp
    fake_cupy.uninstall()


@pytest.mark.parametrize("level", LEVELS)
def test_gpu_draws_equal_the_cpu_ones(fake, level):
    x = fc.input("x", (None, 3))
    p = fc.input("p", (None, 3))
    s = fc.random.Stream(12)
    outs = [s.uniform(like=x), s.normal(like=x, dtype="float32"), s.binomial(like=p, p=p),
            s.normal((4, 2), mean=3.0), s.permutation(5), s.integers(-3, 4, size=7)]
    f = fc.function([x, p], outs, optimize=level)
    assert len(f.program.params) == 1   # the stream's state, advanced by its default update
    cpu, gpu = relink(f, "cpu"), relink(f, "gpu")
    X, P = np.zeros((2, 3)), np.full((2, 3), 0.4)
    for call in range(3):
        want, got = cpu(X, P), host(gpu(X, P))
        for w, g in zip(want, got):
            assert w.dtype == g.dtype
            np.testing.assert_allclose(g, w, rtol=1e-6 if w.dtype == np.float32 else 1e-13,
                                       atol=1e-6)
    assert host(gpu.cells[0].value)[1] == cpu.cells[0].value[1] == 3.0
    with pytest.raises(fc.FlowcError, match="probability p must be in"):
        gpu(X, np.full((2, 3), 2.0))
    assert host(gpu.cells[0].value)[1] == 3.0   # the failed call advanced nothing


# -- flowc.theano ---------------------------------------------------------------------------------------
def test_theano_random_streams_as_in_theanos_documentation():
    import flowc.theano as theano
    import flowc.theano.tensor as T
    from flowc.theano.tensor.shared_randomstreams import RandomStreams
    srng = RandomStreams(seed=234)
    rv_u = srng.uniform((2, 2))
    rv_n = srng.normal((2, 2))
    f = theano.function([], rv_u)
    g = theano.function([], rv_n, no_default_updates=True)
    nearly_zeros = theano.function([], rv_u + rv_u - 2 * rv_u)
    f_val0, f_val1 = f(), f()
    assert not np.array_equal(f_val0, f_val1) and f_val0.dtype == np.float64
    np.testing.assert_array_equal(g(), g())
    assert not nearly_zeros().any()
    srng.seed(234)
    np.testing.assert_array_equal(f(), f_val0)
    ints = theano.function([], srng.random_integers((1000,), 1, 3))()
    assert set(np.unique(ints)) == {1, 2, 3}
    perm = theano.function([], srng.permutation(n=6))()
    assert sorted(perm) == list(range(6))
    x = T.matrix("x")
    assert theano.function([x], srng.binomial(like=x, p=0.5))(np.zeros((3, 2))).shape == (3, 2)
    with pytest.raises(NotImplementedError, match="RandomStreams.poisson"):
        srng.poisson((2,))


def test_theano_mrg_streams_rbm_sampling_and_dropout():
    import flowc.theano as theano
    import flowc.theano.tensor as T
    from flowc.theano.sandbox.rng_mrg import MRG_RandomStreams
    rng = MRG_RandomStreams(seed=1234)
    h = T.matrix("h")
    # The RBM tutorial's sample: size=h.shape with p=h draws with h's run-time shape.
    sample = rng.binomial(size=h.shape, n=1, p=h, dtype=theano.config.floatX)
    mask = rng.uniform((3, 4), dtype="float32") < 0.5
    f = theano.function([h], [sample, mask])
    s, m = f(np.full((5, 2), 0.25))
    assert s.shape == (5, 2) and s.dtype == np.float64 and set(np.unique(s)) <= {0.0, 1.0}
    assert m.shape == (3, 4)
    assert theano.tensor.shared_randomstreams.RandomStreams is not None
    with pytest.raises(NotImplementedError, match=r"MRG_RandomStreams.binomial\(n=3\)"):
        rng.binomial((2,), n=3)
    with pytest.raises(NotImplementedError, match=r"normal\(truncate=True\)"):
        rng.normal((2,), truncate=True)
    # A size read at run time (Theano's symbolic shape vector) draws that many numbers.
    assert theano.function([h], rng.normal(h.shape))(np.zeros((5, 2))).shape == (5, 2)
    assert theano.function([h], rng.uniform((h.shape[0] * 2,)))(np.zeros((3, 2))).shape == (6,)
    z = theano.function([], rng.normal((N // 10,), avg=2.0, std=3.0, nstreams=90))()
    assert abs(z.mean() - 2.0) < 0.05 and abs(z.std() - 3.0) < 0.05


@pytest.mark.parametrize("level", LEVELS)
def test_gradient_flows_through_mean_and_std_not_the_noise(level):
    """The reparameterization trick: z = mean + std * eps, so d sum(z) / d std = sum(eps)."""
    mu, sd = fc.param("mu", np.array([0.5, -1.0])), fc.param("sd", np.array([2.0, 0.5]))
    z = fc.random.Stream(8).normal((50, 2), mean=mu, std=sd)
    g_mu, g_sd = fc.grad(fc.sum(z), [mu, sd])
    f = fc.function([], [z, g_mu, g_sd], optimize=level)
    for _ in range(3):
        zz, gm, gs = f()
        np.testing.assert_array_equal(gm, [50.0, 50.0])
        np.testing.assert_allclose(gs, ((zz - [0.5, -1.0]) / [2.0, 0.5]).sum(0), rtol=1e-12,
                                   atol=1e-12)


def test_checked_mode_runs_draws():
    """Checked mode compares the optimized program with the plain one: same numbers."""
    s = fc.random.Stream(3)
    x = fc.input("x", (None,))
    f = fc.function([x], fc.exp(s.normal(like=x)) * s.uniform(like=x) + x, mode="check")
    first = f(np.zeros(5))
    assert first.shape == (5,) and not np.array_equal(first, f(np.zeros(5)))
    assert s.state.get_value()[1] == 2.0


@pytest.mark.parametrize("level", LEVELS)
def test_cuda_graph_replay_with_a_call_time_probability_check(fake, level):
    """random_check reads a bool on the host: the capture is cut there (as at a cuBLAS call),
    and a bad p found at replay fails the call before the last graph commits anything."""
    p = fc.input("p", (None, 3))
    s = fc.random.Stream(12)
    f = fc.function([p], [s.binomial(like=p, p=p) * 2, s.normal(like=p) + p], optimize=level)
    cpu, gpu = relink(f, "cpu"), relink(f, "gpu", cuda_graph=True)
    P = np.full((2, 3), 0.4)
    for call in range(3):
        for w, g in zip(cpu(P), host(gpu(P))):
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)
    assert list(gpu.graph_status().values()) == ["captured"], gpu.graph_status()
    with pytest.raises(fc.FlowcError, match=r"probability p must be in \[0, 1\], got 1.5"):
        gpu(np.array([[0.4, 0.4, 0.4], [0.4, 1.5, 0.4]]))
    assert host(gpu.cells[0].value)[1] == 3.0
    for w, g in zip(cpu(P), host(gpu(P))):   # the replay goes on where it was
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)
