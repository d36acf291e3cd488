"""The `flowc` command (also `python -m flowc`): render, compile, train, check-grad, profile,
export and ops for a MODEL: a model file (.toml), a saved graph (.json) or module:function.

Exit codes: 0 success; 1 the work failed (training diverged, a kernel failed, no GPU, a
gradient check failed, the user's function raised); 2 bad usage (unknown flag, missing or
invalid MODEL, data or checkpoint file). This module is the only part of flowc that reads
the environment (the terminal width, through shutil).
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import warnings

from .ir.errors import FlowcError

EPILOG = """\
MODEL is a model file (.toml, see flowc/examples/*.toml), a graph saved with `flowc export`
(.json), or module:function returning tensors. The shipped model files can be named by file
name alone (digits_mlp.toml, breast_cancer.toml).
exit codes: 0 ok, 1 the work failed, 2 bad usage or a bad file."""


class UsageError(FlowcError):
    """Bad arguments or input files: exit code 2."""


def _parser():
    p = argparse.ArgumentParser(
        prog="flowc", description="flowc: compile, draw, train and profile dataflow-graph "
        "models.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    p.add_argument("--version", action="version", version=f"flowc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def cmd(name, help_, fn, model=True):
        s = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if model:
            s.add_argument("model", metavar="MODEL", help="model file, graph JSON or "
                           "module:function")
        s.set_defaults(func=fn)
        return s

    def level(s):
        s.add_argument("-O", dest="level", choices=["0", "1", "2"], default="2",
                       help="optimization level: -O0 none, -O1 cleanups and stabilizing "
                            "rewrites, -O2 everything (default)")

    s = cmd("render", "draw the model's graph (SVG/PNG via Graphviz, always the .dot; or an "
            "interactive HTML page)",
            cmd_render)
    s.add_argument("-o", "--output", metavar="PATH",
                   help="picture to write: .svg, .png, .dot or .html (default "
                        "out/NAME-STAGE.FORMAT)")
    s.add_argument("--format", choices=["svg", "png", "dot", "html"],
                   help="html: one interactive page (pan, zoom, views, search) "
                        "(default: from -o, else svg)")
    s.add_argument("--stage", choices=["forward", "backward", "optimized", "all"],
                   default="all", help="which part to draw (default all)")
    s.add_argument("--collapse-loops", action="store_true",
                   help="draw each loop as one box, not a box holding its body")
    s.add_argument("--collapse", choices=["auto", "yes", "no"], default="auto",
                   help="draw each layer / optimizer as one box (yes), as a cluster of its "
                        "nodes (no), or as boxes for large graphs (auto, the default)")
    s.add_argument("--raw", action="store_true",
                   help="backward: every node autodiff made, bookkeeping included")
    level(s)

    s = cmd("compile", "compile the training step (or the outputs) and summarize it",
            cmd_compile)
    s.add_argument("--explain", action="store_true", help="list the rewrites that fired")
    s.add_argument("--source", action="store_true", help="print the generated Python")
    s.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    level(s)

    s = cmd("train", "train the model on a data set; write history CSV and a plot",
            cmd_train)
    s.add_argument("--data", metavar="SET", help="digits, digits28 (upsampled to 28x28), "
                   "breast_cancer or FILE.csv "
                   "(default: the model file's [train] data)")
    s.add_argument("--epochs", type=_positive, help="epochs in total (default: model file)")
    s.add_argument("--batch-size", type=_positive, help="mini-batch size (default: model "
                   "file, else 32)")
    s.add_argument("--lr", type=_non_negative, help="learning rate (default: model file)")
    s.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    s.add_argument("--checkpoint", metavar="DIR", help="save parameters, optimizer state "
                   "and progress to DIR/checkpoint.npz after every epoch")
    s.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.npz "
                   "(needs --checkpoint)")
    s.add_argument("--out", metavar="DIR", default="out", help="where the history CSV and "
                   "plot go (default out)")
    s.add_argument("--seed", type=int, help="seed of the split and the shuffling (default: "
                   "model file, else 0)")
    s.add_argument("--test-size", type=_fraction, help="held-out fraction in [0, 1) (default "
                   "0.25)")
    s.add_argument("--target", metavar="COLUMN", help="CSV target column: header name or "
                   "0-based index (default: the last)")
    s.add_argument("--standardize", action="store_true", help="scale CSV features to mean 0, "
                   "deviation 1 (training-split statistics)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar (it is only "
                   "drawn on a terminal anyway)")
    s.add_argument("--data-parallel", action="store_true", help="split each batch over the "
                   "processes of an MPI job (start it with `flowc launch -n N train ...`)")
    s.add_argument("--bucket-mb", type=_non_negative, default=4.0,
                   help="largest gradient bucket of one allreduce, in MiB (default 4)")
    level(s)

    s = cmd("launch", "run a flowc command (or SCRIPT.py) on N local MPI processes",
            cmd_launch, model=False)
    s.add_argument("-n", dest="nprocs", type=_positive, required=True, help="processes")
    s.add_argument("--collective-timeout", type=_non_negative, metavar="S",
                   help="abort the job when a rank waits more than S seconds in a gradient "
                   "exchange (a rank stopped answering; default 600, 0: never)")
    s.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                   help="e.g. train MODEL --data-parallel")

    s = cmd("check-grad", "compare symbolic and numerical gradients, per parameter",
            cmd_check_grad)
    s.add_argument("--data", metavar="SET", help="take a batch from this data set (default: "
                   "seeded random inputs)")
    s.add_argument("--batch-size", type=_positive, default=8)
    s.add_argument("--entries", type=_positive, default=50,
                   help="entries checked per parameter (default 50)")
    s.add_argument("--tol", type=_non_negative, help="largest relative error accepted (default 1e-5 "
                   "for float64)")
    s.add_argument("--seed", type=int, default=0)
    level(s)

    s = cmd("profile", "time each instruction; print a table and draw a coloured graph",
            cmd_profile)
    s.add_argument("--data", metavar="SET", help="take a batch from this data set (default: "
                   "seeded random inputs)")
    s.add_argument("--batch-size", type=_positive, default=32)
    s.add_argument("--top", type=_positive, default=15, help="rows shown (default 15)")
    s.add_argument("--calls", type=_positive, default=20, help="timed calls (default 20)")
    s.add_argument("-o", "--output", metavar="PATH", help="coloured graph (default "
                   "out/NAME-profile.svg); a CSV of all rows goes beside it")
    s.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    level(s)

    s = cmd("export", "save the model's graph as JSON (loadable as MODEL)", cmd_export)
    s.add_argument("-o", "--output", metavar="FILE.json", required=True)

    s = cmd("ops", "list the ops with their one-line docs", cmd_ops, model=False)
    s.add_argument("pattern", nargs="?", help="only ops whose name contains this")
    return p


def _positive(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _number(text, ok, expected):
    try:
        v = float(text)
    except ValueError:
        v = None
    if v is None or not math.isfinite(v) or not ok(v):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return v


def _non_negative(text):
    return _number(text, lambda v: v >= 0, "a finite number >= 0")


def _fraction(text):
    return _number(text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def main(argv=None) -> int:
    """Run the command line; return the exit code. In a job of several MPI processes only
    rank 0 prints, a failure on any rank ends the whole job, and each rank that finishes
    leaves `flowc launch` its done marker."""
    from flowc_runtime.comm import launched_size
    if launched_size() < 2:  # one process: no MPI import
        return _main(argv)
    from . import parallel
    w = parallel.world()
    parallel.abort_on_exception(w)
    if w.rank != 0:
        sys.stdout = open(os.devnull, "w")
    code = _main(argv)
    if code:
        print(f"flowc: rank {w.rank} of {w.size} failed (exit code {code}); aborting the job",
              file=sys.stderr, flush=True)
        w.abort(code)
    parallel.mark_done(w)
    return code


def _main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: 0 after --help, 2 on a usage error
        return int(e.code or 0)
    from .ir.errors import FlowcError
    from .nn.checkpoint import CheckpointError
    from .nn.train import TrainingDiverged
    from .io.graph_json import GraphFileError
    from .models.data import DataError
    from .models.modelfile import ModelFileError
    from .models.resolve import ModelError, UserCodeError
    bad_input = (UsageError, ModelFileError, GraphFileError, ModelError, DataError,
                 CheckpointError)
    try:
        return int(args.func(args) or 0)
    except bad_input as e:
        _err(str(e))
        return 2
    except BrokenPipeError:  # `flowc ops | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except TrainingDiverged as e:
        _err(str(e))
        return 1
    except UserCodeError as e:
        import traceback
        traceback.print_exception(e.__cause__, file=sys.stderr)
        _err(str(e))
        return 1
    except (FlowcError, RuntimeError, ValueError, TypeError, OSError) as e:
        _err(f"{type(e).__name__}: {e}")
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


def _err(msg):
    sys.stdout.flush()  # keep what was printed before the error above it
    print(f"flowc: error: {msg}", file=sys.stderr)


def _load(args):
    from .models.resolve import resolve
    return resolve(args.model)


def _opt(args):
    return f"O{args.level}"


def _need_task(loaded, what):
    if loaded.task is None:
        raise UsageError(f"{what} needs a model with a loss; {loaded.source or loaded.name} "
                         "gives only outputs (use a model file, or return a dict with 'loss' "
                         "or a flowc.nn Task from module:function)")
    return loaded.task


def _train_step(loaded, args, device="cpu", watch=False):
    from .nn.task import training_function
    return training_function(loaded.task, loaded.optimizer, _opt(args), device, watch=watch,
                             trace=loaded.trace, **loaded.opt_kwargs).fn


def _function(loaded, args, device="cpu"):
    """The training step for a model with a loss, else inputs -> outputs."""
    from .function import function
    if loaded.task is not None:
        return _train_step(loaded, args, device)
    return function(loaded.inputs, loaded.outputs, optimize=_opt(args), device=device,
                    single_output=False)


def _quiet_render(fn):
    """Run a render call; a missing Graphviz becomes a note on stderr, not a warning dump."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = fn()
    for w in caught:
        print(f"flowc: note: {w.message}", file=sys.stderr)
    return path


# -- commands --------------------------------------------------------------------------------------
def cmd_render(args):
    """`flowc render`: draw the model."""
    from .render import render
    loaded = _load(args)
    path = args.output or os.path.join("out", f"{loaded.name}-{args.stage}."
                                              f"{args.format or 'svg'}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".svg", ".png", ".dot", ".html"):
        raise UsageError(f"-o {path}: the picture must end in .svg, .png, .dot or .html")
    if args.format and ext != "." + args.format:
        raise UsageError(f"-o {path} does not end in .{args.format} (--format {args.format})")
    what = loaded.outputs
    task = loaded.task
    if task is not None:
        # forward: the model, loss and metrics; backward: how the loss's gradients are
        # computed; all / optimized: the whole training step, optimizer updates included.
        shown = [task.loss] + list(task.metrics.values())
        if ext == ".html":  # the training step holds every view the page switches between
            what = _function(loaded, args)
        elif args.stage == "forward":
            what = shown
        elif args.stage == "backward":
            from .autodiff.reverse import grad
            what = [task.loss] + grad(task.loss, task.params)
        else:
            what = _function(loaded, args)
    written = _quiet_render(lambda: render(what, path, stage=args.stage,
                                           collapse_loops=args.collapse_loops, raw=args.raw,
                                           collapse={"yes": True, "no": False}.get(
                                               args.collapse, "auto")))
    print(f"wrote {written}")


def cmd_compile(args):
    """`flowc compile`: compile and summarize (rules fired, generated code)."""
    loaded = _load(args)
    f = _function(loaded, args, args.device)
    prog = f.program
    kind = "training step" if loaded.task is not None else "function"
    print(f"{loaded.name}: compiled {kind} at {_opt(args)} for {args.device}: "
          f"{len(prog.inputs)} inputs -> {len(prog.outputs)} outputs, "
          f"{len(prog.updates)} parameter updates, {len(prog.instrs)} instructions")
    print("inputs:  " + ", ".join(f"{i['name']} {_short(i)}" for i in prog.inputs))
    print("params:  " + ", ".join(f"{p['name']} {_short(p)}" for p in prog.params))
    counts = {}
    for ins in prog.instrs:
        counts[ins.kernel] = counts.get(ins.kernel, 0) + 1
    print("kernels: " + ", ".join(f"{k} x{n}" for k, n in sorted(counts.items(),
                                                                  key=lambda kv: -kv[1])))
    if args.explain:
        print("\nrewrites that fired (pass or rule, node, name, your line):")
        print(f.explain())
    if args.source:
        print("\ngenerated code:")
        print(f.source)


def _short(spec):
    from .ir.types import TensorType
    return TensorType(spec["dtype"], spec["shape"]).short()


def cmd_train(args):
    """`flowc train`: split the data, train, write the history and plot."""
    from .models import data as D
    from .nn.train import CHECKPOINT_FILE, Trainer
    loaded = _load(args)
    task = _need_task(loaded, "train")
    cfg = loaded.train
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint DIR (the folder to resume from)")
    source = args.data or cfg.get("data")
    if not source:
        raise UsageError("train needs --data digits|digits28|breast_cancer|FILE.csv (the "
                         "model names no [train] data)")
    seed = args.seed if args.seed is not None else cfg.get("seed", 0)
    ds = D.load(source, seed=seed, test_size=args.test_size or cfg.get("test_size", 0.25),
                target=args.target, standardize=True if args.standardize else None)
    if ds.note:
        print(ds.note)
    train = D.fit_to(task, ds.Xtr, ds.ytr, f"--data {source}")
    held = D.fit_to(task, ds.Xte, ds.yte, f"--data {source}")
    opt_kwargs = dict(loaded.opt_kwargs)
    if args.lr is not None:
        opt_kwargs["lr"] = args.lr
    epochs = args.epochs or cfg.get("epochs", 10)
    batch = args.batch_size or cfg.get("batch_size", 32)
    dp = None
    if args.data_parallel:
        from .parallel import require_world
        w = require_world("train --data-parallel")
        dp = dict(bucket_bytes=int(args.bucket_mb * (1 << 20)))
        print(f"data-parallel over {w.size} processes: {batch // w.size} rows of each batch of "
              f"{batch} per process")
    trainer = Trainer(task, loaded.optimizer, seed=seed, optimize=_opt(args),
                      device=args.device, trace=loaded.trace, data_parallel=dp, **opt_kwargs)
    ckpt = os.path.join(args.checkpoint, CHECKPOINT_FILE) if args.checkpoint else None
    if args.resume:
        if os.path.exists(ckpt):
            trainer.load(ckpt)
            print(f"resumed from {ckpt} after epoch {trainer.epoch}")
        else:
            print(f"no checkpoint at {ckpt} yet: starting from the beginning")
    opts = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in opt_kwargs.items())
    print(f"training {loaded.name} on {ds.name}: {len(ds.ytr)} training / {len(ds.yte)} "
          f"held-out samples, {loaded.optimizer}({opts}), {epochs} epoch{'s' * (epochs != 1)}, "
          f"batches of {batch}")
    columns = shutil.get_terminal_size((100, 24)).columns
    history = None
    try:
        history = trainer.fit(train, epochs, batch, validation=held, checkpoint=args.checkpoint,
                              progress=False if args.no_progress else None,
                              log=lambda line: print(line, flush=True), columns=columns)
    finally:
        h = history if history is not None else trainer.history
        if len(h) and (trainer.world is None or trainer.world.rank == 0):
            csv_path = h.to_csv(os.path.join(args.out, f"{loaded.name}-history.csv"))
            plot = h.plot(os.path.join(args.out, f"{loaded.name}-history"),
                          title=f"{loaded.name} on {ds.name}")
            print(f"wrote {csv_path} and {plot}")
    held_out = {k[4:]: v for k, v in history.last().items() if k.startswith("val_")}
    if held_out:
        print("held-out " + "  ".join(f"{k} {v:.4f}" for k, v in held_out.items()))
    if ckpt:
        print(f"checkpoint: {ckpt} (epoch {trainer.epoch})")


def cmd_launch(args):
    """`flowc launch -n N COMMAND ...`: COMMAND on N local MPI processes."""
    from .launch import launch
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("launch needs a command: flowc launch -n 2 train MODEL --data-parallel")
    return launch(args.nprocs, argv, collective_timeout=args.collective_timeout)


def _batch(loaded, args):
    from .models import data as D
    if args.data:
        task = _need_task(loaded, "--data")
        ds = D.load(args.data, seed=args.seed if hasattr(args, "seed") else 0)
        X, y = D.fit_to(task, ds.Xtr[:args.batch_size], ds.ytr[:args.batch_size],
                        f"--data {args.data}")
        return [X, y]
    return D.random_batch(loaded.inputs, args.batch_size, getattr(args, "seed", 0) or 0,
                          loaded.task)


def cmd_check_grad(args):
    """`flowc check-grad`: symbolic vs numerical gradients per parameter."""
    from .models.resolve import graph_params
    from .nn.gradcheck import check_params, table
    loaded = _load(args)
    if loaded.task is not None:
        loss, params = loaded.task.loss, loaded.task.params
    else:
        scalars = [t for t in loaded.outputs if t.ndim == 0]
        if not scalars:
            raise UsageError(f"check-grad needs a scalar output (a loss); {loaded.name} "
                             "outputs " + ", ".join(t.describe() for t in loaded.outputs))
        loss, params = scalars[0], graph_params([scalars[0]])
    if not params:
        raise UsageError(f"check-grad: {loaded.name}'s loss depends on no float parameter")
    arrays = _batch(loaded, args)
    rows = check_params(loss, loaded.inputs, params, arrays, entries=args.entries,
                        tol=args.tol, seed=args.seed, optimize=_opt(args))
    batch = f", batch of {len(arrays[0])}" if arrays and getattr(arrays[0], "ndim", 0) else ""
    print(f"{loaded.name}: d {loss.name or 'loss'} / d parameter, symbolic vs central "
          f"differences{batch}")
    print(table(rows))
    bad = [r.name for r in rows if not r.ok]
    if bad:
        _err(f"gradient check failed for {', '.join(bad)}")
        return 1
    print("all gradients match")


def cmd_profile(args):
    """`flowc profile`: time per instruction, table and coloured graph."""
    import inspect
    from .render import render
    path = args.output or os.path.join("out", "NAME-profile.svg")
    if os.path.splitext(path)[1].lower() not in (".svg", ".png", ".dot"):
        raise UsageError(f"-o {path}: the picture must end in .svg, .png or .dot")
    loaded = _load(args)
    path = path.replace("NAME", loaded.name) if not args.output else path
    f = _function(loaded, args, args.device)
    arrays = _batch(loaded, args)
    kind = "training step" if loaded.task is not None else "function"
    print(f"{loaded.name}: {kind} at {_opt(args)} on {args.device}, "
          f"{len(f.program.instrs)} instructions, batch of {args.batch_size}, "
          f"{args.calls} timed calls (parameters are restored afterwards)")
    prof = f.profile(*arrays, calls=args.calls)
    print(prof.table(top=args.top))
    csv_path = os.path.splitext(path)[0] + ".csv"
    os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
    with open(csv_path, "w") as fh:
        fh.write("index,kernel,node,seconds_per_call,where\n")
        for i, kernel, where, sec, node in prof.rows:
            fh.write(f'{i},{kernel},{node},{sec!r},"{where}"\n')
    extra = {"heat": prof} if "heat" in inspect.signature(render).parameters else {}
    title = "optimized graph" + (", coloured by time per instruction" if extra else "")
    written = _quiet_render(lambda: render(f, path, stage="optimized", title=title, **extra))
    print(f"wrote {written} and {csv_path}")


def cmd_export(args):
    """`flowc export`: save the graph as JSON."""
    from .models.resolve import export
    if not args.output.endswith(".json"):
        raise UsageError(f"-o {args.output}: a graph file must end in .json")
    loaded = _load(args)
    print(f"wrote {export(loaded, args.output)}")


def cmd_ops(args):
    """`flowc ops`: the op registry with one-line docs."""
    from .ops.registry import OPS
    names = sorted(n for n in OPS if not args.pattern or args.pattern in n)
    if not names:
        raise UsageError(f"no op name contains {args.pattern!r}")
    width = max(len(n) for n in names)
    for n in names:
        op = OPS[n]
        arity = "n" if op.arity is None else str(op.arity)
        print(f"{n:<{width}}  {arity}  {op.doc}")


if __name__ == "__main__":
    sys.exit(main())
