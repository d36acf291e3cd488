"""flowc.theano's vocabulary, checked the way Theano code uses it: type objects, symbolic
shapes, eval, debugprint, broadcast flags, aliasing, In/Out, copy, and the tensor functions
(each against NumPy, on three calls)."""
import io
import contextlib

import numpy as np
import pytest

import flowc as fc
import flowc.theano as theano
import flowc.theano.tensor as T


def test_type_objects_and_plurals():
    x = T.dscalar("x")
    assert x.type is T.dscalar and T.fmatrix("m").type is T.fmatrix
    assert T.dmatrix.broadcastable == (False, False) and T.drow.broadcastable == (True, False)
    a, b, c = T.vectors("abc")
    assert [t.name for t in (a, b, c)] == ["a", "b", "c"]
    p, q = T.dscalars("p", "q")
    assert p.name == "p" and q.type is T.dscalar
    assert T.scalars("z").name == "z"
    assert len(T.dmatrices(3)) == 3
    assert T.TensorType("float64", (False, True)) is T.dcol


def test_symbolic_shape_is_a_vector_as_an_output_and_dims_are_scalars():
    v = T.vector("v")
    m = T.dmatrix("m")
    assert theano.function([v], v.shape[0])(np.ones(4)) == 4
    assert theano.function([m], m.shape)(np.ones((2, 5))).tolist() == [2, 5]
    f = theano.function([v], T.sum(v) / v.shape[0])
    for n in (2, 3, 7):
        np.testing.assert_allclose(f(np.arange(float(n))), np.arange(float(n)).mean())
    r = T.drow("r")
    assert theano.function([r], r.shape[0])(np.ones((1, 3))) == 1  # a known dim still compiles
    assert int(T.prod(m.shape).eval({m: np.ones((3, 4))})) == 12


def test_eval_is_cached_per_graph_and_input_set():
    x, y = T.dscalars("x", "y")
    z = x + y
    assert np.allclose(z.eval({x: 16.3, y: 12.1}), 28.4)
    assert np.allclose(z.eval({x: 1.0, y: 2.0}), 3.0)
    assert len(x.graph.eval_cache) == 1
    w = theano.shared(np.array([1.0, 2.0]), name="w")
    assert (w * 2).eval().tolist() == [2.0, 4.0]


def test_debugprint_draws_the_tree_once_per_node():
    x = T.dvector("x")
    w = theano.shared(np.ones(2), name="w")
    y = T.exp(x * w) + x * w
    text = fc.debugprint(y, file="str")
    lines = text.splitlines()
    assert lines[0].startswith("add [id A] f64[2]")
    assert any(line.startswith(" | |x [id") for line in lines)
    assert "w [id" in text and "(shared)" in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        theano.printing.debugprint(theano.function([x], y))
    assert "fused" in out.getvalue() or "exp" in out.getvalue()
    assert theano.printing.pprint(x * 2) == "(x * 2.0)"
    deep = x
    for _ in range(3000):  # no recursion over depth
        deep = deep + 1.0
    assert len(fc.debugprint(deep, file="str").splitlines()) == 6001


def test_broadcast_flags_are_checked_at_call_time():
    m = T.dmatrix("m")
    assert m.broadcastable == (False, False) and T.row().broadcastable == (True, False)
    r = T.addbroadcast(m, 0)
    assert r.broadcastable == (True, False)
    f = theano.function([m], r + 1)
    assert f(np.zeros((1, 3))).tolist() == [[1.0, 1.0, 1.0]]
    with pytest.raises(ValueError, match="specify_shape"):
        f(np.zeros((2, 3)))
    assert T.patternbroadcast(m, (False, True)).broadcastable == (False, True)
    assert T.unbroadcast(r, 0) is r


def test_bool_of_a_variable_is_true_except_comparisons():
    W = theano.shared(np.ones(2))
    assert W and bool(T.dvector())
    with pytest.raises(TypeError, match="comparison"):
        bool(T.dvector() < 1)


def test_shared_borrow_aliases_and_internal_type():
    arr = np.ones(2)
    s_alias, s_copy = theano.shared(arr, borrow=True), theano.shared(arr)
    arr += 1
    assert s_alias.get_value().tolist() == [2.0, 2.0] and s_copy.get_value().tolist() == [1.0, 1.0]
    assert s_alias.get_value(borrow=True, return_internal_type=True) is arr


