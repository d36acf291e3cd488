"""A saved Program is untrusted: tampered files raise ProgramFileError and never run code.

Every payload below would create the canary file if it ever reached Python source; each
test asserts that it did not. The fuzz test makes random single-field changes to a saved
Program: each must load and run, or raise the runtime's error classes, and nothing else.
"""
import copy
import json
import os
import random

import numpy as np
import pytest

import flowc as fc
import flowc_runtime as runtime
from flowc_runtime.program.format import Instr, Program


@pytest.fixture
def canary(tmp_path):
    path = str(tmp_path / "canary")
    yield path
    assert not os.path.exists(path), "a payload from the file ran"


def payload(path):
    return f"__import__('builtins').open({path!r}, 'w').close()"


X = np.arange(12.0).reshape(4, 3) / 10
Y = np.array([1.0, 0.0, 1.0, 0.5])


def model(optimize="O2"):
    """A small training step with matmuls, fused groups, a reduction, getitem and an update."""
    x, y = fc.input("x", (None, 3)), fc.input("y", (None,))
    w = fc.param("w", np.array([0.5, -0.5, 0.25]))
    z = x @ w
    cost = fc.mean((fc.sigmoid(z) - y) ** 2) + 0.01 * fc.sum(w[1:] * w[1:])
    gw = fc.grad(cost, w)
    return fc.function([x, y], [cost, fc.tanh(z) * 2.0 + 1.0], updates=[(w, w - 0.1 * gw)],
                       optimize=optimize)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(base path, JSON object, arrays, the outputs of three calls) of a saved model."""
    base = str(tmp_path_factory.mktemp("saved") / "model")
    model().save(base)
    with open(base + ".json") as f:
        d = json.load(f)
    with np.load(base + ".npz") as z:
        arrays = {k: z[k] for k in z.files}
    ref = runtime.load(base)
    expect = [[np.array(o) for o in ref(X, Y)] for _ in range(3)]
    return base, d, arrays, expect


def write(tmp_path, d, arrays, name="bad"):
    base = str(tmp_path / name)
    with open(base + ".json", "w") as f:
        json.dump(d, f)
    np.savez(base + ".npz", **arrays)
    return base


def instr_index(d, kernel):
    return next(k for k, ins in enumerate(d["instrs"]) if ins["kernel"] == kernel)


def load_fails(tmp_path, d, arrays, match):
    base = write(tmp_path, d, arrays)
    with pytest.raises(runtime.ProgramFileError, match=match) as info:
        runtime.load(base)
    assert os.path.basename(base) in str(info.value)
    return str(info.value)


def test_a_valid_file_loads_and_runs_like_the_original(saved, tmp_path):
    base, d, arrays, expect = saved
    f = runtime.load(write(tmp_path, d, arrays))
    for want in expect:  # first, second and third call: memory plans kick in
        for a, b in zip(f(X, Y), want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("level", ["O0", "O1", "O2"])
def test_checked_load_runs_like_the_compiled_function(tmp_path, level):
    f = model(level)
    f.save(str(tmp_path / "m"))
    g = runtime.load(str(tmp_path / "m"))
    for _ in range(3):  # both step from the same saved state
        for a, b in zip(g(X, Y), f(X, Y)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n", "\u2028", "\x0b", "\x0c", "\x85"])
def test_where_with_a_line_break_is_refused(saved, tmp_path, canary, sep):
    _, d, arrays, _ = saved
    d = copy.deepcopy(d)
    d["instrs"][0]["where"] = f"x (add) made at a.py:1{sep}{payload(canary)}"
    load_fails(tmp_path, d, arrays, r"bad\.json: instrs\[0\]\.where: expected one line")


def test_where_text_never_reaches_generated_source(saved, canary):
    """The linker's own guarantee, without the file checks: `where` is data only."""
    _, d, arrays, expect = saved
    prog = Program.load(saved[0])
    evil = f"made at a.py:1\r{payload(canary)}\n{payload(canary)}\u2028{payload(canary)}"
    prog.instrs = [Instr(**{**ins.__dict__, "where": evil}) for ins in prog.instrs]
    f = runtime.link(prog)
    assert "open(" not in f.source and "made at" not in f.source
    for want in expect:
        for a, b in zip(f(X, Y), want):
            np.testing.assert_array_equal(a, b)


