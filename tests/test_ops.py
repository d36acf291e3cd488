"""Op tests generated from the op table (tests/opinfo.py): inferred types, kernels against NumPy
at O0 and O1, vjps (first and second order) against central differences, and coverage."""
import inspect
import re

import networkx as nx
import numpy as np
import pytest

import flowc as fc
from flowc.ir.tensor import static_shape
from flowc_runtime.cpu.kernels import KERNELS
from tests import opinfo
from tests.opinfo import SAMPLES

ROWS = [pytest.param(s, id=s.name) for s in SAMPLES]
GRAD_ROWS = [pytest.param(s, id=s.name) for s in SAMPLES if s.grad]
NOGRAD_ROWS = [pytest.param(s, id=s.name) for s in SAMPLES if not s.grad and not s.compiled_only]


# -- helpers ----------------------------------------------------------------------------------
def build(s, dtypes=None):
    """Declare the row's inputs in the current graph and build the op; (inputs, output)."""
    dtypes = dtypes or [a.dtype for a in s.args]
    xs = [fc.input(f"a{i}", a.declared, dtype=dt) for i, (a, dt) in enumerate(zip(s.args, dtypes))]
    out = s.build(*xs)
    assert isinstance(out, fc.Tensor), f"{s.name} built {type(out).__name__}, not a Tensor"
    return xs, out


def float64_twin(s):
    """Dtypes with float32 operands promoted to float64: derivatives are checked in float64."""
    return ["float64" if a.is_float else a.dtype for a in s.args]


def draw(s, k=0, dtypes=None):
    arrays = s.draw(k)
    return arrays if dtypes is None else [a.astype(dt) for a, dt in zip(arrays, dtypes)]


def compatible(static, shape):
    static, shape = static_shape(static), static_shape(shape)  # a Tensor's .shape or a type's
    return len(static) == len(shape) and all(d is None or d == e for d, e in zip(static, shape))


