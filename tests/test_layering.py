"""The layering in DESIGN.md: runtime imports nothing of flowc; compiler layers import downward."""
import ast
import os
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
    code = "import sys, runtime; print('flowc' in sys.modules or 'networkx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ROOT})
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