def test_linker_refuses_a_slot_that_is_not_an_int(saved, canary):
    """Even if the in-memory checks pass, a slot that is text never becomes source."""
    prog = Program.load(saved[0])
    bad = f"0 + {payload(canary)}"
    slot = prog.inputs[0]["slot"]
    prog.inputs = [{**prog.inputs[0], "slot": bad}] + prog.inputs[1:]
    prog.instrs = [Instr(**{**ins.__dict__, "args": [bad if a == slot else a for a in ins.args]})
                   for ins in prog.instrs]
    with pytest.raises(runtime.ProgramError, match="expected a non-negative int slot"):
        runtime.link(prog)


@pytest.mark.parametrize("kernel", ["add; import os", "__import__", "fused\n", "matmul_0"])
def test_unknown_kernel_names_are_refused(saved, tmp_path, canary, kernel):
    _, d, arrays, _ = saved
    d = copy.deepcopy(d)
    d["instrs"][0]["kernel"] = kernel.replace("import os", payload(canary))
    load_fails(tmp_path, d, arrays, r"instrs\[0\]\.kernel: expected a kernel of this runtime")


@pytest.mark.parametrize("value, match", [
    ("3; import os", r"args\[0\]: expected a slot number in 0\.\.\d+, got '3; import os'"),
    (3.0, r"args\[0\]: expected a slot number in 0\.\.\d+, got 3\.0"),
    (True, r"args\[0\]: expected a slot number"),
    (-1, r"args\[0\]: expected a slot number"),
    (10 ** 6, r"args\[0\]: expected a slot number"),
    ([0], r"args\[0\]: expected a slot number"),
])
def test_bad_slots_are_refused(saved, tmp_path, canary, value, match):
    _, d, arrays, _ = saved
    d = copy.deepcopy(d)
    k = instr_index(d, "matmul")
    d["instrs"][k]["args"][0] = value
    load_fails(tmp_path, d, arrays, rf"instrs\[{k}\]\.{match}")


def test_slot_written_twice_or_read_early_is_refused(saved, tmp_path):
    _, d, arrays, _ = saved
    d2 = copy.deepcopy(d)
    d2["instrs"][1]["out"] = d2["instrs"][0]["out"]
    load_fails(tmp_path, d2, arrays, r"instrs\[1\]\.out: expected a slot no other")
    d3 = copy.deepcopy(d)
    d3["instrs"][0]["args"][0] = d3["instrs"][-1]["out"]
    load_fails(tmp_path, d3, arrays, r"instrs\[0\]\.args\[0\]: expected a slot written before")
    d4 = copy.deepcopy(d)
    d4["outputs"][0] = "0; import os"
    load_fails(tmp_path, d4, arrays, r"outputs\[0\]: expected a slot number")


def test_bad_attrs_are_refused(saved, tmp_path, canary):
    _, d, arrays, _ = saved
    cases = [
        ("sum", "axis", f"0); {payload(canary)}; (", r"\.attrs\.axis: expected null or a list"),
        ("sum", "keepdims", "False", r"\.attrs\.keepdims: expected true or false"),
        ("sum", "evil", 1, r"\.attrs\.evil: expected an attr of sum"),
        ("getitem", "index", [["slice", "1", None, None]], r"\.attrs\.index: expected a getitem"),
        ("matmul", "out", 1, r"\.attrs: expected attr names that are identifiers"),
    ]
    for kernel, key, value, match in cases:
        d2 = copy.deepcopy(d)
        k = next((k for k, ins in enumerate(d2["instrs"]) if ins["kernel"] == kernel), None)
        if k is None:  # the optimizer may have folded this kernel into a fused group
            k = instr_index(d2, "fused_reduce") if kernel == "sum" else 0
            kernel = d2["instrs"][k]["kernel"]
            match = match.replace(" sum", f" {kernel}")
        d2["instrs"][k]["attrs"][key] = value
        load_fails(tmp_path, d2, arrays, rf"instrs\[{k}\]{match}")