def test_in_out_borrow_and_copy_with_swap_and_without_updates():
    x = T.dvector("x")
    f = theano.function([theano.In(x, borrow=True)], theano.Out(x * 2, borrow=True))
    assert f(np.ones(2)).tolist() == [2.0, 2.0]
    state = theano.shared(0)
    inc = T.iscalar("inc")
    acc = theano.function([inc], state, updates=[(state, state + inc)])
    acc(5)
    new_state = theano.shared(0)
    new_acc = acc.copy(swap={state: new_state})
    assert [int(a) for a in new_acc(100)] == [0] and int(new_state.get_value()) == 100
    assert int(state.get_value()) == 5
    null = acc.copy(delete_updates=True)
    null(9000)
    assert int(state.get_value()) == 5


def test_softmax_of_a_vector_is_one_row():
    v = T.dvector("v")
    out = theano.function([v], T.nnet.softmax(v))(np.array([0.0, 1.0]))
    assert out.shape == (1, 2)
    from flowc.theano.tensor.nnet import sigmoid  # the package path Theano code imports
    assert sigmoid is T.nnet.sigmoid


def test_modes_map_onto_levels_and_checked_mode():
    x = T.dvector("x")
    for mode in ("FAST_RUN", "FAST_COMPILE", "DebugMode", "NanGuardMode"):
        assert theano.function([x], x * 2, mode=mode)(np.ones(2)).tolist() == [2.0, 2.0]


@pytest.mark.parametrize("name, build, ref", [
    ("arange", lambda v: T.arange(v.shape[0]) * 1.0, lambda v: np.arange(len(v)) * 1.0),
    ("zeros", lambda v: T.zeros((v.shape[0], 2)), lambda v: np.zeros((len(v), 2))),
    ("ones", lambda v: T.ones_like(v, dtype="int32"), lambda v: np.ones(len(v), "int32")),
    ("alloc", lambda v: T.alloc(v, 3, v.shape[0]), lambda v: np.tile(v, (3, 1))),
    ("fill", lambda v: T.fill(v, 2.0), lambda v: np.full(len(v), 2.0)),
    ("eye", lambda v: T.eye(v.shape[0]), lambda v: np.eye(len(v))),
    ("outer", lambda v: T.outer(v, v), lambda v: np.outer(v, v)),
    ("tile", lambda v: T.tile(v, (2, 1)), lambda v: np.tile(v, (2, 1))),
    ("repeat", lambda v: T.repeat(v, 2), lambda v: np.repeat(v, 2)),
    ("set_subtensor", lambda v: T.set_subtensor(v[1:], 0.0), lambda v: np.r_[v[:1], 0 * v[1:]]),
    ("inc_subtensor", lambda v: T.inc_subtensor(v[[0, 0]], 1.0), lambda v: v + (np.arange(len(v)) == 0) * 2),
    ("sort", lambda v: T.sort(v), np.sort),
    ("argsort", lambda v: T.argsort(v), lambda v: np.argsort(v, kind="stable")),
    ("round_away", lambda v: T.round(v * 2.5), lambda v: np.sign(v * 2.5) * np.floor(np.abs(v * 2.5) + 0.5)),
    ("round_even", lambda v: T.round(v * 2.5, "half_to_even"), lambda v: np.round(v * 2.5)),
    ("iround", lambda v: T.iround(v), lambda v: (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype("int64")),
    ("int_div", lambda v: T.int_div(v, 0.3), lambda v: v // 0.3),
    ("mod", lambda v: v % 0.3, lambda v: v % 0.3),
    ("flatten", lambda v: T.flatten(T.outer(v, v)), lambda v: np.outer(v, v).ravel()),
    ("join", lambda v: T.join(0, v, v * 2), lambda v: np.concatenate([v, v * 2])),
    ("shape_pad", lambda v: T.shape_padright(T.shape_padleft(v)), lambda v: v[None, :, None]),
    ("dimshuffle", lambda v: v.dimshuffle("x", 0), lambda v: v[None]),
    ("log2", lambda v: T.log2(T.abs_(v) + 1), lambda v: np.log2(np.abs(v) + 1)),
    ("var_std", lambda v: T.var(v) + v.std(), lambda v: np.var(v) + np.std(v)),
    ("xlogx", lambda v: T.xlogx.xlogx(T.abs_(v)), lambda v: np.abs(v) * np.log(np.abs(v))),
    ("one_hot", lambda v: T.extra_ops.to_one_hot(T.argsort(v), v.shape[0]),
     lambda v: np.eye(len(v))[np.argsort(v, kind="stable")]),
    ("specify_shape", lambda v: T.specify_shape(v, (4,)), lambda v: v),
])
def test_tensor_functions_match_numpy(name, build, ref):
    v = T.dvector("v")
    f = theano.function([v], build(v))
    rng = np.random.default_rng(3)
    for _ in range(3):
        a = rng.uniform(-2, 2, 4)
        np.testing.assert_allclose(f(a), ref(a), rtol=1e-12, atol=1e-12, err_msg=name)
