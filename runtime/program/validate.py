"""Strict checks of a saved Program (NAME.json + NAME.npz) before anything is linked or run.

A saved Program is untrusted input. Every field is checked here against the format: exact
keys, `type(x) is int` for slots and indices, dtype names from a fixed set, kernel names from
the backend's table, attrs against the kernel's keyword parameters (the NumPy table is the
schema; attr values by name below), fused expressions node by node, and the arrays of the
.npz against the declared params and updates. The first problem raises ProgramFileError
naming the file, the field, what was expected and what came. The linker also never pastes
file text into source (see runtime/link/linker.py), so these checks are the second line, not the
only one.
"""
from __future__ import annotations

import inspect
import json
import re

import numpy as np

from ..gpu.codegen import ARITY, REDUCTIONS
from ..errors import ProgramFileError
from .version import FORMAT_VERSION, READABLE

DTYPES = frozenset(["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                    "uint64", "float16", "float32", "float64", "complex64", "complex128"])
TOP_KEYS = ("version", "n_slots", "inputs", "params", "consts", "instrs", "outputs", "updates",
            "free")
INSTR_KEYS = ("kernel", "args", "out", "attrs", "node", "where", "dtype", "shape")
INPUT_KEYS = ("name", "slot", "dtype", "shape")
PARAM_KEYS = ("name", "slot", "dtype", "shape", "key")
MAX_NODES = 1 << 16  # nodes of one fused expression: far above what the fuse pass makes
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PACKAGE = __name__.split(".")[0]


def _show(v) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(v):
    return type(v) is int


def _is_ints(v):
    return isinstance(v, tuple) and all(type(x) is int for x in v)


def _is_number(v):
    return type(v) in (int, float)


def _is_index(v, dynamic=False):
    """getitem's index: ("slice", a, b, c), ("int", i), ("newaxis",) or ("ellipsis",); with
    dynamic=True a slice bound may also be "arg" (an operand read at run time)."""
    if not isinstance(v, tuple):
        return False
    for it in v:
        if not isinstance(it, tuple) or not it:
            return False
        if it[0] == "slice":
            if len(it) != 4 or not all(x is None or type(x) is int or (dynamic and x == "arg")
                                       for x in it[1:]):
                return False
        elif it[0] == "int":
            if len(it) != 2 or type(it[1]) is not int:
                return False
        elif it not in (("newaxis",), ("ellipsis",)):
            return False
    return True


def _is_array_index(v):
    """An advanced index: getitem's items plus ("array",) for each index-array operand."""
    return isinstance(v, tuple) and _is_index(tuple(it for it in v if it != ("array",)), True)


def _is_plain(v):
    """Generic attr value: a JSON scalar or a tuple of plain values (no dicts)."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, tuple):
            stack.extend(x)
        elif x is not None and type(x) not in (bool, int, float, str):
            return False
    return True


# Attr value types by attr name ((kernel, name) first): (what is expected, test).
ATTR_TYPES = {
    "axis": ("null, an int or a list of ints", lambda v: v is None or _is_int(v) or _is_ints(v)),
    "axes": ("null or a list of ints", lambda v: v is None or _is_ints(v)),
    "keepdims": ("true or false", lambda v: type(v) is bool),
    "largest": ("true or false", lambda v: type(v) is bool),
    "dtype": (f"a dtype name ({', '.join(sorted(DTYPES))})",
              lambda v: isinstance(v, str) and v in DTYPES),
    "shape": ("a list of ints", _is_ints),
    "k": ("an int", _is_int),
    "stream": ("a non-negative int", lambda v: _is_int(v) and v >= 0),
    "rule": ("an int", _is_int),
    "alpha": ("a number", _is_number),
    "beta": ("a number", _is_number),
    "part": ("'logabsdet' or 'sign'", lambda v: v in ("logabsdet", "sign")),
    "reduce": (f"one of {', '.join(REDUCTIONS)}", lambda v: isinstance(v, str) and v in REDUCTIONS),
    "index": ("a getitem index (a list of slice/int/newaxis/ellipsis items)", _is_index),
    ("concat_grad", "index"): ("an int", _is_int),
    ("allreduce", "op"): ("'sum' or 'mean'", lambda v: v in ("sum", "mean")),
    ("grad_unpack", "offset"): ("a non-negative int", lambda v: _is_int(v) and v >= 0),
    ("grad_unpack", "shape"): ("a list of non-negative ints",
                               lambda v: _is_ints(v) and all(x >= 0 for x in v)),
}
ATTR_TYPES[("specify_shape", "shape")] = ("a list of ints and nulls", lambda v: isinstance(
    v, tuple) and all(d is None or (type(d) is int and d >= 0) for d in v))
ATTR_TYPES[("argsort", "axis")] = ("an int", _is_int)
ATTR_TYPES[("part", "index")] = ("a non-negative int", lambda v: _is_int(v) and v >= 0)
ATTR_TYPES.update({("loop", k): ("a non-negative int", lambda v: _is_int(v) and v >= 0)
                   for k in ("n_seq", "n_carry", "n_cond")})
ATTR_TYPES[("loop", "reverse")] = ("true or false", lambda v: type(v) is bool)
ATTR_TYPES[("loop", "stack_axis")] = ("a non-negative int", lambda v: _is_int(v) and v >= 0)
ATTR_TYPES[("select", "indices")] = ("a list of non-negative ints", lambda v: _is_ints(v)
                                     and all(i >= 0 for i in v))
ATTR_TYPES[("loop", "length")] = ("null or a non-negative int",
                                  lambda v: v is None or (_is_int(v) and v >= 0))
ATTR_TYPES[("grad_pack", "mean")] = ("true or false", lambda v: type(v) is bool)
ATTR_TYPES[("random_uniform", "sharded")] = ("true or false", lambda v: type(v) is bool)
ATTR_TYPES[("dim", "axis")] = ("a non-negative int", lambda v: _is_int(v) and v >= 0)


def _is_size(d, reshape):
    """A size entry: an int (>= 0, or -1 in a reshape), "arg", or ("dim", k) in a reshape."""
    if type(d) is int:
        return d >= (-1 if reshape else 0)
    if reshape and isinstance(d, tuple):
        return len(d) == 2 and d[0] == "dim" and type(d[1]) is int and d[1] >= 0
    return d == "arg"


ATTR_TYPES[("reshape_dyn", "shape")] = (
    "a list of sizes (ints, -1, \"arg\", [\"dim\", k])",
    lambda v: isinstance(v, tuple) and all(_is_size(d, True) for d in v))
ATTR_TYPES[("alloc", "shape")] = ("a list of sizes (ints >= 0, \"arg\")", lambda v: isinstance(
    v, tuple) and all(_is_size(d, False) for d in v))
ATTR_TYPES.update({(k, "index"): ("an index (a list of slice/int/newaxis/ellipsis/array items)",
                                  _is_array_index)
                   for k in ("advindex", "index_add", "index_set")})
# Reductions and axis-list ops take a list of axes (loop groups and the memory plan read
# it as one); single-axis ops take one int.
_AXES = ("null or a list of ints", lambda v: v is None or _is_ints(v))
_AXIS = ("an int", _is_int)
ATTR_TYPES.update({(k, "axis"): _AXES for k in ("sum", "mean", "max", "min", "prod", "logsumexp",
                                                "norm2", "count", "fused_reduce", "prod_others")})
ATTR_TYPES.update({(k, "axis"): ("a list of ints", _is_ints) for k in ("expand_dims", "squeeze")})
ATTR_TYPES.update({(k, "axis"): _AXIS for k in (
    "concat_grad", "concatenate", "log_softmax", "softmax", "put_along_axis_grad",
    "take_along_axis", "topk_indices")})
ATTR_TYPES.update({(k, "axis"): ("null or an int", lambda v: v is None or _is_int(v))
                   for k in ("argmax", "argmin", "take", "take_grad")})


def _signature_attrs(kernel, n_args):
    """(allowed attr names, or None for any; required names; most operands, or None).

    From the parameters of the NumPy kernel (or of its `prepare`, which takes attrs only):
    the first n_args positional ones are operands, the named ones after them attrs. Only the
    runtime's own functions count: a NumPy ufunc's keywords (where=, casting=) are no attrs.
    """
    fn = kernel.prepare if kernel.prepare is not None else kernel.fn
    if getattr(fn, "__module__", "").split(".")[0] != _PACKAGE:
        return frozenset(), frozenset(), None
    params = list(inspect.signature(fn).parameters.values())
    operands = 0 if kernel.prepare is not None else n_args
    allowed, required, most, var_kw = [], [], None if kernel.prepare is not None else 0, False
    for p in params:
        if p.kind == p.VAR_KEYWORD:
            var_kw = True
        elif p.kind == p.VAR_POSITIONAL:
            operands, most = 0, None  # *operands take all the rest
        elif p.kind != p.KEYWORD_ONLY and operands > 0:
            operands -= 1
            most = None if most is None else most + 1
        elif p.name != "out":
            allowed.append(p.name)
            if p.default is p.empty:
                required.append(p.name)
    return (None if var_kw else frozenset(allowed)), frozenset(required), most


class _Checker:
    """Walks one Program's JSON; `fail` raises the error for the current file."""

    def __init__(self, file, kernels, schema):
        self.file, self.kernels, self.schema = file, kernels, schema
        self._sig = {}

    def fail(self, field, expected, got):
        raise ProgramFileError(f"{self.file}: {field}: expected {expected}, got {_show(got)}")

    def obj(self, v, keys, field):
        if not isinstance(v, dict):
            self.fail(field, f"an object with keys {', '.join(keys)}", v)
        extra = [k for k in v if k not in keys]
        if extra:
            self.fail(f"{field}.{extra[0]}" if isinstance(extra[0], str) else field,
                      f"only the keys {', '.join(keys)}", extra[0])
        for k in keys:
            if k not in v:
                self.fail(field, f"a key {k!r}", sorted(v))
        return v

    def text(self, v, field):
        """Names and `where`: one line of printable text (never source; see linker.py)."""
        if not isinstance(v, str) or not v.isprintable():
            self.fail(field, "one line of printable text", v)
        return v

    def seq(self, v, field):
        if not isinstance(v, (list, tuple)):
            self.fail(field, "a list", v)
        return v

    def int_in(self, v, lo, hi, field, what="an int"):
        if type(v) is not int or not lo <= v < hi:
            self.fail(field, f"{what} in {lo}..{hi - 1}", v)
        return v

    def dtype(self, v, field):
        if not isinstance(v, str) or v not in DTYPES:
            self.fail(field, f"a dtype name ({', '.join(sorted(DTYPES))})", v)
        return v

    def shape(self, v, field):
        self.seq(v, field)
        for i, d in enumerate(v):
            if d is not None and (type(d) is not int or d < 0):
                self.fail(f"{field}[{i}]", "a non-negative int or null", d)
        return tuple(v)

    # -- attrs --------------------------------------------------------------------------------
    def attrs(self, kernel, attrs, n_args, field):
        """Keys are the kernel's keyword parameters; values of the type their name needs."""
        if not isinstance(attrs, dict):
            self.fail(field, "an object (attr name -> value)", attrs)
        key = (kernel, n_args)
        if key not in self._sig:
            self._sig[key] = _signature_attrs(self.schema[kernel], n_args)
        allowed, required, most = self._sig[key]
        fn = self.schema[kernel].fn
        exact = ARITY.get(kernel, getattr(fn, "nin", None) if isinstance(fn, np.ufunc) else None)
        if exact is not None and n_args != exact:
            self.fail(field.rsplit(".", 1)[0] + ".args", f"{exact} operand(s) for {kernel}",
                      n_args)
        if most is not None and n_args > most:
            self.fail(field.rsplit(".", 1)[0] + ".args",
                      f"at most {most} operand(s) for {kernel}", n_args)
        for key, value in attrs.items():
            if not isinstance(key, str) or not _IDENT.match(key) or key == "out":
                self.fail(field, "attr names that are identifiers", key)
            if allowed is not None and key not in allowed:
                self.fail(f"{field}.{key}", f"an attr of {kernel} "
                          f"({', '.join(sorted(allowed)) or 'it takes none'})", key)
            self.attr_value(kernel, key, value, n_args, f"{field}.{key}")
        missing = sorted(required - set(attrs))
        if missing:
            self.fail(field, f"the attr {missing[0]!r} that {kernel} needs", sorted(attrs))

    def attr_value(self, kernel, key, value, n_args, field):
        if key == "expr":
            return self.expr(value, n_args, field)
        if kernel == "loop" and key == "body":
            return self.body(value, field)
        if kernel == "loop" and key == "cond":
            return None if value is None else self.body(value, field)
        if kernel == "cond" and key == "branches":
            if not isinstance(value, tuple) or len(value) != 2:
                self.fail(field, "two branches (Programs)", value)
            for k, b in enumerate(value):
                self.body(b, f"{field}[{k}]")
            return None
        what, ok = ATTR_TYPES.get((kernel, key)) or ATTR_TYPES.get(key) or \
            ("a number, string, boolean, null or list of those", _is_plain)
        if not ok(value):
            self.fail(field, what, value)

    def body(self, d, field):
        """A loop's body: a whole Program (checked the same way, recursively), with no
        params, consts or updates of its own (the loop passes everything in)."""
        sub = _Checker(f"{self.file}: {field}", self.kernels, self.schema)
        sub.program(d)
        for key in ("params", "consts", "updates"):
            if d[key]:
                sub.fail(key, "none in a loop body (the loop passes them as operands)",
                         len(d[key]))
        if d["version"] != FORMAT_VERSION:
            sub.fail("version", f"{FORMAT_VERSION} (bodies came with format 2)", d["version"])

    def expr(self, root, n_args, field):
        """A fused expression: ("arg", i) | ("const", value, dtype) | (op, attrs, children)."""
        stack, count = [(root, field)], 0
        while stack:
            e, f = stack.pop()
            count += 1
            if count > MAX_NODES:
                self.fail(field, f"at most {MAX_NODES} expression nodes", count)
            if not isinstance(e, tuple) or not e or not isinstance(e[0], str):
                self.fail(f, "an expression node ['arg', i], ['const', value, dtype] or "
                          "[op, attrs, children]", e)
            if e[0] == "arg":
                if len(e) != 2:
                    self.fail(f, "['arg', operand index]", e)
                self.int_in(e[1], 0, n_args, f"{f}[1]", "an operand index")
            elif e[0] == "const":
                self.const(e, f)
            else:
                stack.extend(self.op_node(e, f))

    def const(self, e, f):
        if len(e) != 3:
            self.fail(f, "['const', value, dtype]", e)
        if type(e[1]) not in (bool, int, float):
            self.fail(f"{f}[1]", "a number or boolean", e[1])
        self.dtype(e[2], f"{f}[2]")
        try:
            np.array(e[1], dtype=e[2])
        except (OverflowError, ValueError, TypeError):
            self.fail(f"{f}[1]", f"a value that {e[2]} can hold", e[1])

    def op_node(self, e, f):
        op = e[0]
        if len(e) != 3:
            self.fail(f, "[op, attrs, children]", e)
        if op not in ARITY or op not in self.schema or op not in self.kernels:
            self.fail(f"{f}[0]", "an elementwise op of this runtime", op)
        attrs, children = e[1], e[2]
        if not isinstance(attrs, tuple) or not all(isinstance(p, tuple) and len(p) == 2
                                                  for p in attrs):
            self.fail(f"{f}[1]", "a list of [name, value] pairs", attrs)
        if len({k for k, _ in attrs}) != len(attrs):
            self.fail(f"{f}[1]", "each attr once", attrs)
        self.attrs(op, dict(attrs), ARITY[op], f"{f}[1]")
        if not isinstance(children, tuple) or len(children) != ARITY[op]:
            self.fail(f"{f}[2]", f"{ARITY[op]} operand expression(s) for {op}", children)
        return [(c, f"{f}[2][{i}]") for i, c in enumerate(children)]

    # -- the Program --------------------------------------------------------------------------
    def program(self, d):
        """Check the JSON object of a Program; returns the static {slot: (dtype, shape)}."""
        if not isinstance(d, dict):
            self.fail("(top level)", "an object", type(d).__name__)
        if d.get("version") not in READABLE:
            raise ProgramFileError(f"{self.file}: version: Program format {d.get('version')!r} "
                                   f"is not supported (this runtime reads formats "
                                   f"{', '.join(map(str, READABLE))}; it writes {FORMAT_VERSION})")
        self.obj(d, TOP_KEYS, "(top level)")
        n = d["n_slots"]
        if type(n) is not int or n < 0:
            self.fail("n_slots", "a non-negative int", n)
        static, ready = {}, set()

        def define(slot, field, dtype, shape):
            self.int_in(slot, 0, n, field, "a slot number")
            if slot in static:
                self.fail(field, "a slot no other input, param, const or instruction writes",
                          slot)
            static[slot] = (dtype, shape)
            ready.add(slot)

        for i, spec in enumerate(self.seq(d["inputs"], "inputs")):
            f = f"inputs[{i}]"
            self.obj(spec, INPUT_KEYS, f)
            self.text(spec["name"], f"{f}.name")
            define(spec["slot"], f"{f}.slot", self.dtype(spec["dtype"], f"{f}.dtype"),
                   self.shape(spec["shape"], f"{f}.shape"))
        for i, spec in enumerate(self.seq(d["params"], "params")):
            f = f"params[{i}]"
            self.obj(spec, PARAM_KEYS, f)
            self.text(spec["name"], f"{f}.name")
            if type(spec["key"]) is not int:
                self.fail(f"{f}.key", "an int (the graph node id)", spec["key"])
            define(spec["slot"], f"{f}.slot", self.dtype(spec["dtype"], f"{f}.dtype"),
                   self.shape(spec["shape"], f"{f}.shape"))
        for i, spec in enumerate(self.seq(d["consts"], "consts")):
            self.obj(spec, ("slot",), f"consts[{i}]")
            define(spec["slot"], f"consts[{i}].slot", None, None)  # from the .npz
        instrs = self.seq(d["instrs"], "instrs")
        for k, ins in enumerate(instrs):
            self.instr(ins, k, n, ready)
            # A loop's result is a tuple of its parts (read through `part` instructions).
            dtype = "tuple" if ins["kernel"] in ("loop", "cond", "select") and ins["dtype"] == "tuple" else \
                self.dtype(ins["dtype"], f"instrs[{k}].dtype")
            define(ins["out"], f"instrs[{k}].out", dtype,
                   self.shape(ins["shape"], f"instrs[{k}].shape"))
        for i, s in enumerate(self.seq(d["outputs"], "outputs")):
            self.written(s, ready, n, f"outputs[{i}]")
        seen = set()
        for i, u in enumerate(self.seq(d["updates"], "updates")):
            self.obj(u, ("param", "slot"), f"updates[{i}]")
            p = self.int_in(u["param"], 0, len(d["params"]), f"updates[{i}].param",
                            "a param index")
            if p in seen:
                self.fail(f"updates[{i}].param", "each param updated at most once", p)
            seen.add(p)
            self.written(u["slot"], ready, n, f"updates[{i}].slot")
        free = self.seq(d["free"], "free")
        if len(free) != len(instrs):
            self.fail("free", f"one list per instruction ({len(instrs)})", len(free))
        for k, slots in enumerate(free):
            for j, s in enumerate(self.seq(slots, f"free[{k}]")):
                self.int_in(s, 0, n, f"free[{k}][{j}]", "a slot number")
        return static

    def instr(self, ins, k, n, ready):
        f = f"instrs[{k}]"
        self.obj(ins, INSTR_KEYS, f)
        kernel = ins["kernel"]
        if not isinstance(kernel, str) or kernel not in self.kernels or kernel not in self.schema:
            self.fail(f"{f}.kernel", "a kernel of this runtime's backend", kernel)
        if type(ins["node"]) is not int:
            self.fail(f"{f}.node", "an int (the graph node id)", ins["node"])
        self.text(ins["where"], f"{f}.where")
        args = self.seq(ins["args"], f"{f}.args")
        for j, a in enumerate(args):
            self.written(a, ready, n, f"{f}.args[{j}]")
        self.attrs(kernel, ins["attrs"], len(args), f"{f}.attrs")

    def written(self, s, ready, n, field):
        self.int_in(s, 0, n, field, "a slot number")
        if s not in ready:
            self.fail(field, "a slot written before it is read (an input, param, const or "
                      "an earlier instruction's out)", s)

    # -- arrays -------------------------------------------------------------------------------
    def values(self, d, values, static):
        """The .npz holds exactly param{i} and const{slot}, of the declared dtypes and shapes."""
        want = {f"param{i}": p for i, p in enumerate(d["params"])}
        want.update({f"const{c['slot']}": None for c in d["consts"]})
        for name in values:
            if name not in want:
                self.fail(name, "only the arrays param0.. and const<slot> the JSON declares",
                          name)
        for name, spec in want.items():
            if name not in values:
                self.fail(name, "an array (declared in the JSON)", "nothing")
            v = values[name]
            if v.dtype.name not in DTYPES:
                self.fail(f"{name}.dtype", "a numeric or boolean dtype", v.dtype.name)
            declared = None if spec is None else (spec["dtype"], tuple(spec["shape"]))
            if declared is not None and (v.dtype.name, v.shape) != declared:
                self.fail(name, f"{spec['dtype']} of shape {tuple(spec['shape'])} (as declared)",
                          f"{v.dtype.name} of shape {v.shape}")
        for c in d["consts"]:
            v = values[f"const{c['slot']}"]
            static[c["slot"]] = (v.dtype.name, tuple(v.shape))

    def updates(self, d, static):
        """An update's value has exactly its param's static dtype and shape."""
        for i, u in enumerate(d["updates"]):
            p = d["params"][u["param"]]
            dt, shape = static[u["slot"]]
            if (dt, tuple(shape)) != (p["dtype"], tuple(p["shape"])):
                self.fail(f"updates[{i}].slot", f"a value of {p['name']!r}'s dtype and shape "
                          f"({p['dtype']}, {tuple(p['shape'])})", f"{dt}, {tuple(shape)}")


def check_program(d, values, kernels, json_file, npz_file):
    """Validate a saved Program's JSON object `d` (lists already tuples inside attrs) and its
    arrays; raise ProgramFileError at the first problem."""
    from ..cpu.kernels import KERNELS as schema
    c = _Checker(json_file, kernels, schema)
    static = c.program(d)
    c.file = npz_file
    c.values(d, values, static)
    c.file = json_file
    c.updates(d, static)


def _tuples(v):
    """JSON lists as tuples, all the way down (attrs are hashable: fused groups key caches)."""
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


def _read_json(json_file):
    try:
        with open(json_file, encoding="utf-8") as f:
            d = json.load(f)
        if isinstance(d, dict) and isinstance(d.get("instrs"), list):
            for ins in d["instrs"]:
                if isinstance(ins, dict) and "attrs" in ins:
                    ins["attrs"] = _tuples(ins["attrs"])
        return d
    except RecursionError:
        raise ProgramFileError(f"{json_file}: nested too deeply to be a Program") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise ProgramFileError(f"{json_file}: not a Program's JSON: {e}") from None


def _read_npz(npz_file):
    """{name: array} from the .npz, with pickle refused (an object array is an error)."""
    values = {}
    try:
        z = np.load(npz_file, allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as e:  # a corrupt archive: whatever zipfile / the .npy reader raised
        raise ProgramFileError(f"{npz_file}: not a .npz archive: {type(e).__name__}: {e}") \
            from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ProgramFileError(f"{npz_file}: expected a .npz archive, got a single array")
    with z:
        for name in z.files:
            try:
                values[name] = z[name]
            except Exception as e:  # object arrays (pickle) land here, as does bad data
                raise ProgramFileError(f"{npz_file}: {name}: expected a numeric array "
                                       f"(no pickle), got {type(e).__name__}: {e}") from None
            if not values[name].dtype.isnative:
                raise ProgramFileError(f"{npz_file}: {name}: expected native byte order, "
                                       f"got dtype {values[name].dtype.str}")
    return values


# The record every flowc.nn checkpoint holds (flowc/nn/checkpoint.py's META).
CHECKPOINT_RECORD = "__flowc_meta__"


def read_program(path, kernels=None):
    """(Program JSON object, arrays) of PATH.json + PATH.npz, every field checked."""
    if kernels is None:
        from ..cpu.kernels import KERNELS as kernels
    base = path[:-5] if path.endswith(".json") else path
    json_file, npz_file = base + ".json", base + ".npz"
    d = _read_json(json_file)
    values = _read_npz(npz_file)
    if CHECKPOINT_RECORD in values:  # the names collided: a trainer wrote its checkpoint here
        raise ProgramFileError(
            f"{npz_file}: expected the values of the Program {json_file} (written with it by "
            f"f.save), got a flowc training checkpoint (trainer.save): the checkpoint replaced "
            f"the Program's values; save the Program again, and the checkpoint under another "
            f"name")
    check_program(d, values, kernels, json_file, npz_file)
    return d, values
