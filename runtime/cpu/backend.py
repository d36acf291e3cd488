"""The NumPy (CPU) backend."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

from ..errors import CallShapeError
from .kernels import KERNELS


@dataclass(frozen=True)
class Backend:
    """What the linker needs from a device: kernels and array conversions."""

    name: str
    kernels: Dict
    to_device: Callable
    copy: Callable
    input_checker: Callable
    # Builds the Executable: (program, backend, cells=, single=, downcast=, **options).
    # None: the linker's Executable (the GPU backend subclasses it for its device options).
    executable: Optional[Callable] = None
    # Whether the linker may run consecutive elementwise instructions as one chunked loop
    # (runtime/cpu/loop_groups.py; its members must be NumPy kernels).
    loop_groups: bool = False


def make_input_checker(spec, downcast, error, asarray=np.asarray, ndarray=np.ndarray):
    """A function that checks one call argument against the Program's input spec.

    Wrong dtypes raise `error`; wrong shapes (ragged nested lists included) raise
    CallShapeError where `error` is CallError (a ValueError too, as NumPy raises for shapes).
    """
    name, want = spec["name"], np.dtype(spec["dtype"])
    shape = tuple(spec["shape"])
    ndim = len(shape)
    known = [(i, d) for i, d in enumerate(shape) if d is not None]
    decl = "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if ndim == 1 else "") + ")"
    shape_error = CallShapeError if issubclass(CallShapeError, error) else error
    expected = f"input {name!r}: expected {want.name} array of shape {decl}"

    def convert(x):
        try:
            a = asarray(x)
        except ValueError:  # NumPy cannot make one array of it: a ragged nested list
            raise shape_error(f"{expected}, got {describe_value(x)} whose rows differ in "
                              "length") from None
        if a.dtype.kind in "OSUV" and want.kind not in "OSUV":
            raise error(f"{expected}, got {describe_value(x)}")
        return a

    def check(x):
        if type(x) is not ndarray or x.dtype != want:
            x = convert(x)
            if x.dtype != want:
                rule = "same_kind" if downcast else "safe"
                if not np.can_cast(x.dtype, want, rule):
                    raise error(f"input {name!r}: expected dtype {want.name}, got {x.dtype.name} "
                                f"(convert with .astype({want.name!r})"
                                + ("" if downcast else " or compile with allow_input_downcast=True")
                                + ")")
                x = x.astype(want)
        if x.ndim != ndim or any(x.shape[i] != d for i, d in known):
            raise shape_error(f"input {name!r}: expected shape {decl}, got {tuple(x.shape)}")
        return x
    return check


def describe_value(x) -> str:
    """A call argument as an error shows it: None, a string, a nested list, or its type."""
    if x is None:
        return "None"
    if isinstance(x, (str, bytes)):
        text = repr(x)
        return f"a string {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(x, (list, tuple)):
        return f"a nested {type(x).__name__}"
    return f"an object of type {type(x).__name__}"


BACKEND = Backend("numpy", KERNELS, to_device=np.asarray, copy=lambda a: np.array(a, copy=True),
                  input_checker=make_input_checker, loop_groups=True)