def fused_expr_paths(expr, path="expr"):
    """(path, node) of every node of a JSON expression tree."""
    stack, out = [(expr, path)], []
    while stack:
        e, p = stack.pop()
        out.append((p, e))
        if e[0] not in ("arg", "const"):
            stack.extend((c, f"{p}[2][{i}]") for i, c in enumerate(e[2]))
    return out


def test_bad_fused_expressions_are_refused(saved, tmp_path, canary):
    _, d, arrays, _ = saved
    k = instr_index(d, "fused")
    nodes = fused_expr_paths(d["instrs"][k]["attrs"]["expr"])
    arg = next(p for p, e in nodes if e[0] == "arg")
    op = next(p for p, e in nodes if e[0] not in ("arg", "const"))
    const = next((p for p, e in nodes if e[0] == "const"), None)

    def tamper(path, fn):
        d2 = copy.deepcopy(d)
        e = d2["instrs"][k]["attrs"]
        for part in path.replace("]", "").replace("[", ".").split(".")[:]:
            e = e[int(part)] if part.isdigit() else e[part]
        fn(e)
        return d2

    evil = payload(canary)
    cases = [
        (arg, lambda e: e.__setitem__(1, f"0, {evil}"), r"expected an operand index"),
        (arg, lambda e: e.__setitem__(1, 99), r"expected an operand index in 0\.\."),
        (op, lambda e: e.__setitem__(0, f"add_{evil}"), r"expected an elementwise op"),
        (op, lambda e: e.__setitem__(0, "matmul"), r"expected an elementwise op"),
        (op, lambda e: e.__setitem__(1, [["dtype", evil]]), r"expected an attr of"),
        (op, lambda e: e.__setitem__(2, []), r"operand expression"),
        (op, lambda e: e.__setitem__(1, {"a": 1}), r"expected a list of \[name, value\] pairs"),
    ]
    if const is not None:
        cases += [(const, lambda e: e.__setitem__(1, evil), r"expected a number"),
                  (const, lambda e: e.__setitem__(2, "object"), r"expected a dtype name"),
                  (const, lambda e: e.__setitem__(2, "float64; " + evil), r"expected a dtype")]
    for path, fn, match in cases:
        load_fails(tmp_path, tamper(path, fn), arrays, rf"instrs\[{k}\]\.attrs\.expr.*{match}")


def test_an_update_of_another_shape_is_refused(saved, tmp_path):
    """A (2,) update must not replace a (3,) param, however the file was edited."""
    _, d, arrays, _ = saved
    d2 = copy.deepcopy(d)
    slot = d2["updates"][0]["slot"]
    k = next(k for k, ins in enumerate(d2["instrs"]) if ins["out"] == slot)
    d2["instrs"][k]["shape"] = [2]
    load_fails(tmp_path, d2, arrays, r"updates\[0\]\.slot: expected a value of 'w'.s dtype")
    # The param declared (2,) with a (2,) value, but its update computes (3,).
    d3 = copy.deepcopy(d)
    d3["params"][0]["shape"] = [2]
    load_fails(tmp_path, d3, {**arrays, "param0": np.zeros(2)},
               r"updates\[0\]\.slot: expected a value of 'w'.s dtype and shape")
    # An update pointing at a value of another shape (the cost, a scalar).
    d4 = copy.deepcopy(d)
    d4["updates"][0]["slot"] = d4["outputs"][0]
    load_fails(tmp_path, d4, arrays, r"updates\[0\]\.slot: expected a value of 'w'")


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(param0=np.zeros(2)), r"bad\.npz: param0: expected float64 of shape"),
    (lambda a: a.update(param0=np.zeros(3, np.float32)), r"param0: expected float64 of shape"),
    (lambda a: a.pop("param0"), r"bad\.npz: param0: expected an array"),
    (lambda a: a.update(extra=np.zeros(1)), r"bad\.npz: extra: expected only the arrays"),
    (lambda a: a.update(param0=np.array(["a", "b", "c"])), r"param0\.dtype: expected a numeric"),
])
def test_npz_that_does_not_match_the_json_is_refused(saved, tmp_path, change, match):
    _, d, arrays, _ = saved
    arrays = dict(arrays)
    change(arrays)
    load_fails(tmp_path, d, arrays, match)