def assert_matches(s, got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, NumPy gives {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, NumPy gives {want.shape}"
    if want.dtype.kind in "fc":
        rtol, atol = s.tols(want.dtype.name)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def cotangent(s, args):
    """A fixed random array shaped like the output, so every output element enters the cost."""
    rng = np.random.default_rng(1)
    shape = np.shape(s.ref(*args))
    # Magnitudes away from 0 with random signs: no output element can cancel out.
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def central_differences(f, args, i, eps=1e-6):
    """d f / d args[i] by central differences; f maps the arrays to a scalar."""
    args = [np.array(a, copy=True) for a in args]
    x = args[i]
    g = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        old = flat[j]
        h = eps * max(1.0, abs(float(old)))
        flat[j] = old + h
        fp = float(f(*args))
        flat[j] = old - h
        fm = float(f(*args))
        flat[j] = old
        gflat[j] = (fp - fm) / (2 * h)
    return g


def assert_grads_match(s, sym, num, cost_scale, what):
    scale = max(1.0, float(np.max(np.abs(num), initial=0.0)))
    # Central differences are exact to O(h^2) and lose ~1e-16*|cost|/h to rounding.
    atol = s.gtol * scale + 1e-15 / s.fd_eps * cost_scale
    np.testing.assert_allclose(sym, num, rtol=s.gtol, atol=atol, err_msg=what)


def grad_graph(s, dtypes):
    """(inputs, float inputs, cost = sum(out * R), gradients) for the row in the current graph.

    R is the last input, declared with out's static shape so unknown dims stay unknown.
    """
    xs, out = build(s, dtypes)
    r = fc.input("R", out.shape)
    cost = fc.sum(out * r)
    wrt = [x for x, a in zip(xs, s.args) if a.is_float]
    return xs + [r], wrt, cost, fc.grad(cost, wrt)


def grad_args(s, dtypes):
    args = draw(s, dtypes=dtypes)
    return args + [cotangent(s, args)]


# -- (a) inferred type = executed type ----------------------------------------------------------
@pytest.mark.parametrize("s", ROWS)
def test_inferred_type_matches_result(s):
    xs, out = build(s)
    if not any(None in a.declared for a in s.args) and not s.value_shape:
        assert None not in out.type.shape, f"all operand shapes are known, but inferred {out.type}"
    got = np.asarray(fc.function(xs, out, optimize="O0")(*draw(s)))
    assert got.dtype.name == out.dtype, f"inferred {out.dtype}, executed {got.dtype}"
    assert compatible(out.shape, got.shape), f"inferred {out.shape}, executed {got.shape}"


# -- (b) kernels = NumPy reference, through the real pipeline ------------------------------------
@pytest.mark.parametrize("s", ROWS)
def test_result_matches_numpy(s):
    xs, out = build(s)
    wants = [np.asarray(s.ref(*draw(s, k))) for k in (0, 1)]
    for level in ("O0", "O1", "O2"):
        f = fc.function(xs, out, optimize=level, verify=level != "O0")
        for k in (0, 1, 0):  # the second call of a shape runs the buffered body
            assert_matches(s, f(*draw(s, k)), wants[k], f"{level}, draw {k}")
    # As an intermediate (not an output) the op's kernel writes into a preallocated buffer.
    f = fc.function(xs, fc.stack([out]), optimize="O1")
    for k in (0, 1, 0):
        assert_matches(s, f(*draw(s, k))[0], wants[k], f"buffered, draw {k}")
    # At O2 the op joins a fused group with its consumer, and a fused reduction.
    if np.dtype(out.dtype).kind in "fiu":
        f = fc.function(xs, [out * 3 - 1, fc.sum(out * 3 - 1)], optimize="O2", verify=True)
        for k in (0, 1, 0):
            got = f(*draw(s, k))
            assert_matches(s, got[0], wants[k] * 3 - 1, f"fused, draw {k}")
            assert_matches(s, got[1], np.sum(wants[k] * 3 - 1), f"fused sum, draw {k}")


# -- (c) vjp = central differences (float64), also at O0 and for float32 ------------------------
@pytest.mark.parametrize("s", GRAD_ROWS)
def test_vjp_matches_central_differences(s):
    dts = float64_twin(s)
    xs, wrt, cost, gs = grad_graph(s, dts)
    for w, g in zip(wrt, gs):  # the gradient's static shape may know more than w's
        assert g.dtype == w.dtype and compatible(w.shape, g.shape), f"{g.type} for {w.type}"
    args = grad_args(s, dts)
    f_cost = fc.function(xs, cost)
    sym = fc.function(xs, gs)(*args)
    sym = [sym] if len(gs) == 1 else sym
    sym0 = fc.function(xs, gs, optimize="O0")(*args)
    sym0 = [sym0] if len(gs) == 1 else sym0
    cost_scale = abs(float(f_cost(*args)))
    floats = [i for i, a in enumerate(s.args) if a.is_float]
    for i, g, g0, w in zip(floats, sym, sym0, wrt):
        assert g.dtype.name == w.dtype and g.shape == args[i].shape
        num = central_differences(f_cost, args, i, s.fd_eps)
        assert_grads_match(s, g, num, cost_scale, f"d cost / d a{i}")
        np.testing.assert_allclose(g0, g, rtol=1e-12, atol=1e-12, err_msg=f"O0 vs O1, a{i}")
    if dts != [a.dtype for a in s.args]:  # a float32 row: gradients stay float32
        with fc.Graph():
            xs32, wrt32, _, gs32 = grad_graph(s, None)
            for w, g in zip(wrt32, gs32):
                assert g.dtype == w.dtype and compatible(w.shape, g.shape), f"{g.type}, {w.type}"
            got = fc.function(xs32, gs32)(*grad_args(s, None))
        got = [got] if len(gs32) == 1 else got
        for g32, g64, w in zip(got, sym, wrt32):
            assert g32.dtype.name == w.dtype
            np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5 * max(1, np.abs(g64).max()))


@pytest.mark.parametrize("s", GRAD_ROWS)
def test_second_order_vjp_matches_central_differences(s):
    # Derivative rules build ordinary nodes, so differentiating the gradient must work too.
    dts = float64_twin(s)
    xs, wrt, cost, gs = grad_graph(s, dts)
    args = grad_args(s, dts)
    rng = np.random.default_rng(3)
    cost2 = fc.constant(0.0)
    for g, w in zip(gs, wrt):
        cost2 = cost2 + fc.sum(g * fc.constant(rng.uniform(-1, 1, args[next(i for i, x in enumerate(xs) if x is w)].shape)))
    g2 = fc.grad(cost2, wrt)
    f_cost2 = fc.function(xs, cost2)
    sym = fc.function(xs, g2)(*args)
    sym = [sym] if len(g2) == 1 else sym
    cost_scale = abs(float(f_cost2(*args)))
    floats = [i for i, a in enumerate(s.args) if a.is_float]
    for i, g in zip(floats, sym):
        num = central_differences(f_cost2, args, i, s.fd_eps)
        assert_grads_match(s, g, num, cost_scale, f"second order, a{i}")


# -- (d) coverage -------------------------------------------------------------------------------
def test_every_op_is_in_the_table_and_has_a_kernel():
    seen = set()
    for s in SAMPLES:
        with fc.Graph() as g:
            _, out = build(s)
            seen |= {g.nx.nodes[n]["op"] for n in nx.ancestors(g.nx, out.id) | {out.id}}
    assert not set(fc.OPS) - seen, f"ops with no row in tests/opinfo.py: {set(fc.OPS) - seen}"
    assert not set(fc.OPS) - set(KERNELS), f"ops with no NumPy kernel: {set(fc.OPS) - set(KERNELS)}"


PUBLIC = ("exp log log1p expm1 sqrt square abs sign tanh sigmoid relu softplus sin cos maximum "
          "minimum where clip equal not_equal matmul dot sum mean max min prod argmax argmin "
          "logsumexp softmax log_softmax reshape transpose concatenate stack broadcast_to "
          "expand_dims squeeze take cast zeros_like ones_like").split()
# Operators and methods, as the table's lambdas spell them.
SPELLINGS = ["a + b", "a - b", "a * b", "a / b", "a ** b", "a @ b", "-x", "abs(x)", "a < b",
             "a <= b", "a > b", "a >= b", "x[0]", "x[1:]", "x[[0", "x[i]", "x.T", ".sum(",
             ".mean(", ".max(", ".min(", ".reshape(", ".astype(", ".dot(", ".abs()"]


def test_every_public_op_function_and_operator_is_in_the_table():
    # Text search, because the rows' lambdas are the only record of which spelling they use.
    src = inspect.getsource(opinfo)
    missing = [n for n in PUBLIC if not re.search(rf"\bfc\.{n}\b", src)]
    missing += [sp for sp in SPELLINGS if sp not in src]
    assert not missing, f"not exercised by any row: {missing}"
    assert all(callable(getattr(fc, n)) for n in PUBLIC)


# -- (e) no gradient through integer / boolean results -------------------------------------------
@pytest.mark.parametrize("s", NOGRAD_ROWS)
def test_non_differentiable_rows_say_so(s):
    xs, out = build(s)
    floats = [x for x, a in zip(xs, s.args) if a.is_float]
    if s.zero_grad:
        # Float in, float out, but constant by design: the gradient is exactly zero.
        g = fc.function(xs, fc.grad(fc.sum(out), floats[0]))(*draw(s))
        np.testing.assert_array_equal(g, np.zeros_like(g))
        return
    if np.dtype(out.dtype).kind == "f":
        # A float result of non-float operands: nothing to differentiate with respect to.
        assert not floats, f"{s.name}: float result of float operands should be differentiable"
        with pytest.raises(fc.GradError, match="floating"):
            fc.grad(fc.sum(out), xs[0])
        return
    # Asking for the gradient of an integer/boolean cost is an error that says why.
    with pytest.raises(fc.GradError, match="not floating point"):
        fc.grad(fc.sum(out), floats or xs)
    if not floats:
        return
    # Through a cast, the result is piecewise constant: the gradient is zero (as in Theano/JAX),
    # and disconnected="raise" names the input that gets no gradient.
    R = cotangent(s, draw(s))
    cost = fc.sum(fc.cast(out, "float64") * fc.constant(R))
    gs = fc.function(xs, fc.grad(cost, floats))(*draw(s))
    for g in [gs] if len(floats) == 1 else gs:
        np.testing.assert_array_equal(g, np.zeros_like(g))
    with pytest.raises(fc.GradError, match=floats[0].name):
        fc.grad(cost, floats[0], disconnected="raise")


# -- documented derivative behaviour ------------------------------------------------------------
def _grad_at(build_cost, v):
    x = fc.input("x", np.shape(v))
    return fc.function([x], fc.grad(build_cost(x), x))(np.asarray(v, dtype=float))


@pytest.mark.parametrize("name, f, d2", [
    ("cube", lambda x: x ** 3, lambda v: 6 * v),
    ("tanh", fc.tanh, lambda v: -2 * np.tanh(v) * (1 - np.tanh(v) ** 2)),
    ("sigmoid", fc.sigmoid, lambda v: (s := 1 / (1 + np.exp(-v))) * (1 - s) * (1 - 2 * s)),
    ("softplus", fc.softplus, lambda v: (s := 1 / (1 + np.exp(-v))) * (1 - s)),
    ("log", fc.log, lambda v: -1 / v ** 2),
    ("sin", fc.sin, lambda v: -np.sin(v)),
])
def test_second_derivatives_closed_form(name, f, d2):
    x = fc.input("x", (5,))
    gg = fc.grad(fc.sum(fc.grad(fc.sum(f(x)), x)), x)
    v = np.linspace(0.25, 2.0, 5) if name == "log" else np.linspace(-1.5, 1.5, 5)
    np.testing.assert_allclose(fc.function([x], gg)(v), d2(v), rtol=1e-10, atol=1e-12)


def test_gradients_at_ties_and_kinks():
    # max/min: tied maxima share the gradient equally (as JAX and PyTorch's amax do).
    np.testing.assert_allclose(_grad_at(lambda x: fc.max(x), [1.0, 3.0, 3.0]), [0, 0.5, 0.5])
    np.testing.assert_allclose(_grad_at(lambda x: fc.sum(fc.min(x, axis=1)), [[2.0, 2.0, 5.0]]),
                               [[0.5, 0.5, 0]])
    # maximum/minimum: a tie sends the whole gradient to the first operand.
    np.testing.assert_allclose(_grad_at(lambda x: fc.sum(fc.maximum(x, 1.0)), [1.0, 2.0, 0.0]),
                               [1, 1, 0])
    np.testing.assert_allclose(_grad_at(lambda x: fc.sum(fc.minimum(1.0, x)), [1.0, 2.0, 0.0]),
                               [0, 0, 1])
    # relu, abs and sign at 0: gradient 0 (the subgradient NumPy's sign gives).
    np.testing.assert_allclose(_grad_at(lambda x: fc.sum(fc.relu(x)), [0.0, 1.0]), [0, 1])
    np.testing.assert_allclose(_grad_at(lambda x: fc.sum(abs(x)), [0.0, -2.0]), [0, -1])
    np.testing.assert_allclose(_grad_at(lambda x: fc.sum(fc.sign(x)), [0.0, -2.0]), [0, 0])


@pytest.mark.parametrize("name", ["matmul_2d", "softmax_xent", "logsumexp_axis", "take_axis0"])
def test_check_grad_agrees_on_table_rows(name):
    # fc.check_grad is the user's tool for the same check; it must agree with the table's.
    s = opinfo.BY_NAME[name]
    args = s.draw()
    R = cotangent(s, args)
    floats = [i for i, a in enumerate(s.args) if a.is_float]

    def cost(*ts):
        full = list(args)
        for i, t in zip(floats, ts):
            full[i] = t
        return fc.sum(s.build(*full) * R)
    assert fc.check_grad(cost, [args[i] for i in floats]) < 1e-6
