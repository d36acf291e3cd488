"""The Program: what the compiler hands the runtime. Plain data, versioned, JSON + .npz.

A Program is a straight-line list of instructions over numbered slots. Slots hold the
inputs (in call order), the parameters, the constants, then one slot per instruction output.

  inputs:  [{name, slot, dtype, shape}]        shape dims may be None (known at call time)
  params:  [{name, slot, dtype, shape, key}]   key: the graph node id the parameter came from
  consts:  [{slot}]                            values in `values["const<slot>"]`
  instrs:  [Instr]                             executed in order; each records the static
                                               dtype and shape (None dims) of its output
  outputs: [slot]                              returned in order
  updates: [{param, slot}]                     params[param] := slot after the call
  free:    [[slot]] per instruction            slots whose last use is that instruction
  values:  name -> ndarray                     constants and initial parameter values

Saved as NAME.json (everything but arrays) and NAME.npz (arrays; loaded with
allow_pickle=False). `load()` checks every field of both files before anything runs
(runtime/program/validate.py); `validate()` checks slot use before definition and kernel names.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List

import numpy as np

from .validate import read_program
from .version import FORMAT_VERSION, READABLE



@dataclass
class Instr:
    """One step: out = kernel(*args, **attrs); `where` names the node and the user's line."""

    kernel: str
    args: List[int]
    out: int
    attrs: Dict[str, Any]
    node: int
    where: str = ""
    dtype: str = "float64"
    shape: List[Any] = field(default_factory=list)


@dataclass
class Program:
    """A compiled graph in the runtime's format (see the module docstring)."""

    n_slots: int
    inputs: List[dict]
    params: List[dict]
    consts: List[dict]
    instrs: List[Instr]
    outputs: List[int]
    updates: List[dict]
    free: List[List[int]]
    values: Dict[str, np.ndarray] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    def validate(self, kernels=None) -> "Program":
        """Raise ValueError if a slot is read before it is written or a kernel is unknown."""
        if self.version not in READABLE:
            raise ValueError(f"Program format {self.version} is not supported "
                             f"(this runtime reads formats {READABLE})")
        ready = {d["slot"] for d in self.inputs + self.params + self.consts}
        for c in self.consts:
            if f"const{c['slot']}" not in self.values:
                raise ValueError(f"constant slot {c['slot']} has no value")
        for i, ins in enumerate(self.instrs):
            missing = [a for a in ins.args if a not in ready]
            if missing:
                raise ValueError(f"instruction {i} ({ins.kernel}) reads unset slots {missing}")
            if kernels is not None and ins.kernel not in kernels:
                raise ValueError(f"instruction {i}: no kernel {ins.kernel!r} in this backend")
            ready.add(ins.out)
        for s in self.outputs + [u["slot"] for u in self.updates]:
            if s not in ready:
                raise ValueError(f"output/update slot {s} is never written")
        return self

    # -- persistence ----------------------------------------------------------------------
    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("values")
        return d

    def save(self, path: str) -> None:
        """Write PATH.json and PATH.npz (a trailing .json is dropped); atomic per file."""
        base = path[:-5] if path.endswith(".json") else path
        _refuse_checkpoint(base + ".npz")
        _atomic_write(base + ".npz", lambda f: np.savez(f, **self.values), binary=True)
        _atomic_write(base + ".json", lambda f: json.dump(self.to_json(), f, indent=1))

    @staticmethod
    def from_json(d: dict, values=None) -> "Program":
        """The Program of a JSON object as to_json() makes it (a loop body: already checked)."""
        d = dict(d)
        instrs = [Instr(**dict(i, args=list(i["args"]), attrs=dict(i["attrs"]),
                               shape=list(i["shape"]))) for i in d.pop("instrs")]
        d["inputs"] = [dict(p, shape=tuple(p["shape"])) for p in d["inputs"]]
        d["params"] = [dict(p, shape=tuple(p["shape"])) for p in d["params"]]
        for k in ("consts", "updates"):
            d[k] = [dict(x) for x in d[k]]
        d["outputs"], d["free"] = list(d["outputs"]), [list(f) for f in d["free"]]
        return Program(instrs=instrs, values=dict(values or {}), **d)

    @staticmethod
    def load(path: str, kernels=None) -> "Program":
        """Read a Program written by save(), every field checked first (runtime/program/validate.py).

        No pickle anywhere. A bad file raises ProgramFileError naming the file and the field.
        `kernels`: the backend's kernel table the instructions must name (default NumPy's).
        """
        d, values = read_program(path, kernels)
        instrs = [Instr(**i) for i in d.pop("instrs")]
        for p in d["inputs"] + d["params"]:
            p["shape"] = tuple(p["shape"])
        return Program(instrs=instrs, values=values, **d).validate()


def _refuse_checkpoint(npz_file):
    """Refuse to write a Program's values over a flowc training checkpoint."""
    import zipfile

    from ..errors import ProgramFileError
    from .validate import CHECKPOINT_RECORD
    if not os.path.isfile(npz_file) or not zipfile.is_zipfile(npz_file):
        return
    with zipfile.ZipFile(npz_file) as z:
        if CHECKPOINT_RECORD + ".npy" in z.namelist():
            raise ProgramFileError(f"{npz_file} is a flowc training checkpoint "
                                   f"(trainer.save); saving a Program there would replace it: "
                                   f"save the Program under another name (it writes NAME.json "
                                   f"and NAME.npz)")


def _atomic_write(path, write, binary=False):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb" if binary else "w") as f:
        write(f)
    os.replace(tmp, path)