class Payload:
    """Unpickling this would create the canary file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_an_object_array_fails_without_unpickling(saved, tmp_path, canary):
    _, d, arrays, _ = saved
    base = write(tmp_path, d, arrays)
    obj = np.empty(3, dtype=object)
    obj[:] = [Payload(canary)] * 3
    np.savez(base + ".npz", **{**arrays, "param0": obj})  # np.savez pickles object arrays
    with pytest.raises(runtime.ProgramFileError, match=r"bad\.npz: param0: expected a numeric "
                                                       r"array \(no pickle\)"):
        runtime.load(base)


def test_broken_files_give_the_file_error(saved, tmp_path):
    _, d, arrays, _ = saved
    base = write(tmp_path, d, arrays)
    with open(base + ".json", "w") as f:
        f.write('{"version": 1, "instrs": [')
    with pytest.raises(runtime.ProgramFileError, match=r"bad\.json: not a Program's JSON"):
        runtime.load(base)
    with open(base + ".json", "w") as f:
        f.write("[" * 100000 + "]" * 100000)
    with pytest.raises(runtime.ProgramFileError, match=r"bad\.json"):
        runtime.load(base)
    write(tmp_path, d, arrays)
    with open(base + ".npz", "wb") as f:
        f.write(b"PK\x03\x04 not really a zip")
    with pytest.raises(runtime.ProgramFileError, match=r"bad\.npz: not a \.npz archive"):
        runtime.load(base)
    with pytest.raises(runtime.ProgramFileError, match=r"version: Program format 3"):
        runtime.load(write(tmp_path, {**d, "version": 3}, arrays))
    with pytest.raises(runtime.ProgramFileError, match=r"\(top level\)\.extra: expected only"):
        runtime.load(write(tmp_path, {**d, "extra": 1}, arrays))


# -- fuzzing ------------------------------------------------------------------------------------
def leaves(v, path=()):
    """Every (path, value) in a JSON object, containers included."""
    stack, out = [(v, path)], []
    while stack:
        x, p = stack.pop()
        out.append((p, x))
        if isinstance(x, dict):
            stack.extend((c, p + (k,)) for k, c in x.items())
        elif isinstance(x, list):
            stack.extend((c, p + (i,)) for i, c in enumerate(x))
    return out


def mutations(canary):
    evil = payload(canary)
    return [None, True, False, 0, 1, 2, -1, 3.0, 0.5, 2 ** 70, float("nan"), "", "x",
            f"0; {evil}", f"\r{evil}", f"\n{evil}", f"\u2028{evil}", "add", "fused",
            "float64", "object", [], [0], [[0]], ["arg", 0], ["const", evil, "float64"],
            {}, {"slot": 0}, {"__class__": evil}]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_random_single_field_changes_load_and_run_or_raise_the_file_error(saved, tmp_path,
                                                                          canary):
    _, d, arrays, _ = saved
    rng = random.Random(10)
    spots = [p for p, _ in leaves(d) if p]
    values = mutations(canary)
    outcomes = {"refused": 0, "ran": 0, "failed at call": 0}
    for trial in range(400):
        d2 = copy.deepcopy(d)
        path = rng.choice(spots)
        parent = d2
        for part in path[:-1]:
            parent = parent[part]
        what = rng.random()
        if what < 0.08 and isinstance(parent, dict):
            del parent[path[-1]]
        elif what < 0.12 and isinstance(parent, list):
            parent.append(rng.choice(values))
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(values))
        base = write(tmp_path, d2, arrays, name=f"fuzz{trial % 4}")
        try:
            f = runtime.load(base)
        except runtime.ProgramFileError:
            outcomes["refused"] += 1
            continue
        try:
            for _ in range(3):
                f(X, Y)
            outcomes["ran"] += 1
        except (runtime.ProgramError, runtime.CallError):
            outcomes["failed at call"] += 1
        assert not os.path.exists(canary), (path, parent)
    assert outcomes["refused"] > 200 and outcomes["ran"] > 0, outcomes


def test_a_format_1_program_still_loads(saved, tmp_path):
    # Format 2 added loop bodies; a file written before them reads unchanged.
    _, d, arrays, _ = saved
    assert d["version"] == runtime.FORMAT_VERSION == 2
    base = write(tmp_path, {**d, "version": 1}, arrays)
    assert runtime.load(base) is not None
