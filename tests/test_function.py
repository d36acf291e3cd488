"""fc.function: Theano update semantics, output conventions, input checks, failure safety."""
import numpy as np
import pytest

import flowc as fc


def test_updates_use_values_from_before_the_call():
    a, b = fc.param("a", 1.0), fc.param("b", 2.0)
    swap = fc.function([], [a, b], updates=[(a, b), (b, a)])
    assert swap() == [1.0, 2.0]
    assert (a.get_value(), b.get_value()) == (2.0, 1.0)
    assert swap() == [2.0, 1.0]
    assert (a.get_value(), b.get_value()) == (1.0, 2.0)


def test_output_and_update_of_the_same_param():
    w = fc.param("w", np.zeros(3))
    step = fc.function([], w, updates=[(w, w + 1.0)])
    outs = [step() for _ in range(3)]
    for k, o in enumerate(outs):  # earlier results are never overwritten by later calls
        np.testing.assert_array_equal(o, np.full(3, float(k)))
    np.testing.assert_array_equal(w.get_value(), np.full(3, 3.0))


def test_outputs_are_fresh_arrays_each_call():
    x = fc.input("x", (None,))
    f = fc.function([x], x * 2.0)
    r1 = f(np.ones(4))
    r2 = f(np.full(4, 5.0))
    np.testing.assert_array_equal(r1, np.full(4, 2.0))
    np.testing.assert_array_equal(r2, np.full(4, 10.0))


def test_one_output_is_an_array_several_are_a_list():
    x = fc.input("x", (2,))
    assert isinstance(fc.function([x], x + 1.0)(np.ones(2)), np.ndarray)
    assert isinstance(fc.function([x], [x + 1.0])(np.ones(2)), np.ndarray)
    both = fc.function([x], [x + 1.0, x * 3.0])(np.ones(2))
    assert isinstance(both, list) and len(both) == 2


def test_batch_size_may_change_between_calls():
    x = fc.input("x", (None, 3))
    w = fc.param("w", np.arange(3.0))
    f = fc.function([x], fc.sum(x @ w))
    for n in (5, 2, 5, 7):
        X = np.ones((n, 3))
        assert f(X) == pytest.approx(3.0 * n)


def test_param_get_and_set_value():
    w = fc.param("w", [1.0, 2.0])
    v = w.get_value()
    v[0] = 99.0  # a copy: the parameter is unchanged
    np.testing.assert_array_equal(w.get_value(), [1.0, 2.0])
    w.set_value(np.array([3.0, 4.0]))
    f = fc.function([], w * 1.0)
    np.testing.assert_array_equal(f(), [3.0, 4.0])
    with pytest.raises(fc.InputError, match="expected shape"):
        w.set_value(np.ones(3))
    with pytest.raises(TypeError, match="param"):
        (w * 2).get_value()


def test_wrong_input_shape_or_dtype_names_the_input_and_keeps_params():
    x = fc.input("x", (None, 3))
    w = fc.param("w", np.ones(3))
    f = fc.function([x], fc.sum(x @ w), updates=[(w, w * 2.0)])
    with pytest.raises(fc.InputError, match=r"input 'x': expected shape \(None, 3\), got \(2, 4\)"):
        f(np.ones((2, 4)))
    with pytest.raises(fc.InputError, match="input 'x': expected dtype float64, got complex128"):
        f(np.ones((2, 3), dtype=complex))
    with pytest.raises(fc.InputError, match="expected 1 input"):
        f()
    np.testing.assert_array_equal(w.get_value(), np.ones(3))


def test_safe_casts_are_accepted_and_downcasts_need_a_flag():
    x = fc.input("x", (2,), dtype="float32")
    f = fc.function([x], x * 2)
    assert f(np.array([1, 2], dtype=np.int8)).dtype == np.float32
    with pytest.raises(fc.InputError, match="allow_input_downcast"):
        f(np.array([1.0, 2.0]))
    g = fc.function([x], x * 2, allow_input_downcast=True)
    assert g(np.array([1.0, 2.0])).dtype == np.float32


def test_a_kernel_failure_names_the_node_and_line_and_keeps_params():
    a = fc.input("a", (None,))
    b = fc.input("b", (None,))
    w = fc.param("w", 1.0)
    total = fc.sum(a + b)  # the line a user wants to see
    f = fc.function([a, b], total, updates=[(w, w + 1.0)])
    with pytest.raises(RuntimeError, match=r"add.*test_function.py:\d+.*broadcast"):
        f(np.ones(3), np.ones(4))
    assert w.get_value() == 1.0
    assert f(np.ones(2), np.ones(2)) == 4.0 and w.get_value() == 2.0


def test_missing_input_is_named():
    x, z = fc.input("x", (2,)), fc.input("z", (2,))
    with pytest.raises(fc.FlowcError, match="'z'|z: "):
        fc.function([x], x + z)


def test_params_are_not_inputs_and_updates_must_target_params():
    x = fc.input("x", (2,))
    w = fc.param("w", np.zeros(2))
    with pytest.raises(fc.FlowcError, match="params are state"):
        fc.function([w], w + 1.0)
    with pytest.raises(fc.FlowcError, match="must target params"):
        fc.function([x], x, updates=[(x, x + 1.0)])
    with pytest.raises(fc.FlowcError, match="shape"):
        fc.function([x], x, updates=[(w, fc.sum(x))])


def test_update_dtype_is_cast_to_the_param():
    w = fc.param("w", np.zeros(2, dtype=np.float32))
    f = fc.function([], [], updates=[(w, w + np.ones(2))])  # float64 operand
    f()
    assert w.get_value().dtype == np.float32


def test_generated_source_is_printable_python():
    x = fc.input("x", (None,))
    f = fc.function([x], fc.exp(x) + 1.0)
    assert "def run(" in f.source and "exp" in f.source
    compile(f.source, "<check>", "exec")


def test_scalar_outputs_are_arrays_on_every_call():
    x = fc.input("x", shape=(None,))
    f = fc.function([x], [fc.sum(x), fc.max(x * 2.0)])
    for _ in range(3):
        for r in f(np.arange(5.0)):
            assert type(r) is np.ndarray and r.shape == ()
