"""Run the doctests of Theano's tutorial pages against flowc.theano.

The Theano docs are read at run time, never copied here: clone Theano's public
repository (Theano/Theano on GitHub) and pass its doc/tutorial folder:

    python tools/theano_tutorial.py --docs THEANO/doc/tutorial [PAGE ...] [--verbose] [--json FILE]

Each page's ``>>>`` examples and ``testsetup``/``testcode``/``testoutput`` blocks run in
order in one namespace per page, with only the imports rewritten to ``flowc.theano``.
"""
import argparse
import copy
import doctest
import itertools
import json
import os
import re
import sys
import tempfile
import textwrap
import traceback

import numpy

PAGES = ["adding", "examples", "gradients", "shape_info", "broadcasting", "aliasing",
         "printing_drawing", "loading_and_saving", "numpy"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# Sphinx directives whose body is code or expected output rather than prose.
DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(testsetup|testcode|testoutput|code-block|sourcecode)::")
# Explicit markup without "::" (e.g. a mistyped ".. note:") is a comment Sphinx never runs.
COMMENT = re.compile(r"^(\s*)\.\.(\s(?!.*::)|$)")
REPR_HINTS = ("TensorType(", "Elemwise{", "TensorConstant{", "0x")
# six is a Python 2/3 shim, not Theano; map its cPickle to the standard pickle.
SHIMS = {"from six.moves import cPickle": "import pickle as cPickle"}


def rewrite_import_item(item):
    """Rewrite one `import a, b as c` list entry that names a theano module."""
    name, _, alias = (part.strip() for part in item.partition(" as "))
    if name != "theano" and not name.startswith("theano."):
        return item.strip()
    if alias or name == "theano":
        return "flowc.%s as %s" % (name, alias or "theano")
    return "flowc.%s, flowc.theano as theano" % name  # `import theano.x` also binds `theano`


def rewrite_imports(source):
    """Return `source` with its theano import lines pointed at flowc.theano."""
    lines = []
    for line in source.split("\n"):
        code, hash_, comment = line.partition("#")
        indent, stripped = code[:len(code) - len(code.lstrip())], code.strip()
        if stripped in SHIMS:
            code = indent + SHIMS[stripped]
        elif re.match(r"from\s+theano(\.|\s)", stripped):
            code = indent + "from flowc." + stripped[len("from "):].lstrip()
        elif stripped.startswith("import "):
            items = stripped[len("import "):].split(",")
            code = indent + "import " + ", ".join(map(rewrite_import_item, items))
        else:
            code, hash_, comment = line, "", ""  # not an import: keep it as written
        lines.append(code + (" " + hash_ + comment if hash_ else ""))
    return "\n".join(lines)


def markup_blocks(lines):
    """Yield (kind, start, end, options, body) for each directive or comment."""
    i = 0
    while i < len(lines):
        match = DIRECTIVE.match(lines[i]) or COMMENT.match(lines[i])
        if not match:
            i += 1
            continue
        indent, end = len(match.group(1)), i + 1
        while end < len(lines) and (not lines[end].strip()
                                    or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        # Option lines become blank so body line k stays page line start + k + 1.
        body = textwrap.dedent("\n".join(lines[i + 1:end])).split("\n")
        options = [ln for ln in body if ln.startswith(":")]
        body = "\n".join("" if ln.startswith(":") else ln for ln in body)
        kind = match.group(2) if match.re is DIRECTIVE else "comment"
        yield kind, i, end, options, body.rstrip() + "\n"
        i = end


def option_flags(option_lines):
    """Turn `:options: +ELLIPSIS, -SKIP` lines into a doctest options dict."""
    lines = " ".join(ln for ln in option_lines if ln.startswith(":options:"))
    words = re.findall(r"[+-]\w+", lines)
    return {doctest.OPTIONFLAGS_BY_NAME[w[1:]]: w[0] == "+" for w in words}


def page_examples(text, page):
    """Return the page's examples in document order, and the code of its blocks."""
    lines, blocks, examples, last_code = text.split("\n"), {}, [], None
    for kind, start, end, options, body in list(markup_blocks(lines)):
        if kind == "testoutput" and last_code is not None:
            last_code.want = body.strip("\n") + "\n"
            last_code.options.update(option_flags(options))
        elif kind in ("testsetup", "testcode"):
            name = "%s:%d" % (page, start)  # the file name tracebacks show for this block
            blocks[name] = rewrite_imports(body)
            # doctest compiles one statement ("single" mode); a block needs "exec".
            source = "exec(compile(__blocks__[%r], %r, 'exec'), globals())\n" % (name, name)
            example = doctest.Example(source, "", lineno=start, options=option_flags(options))
            example.code, example.block = body.strip("\n") + "\n", name
            examples.append(example)
            last_code = example if kind == "testcode" else None
        # Blank the block so the `>>>` parser neither sees it nor shifts line numbers.
        lines[start:end] = [""] * (end - start)
    for example in doctest.DocTestParser().get_examples("\n".join(lines), page):
        example.code, example.source = example.source, rewrite_imports(example.source)
        examples.append(example)
    return sorted(examples, key=lambda e: e.lineno), blocks


def short(text, width=60):
    """First non-blank line of `text`, cut to `width` characters."""
    line = text.strip().split("\n")[0] if text.strip() else "(nothing)"
    return line if len(line) <= width else line[:width - 3] + "..."


def shown(example):
    """A copy of `example` showing the page's code rather than the runner's."""
    example = copy.copy(example)
    example.source = example.code
    return example


class Recorder(doctest.DocTestRunner):
    """A DocTestRunner that records one outcome per example instead of printing."""

    def __init__(self):
        super().__init__(optionflags=FLAGS, verbose=False)
        self.outcomes = {}

    def report_success(self, out, test, example, got):
        self.outcomes[id(example)] = {"status": "passed", "reason": "", "report": ""}

    def report_failure(self, out, test, example, got):
        report = []
        super().report_failure(report.append, test, shown(example), got)
        want = example.exc_msg or example.want
        if example.exc_msg:  # got ends with the traceback; its last line names the error
            got = got.strip().split("\n")[-1]
        looks_repr = want.lstrip().startswith("<") or any(h in want for h in REPR_HINTS)
        self.outcomes[id(example)] = {"status": "repr" if looks_repr else "failed",
                                      "reason": self.difference(want, got),
                                      "report": "".join(report)}

    def difference(self, want, got):
        """Describe the first expected line that the output does not match."""
        wants, gots = want.strip().split("\n"), got.strip().split("\n")
        for w, g in itertools.zip_longest(wants, gots, fillvalue=""):
            if not self._checker.check_output(w + "\n", g + "\n", self.optionflags):
                want, got = w, g
                break
        return "output differs: expected %s got %s" % (short(want, 40), short(got, 40))

    def report_unexpected_exception(self, out, test, example, exc_info):
        report = []
        super().report_unexpected_exception(report.append, test, shown(example), exc_info)
        outcome = {"status": "failed", "report": "".join(report),
                   "reason": short("".join(traceback.format_exception_only(*exc_info[:2])), 100)}
        # In a code block, point at the block's line that raised, not its first line.
        block = getattr(example, "block", None)
        frames = [f for f in traceback.extract_tb(exc_info[2]) if f.filename == block]
        if frames:
            outcome["line"] = example.lineno + 1 + frames[-1].lineno
            code_line = test.globs["__blocks__"][block].split("\n")[frames[-1].lineno - 1]
            outcome["source"] = short(code_line, 70)
        self.outcomes[id(example)] = outcome


def run_page(path, page):
    """Run one page's examples; return one result dict per example."""
    with open(path, encoding="utf-8") as f:
        examples, blocks = page_examples(f.read(), page)
    test = doctest.DocTest(examples, {"__name__": "__main__", "__blocks__": blocks},
                           page, path, 0, None)
    runner, cwd, printing = Recorder(), os.getcwd(), numpy.get_printoptions()
    # The pages were written for NumPy < 1.14 (`array([ 1.,  2.])`, `array(5.0)`).
    numpy.set_printoptions(legacy="1.13")
    # Pages write files (pickles, pictures); keep them out of the caller's folder.
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            runner.run(test, out=lambda s: None)
        finally:
            os.chdir(cwd)
            numpy.set_printoptions(**printing)
    # doctest reports nothing for a skipped example.
    return [{"page": page, "line": ex.lineno + 1, "source": short(ex.code, 70), "status": "skipped",
             "reason": "", "report": "", **runner.outcomes.get(id(ex), {})} for ex in examples]


def print_report(results, pages, verbose):
    """Print the per-page table, then one line per failure."""
    kinds = ("passed", "failed", "repr", "skipped")
    rows = [(page, [r for r in results if r["page"] == page]) for page in pages]
    print("%-20s" % "page" + "".join("%8s" % k for k in kinds))
    for page, rs in rows + [("total", results)]:
        print("%-20s" % page + "".join("%8d" % sum(r["status"] == k for r in rs) for k in kinds))
    for r in results:
        if r["status"] in ("failed", "repr"):
            print("%(page)s:%(line)d [%(status)s] %(source)s -- %(reason)s" % r)
            if verbose:
                print(r["report"])


def main(argv=None):
    """Parse arguments, run the pages, print and optionally save the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", required=True, help="Theano's doc/tutorial folder")
    parser.add_argument("pages", nargs="*", default=PAGES, help="page names (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="print full doctest reports")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.docs):
        sys.exit("error: docs folder %r not found; clone Theano's repository and pass "
                 "its doc/tutorial folder" % args.docs)
    results, pages = [], []
    for page in args.pages:
        path = os.path.join(args.docs, page + ".txt")
        if not os.path.isfile(path):
            print("warning: %s not found, skipped" % path, file=sys.stderr)
            continue
        results.extend(run_page(path, page))
        pages.append(page)
    print_report(results, pages, args.verbose)
    if args.json:
        keys = ("page", "line", "source", "status", "reason")
        with open(args.json, "w") as f:
            json.dump([{k: r[k] for k in keys} for r in results], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
