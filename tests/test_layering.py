"""The layering in DESIGN.md: runtime imports nothing of flowc; compiler layers import downward."""
import ast
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Layer of each flowc subpackage; a module may import only from its own or lower layers.
LAYER = {"ir": 0, "ops": 1, "autodiff": 2, "passes": 2, "lower": 3, "render": 4, "nn": 5,
         "theano": 5}
# Deliberate late (in-function) imports upward, each with its reason.
ALLOWED_LATE = {
    ("ir", "ops"),  # Tensor operators and Graph.from_networkx need the op registry
    ("ops", "autodiff"),  # a loop's rules apply the autodiff engines to its body
}


def imports(path):
    """(module imported, is-top-level) for each import statement in a file."""
    tree = ast.parse(open(path).read())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # resolve relative imports against the file's package
                pkg = os.path.relpath(os.path.dirname(path), ROOT).split(os.sep)
                base = pkg[:len(pkg) - node.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            out.append((mod, id(node) in top))
    return out


def py_files(folder):
    for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def test_runtime_imports_nothing_of_flowc_or_networkx():
    for path in py_files("runtime"):
        for mod, _ in imports(path):
            assert not mod.startswith(("flowc", "networkx")), f"{path} imports {mod}"


def test_importing_runtime_loads_neither_flowc_nor_networkx():
    code = ("import sys, flowc_runtime; "
            "print('flowc' in sys.modules or 'networkx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env=os.environ)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("sub", sorted(LAYER))
def test_compiler_layers_import_downward(sub):
    for path in py_files(os.path.join("flowc", sub)):
        for mod, top in imports(path):
            parts = mod.split(".")
            if parts[0] != "flowc" or len(parts) < 2 or parts[1] not in LAYER:
                continue
            target = parts[1]
            if LAYER[target] <= LAYER[sub]:
                continue
            assert not top and (sub, target) in ALLOWED_LATE, \
                f"{os.path.relpath(path, ROOT)} imports {mod} (layer {target} is above {sub})"


def _runtime_module(path):
    """The import name of a file under runtime/ (flowc_runtime.x.y)."""
    rel = os.path.relpath(path, os.path.join(ROOT, "runtime"))[:-3].split(os.sep)
    return ".".join(["flowc_runtime"] + [p for p in rel if p != "__init__"])


def _runtime_imports(path):
    """The runtime modules a runtime file imports, lazy imports included."""
    tree = ast.parse(open(path).read())
    me = _runtime_module(path)
    pkg = me if path.endswith("__init__.py") else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
            mod = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:  # `from . import memory` names a module, not a symbol
                sub = f"{mod}.{a.name}"
                out.add(sub if _is_runtime_module(sub) else mod)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flowc_runtime"):
            out.add(node.module)
    return out - {me}


def _is_runtime_module(mod):
    parts = mod.split(".")[1:]
    base = os.path.join(ROOT, "runtime", *parts)
    return os.path.exists(base + ".py") or os.path.exists(os.path.join(base, "__init__.py"))


def test_runtime_modules_import_each_other_without_cycles():
    graph = {_runtime_module(p): _runtime_imports(p) for p in py_files("runtime")}
    state, cycles = {}, []
    for root in graph:  # iterative DFS: white (absent), grey (1), black (2)
        if root in state:
            continue
        state[root], stack, path = 1, [(root, iter(sorted(graph[root])))], [root]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif nxt in graph and state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt in graph and nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    assert not cycles, "runtime import cycles: " + "; ".join(" -> ".join(c) for c in cycles)



def _package_name(top, name, folder):
    rel = os.path.relpath(folder, os.path.join(ROOT, top))
    return name if rel == "." else name + "." + rel.replace(os.sep, ".")


def test_pyproject_lists_every_package():
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    block = text.split("packages = [", 1)[1].split("]", 1)[0]
    listed = set(re.findall(r'"([\w.]+)"', block))
    found = {_package_name(top, name, d)
             for top, name in (("flowc", "flowc"), ("runtime", "flowc_runtime"))
             for d, _, files in os.walk(os.path.join(ROOT, top)) if "__init__.py" in files}
    assert found == listed, (f"missing from pyproject: {sorted(found - listed)}; "
                             f"listed but absent: {sorted(listed - found)}")


def test_nothing_imports_the_bare_runtime_name():
    """The runtime's import name is flowc_runtime; a bare `runtime` may be another package."""
    for folder in ("flowc", "runtime", "tests", "tools"):
        for path in py_files(folder):
            for node in ast.walk(ast.parse(open(path).read())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom)
                         and not node.level else [])
                bad = [n for n in names if n == "runtime" or n.startswith("runtime.")]
                assert not bad, f"{os.path.relpath(path, ROOT)} imports {bad[0]}"
