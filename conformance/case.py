"""One generated example: everything needed to call a backend and the reference on it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from loss_conformance.layouts import MemoryLayout

# Arrays of more elements than this (the large check's) are summarised in reports, not listed:
# their values go to a file that the reproduction snippet loads (``loss_conformance.reproduce``).
LISTED_ELEMENTS = 4096


@dataclass
class Case:
    """Inputs are NumPy arrays in the candidate dtype (None for an omitted optional input);
    ``params`` holds only the parameters that are passed, so omitted ones take their default."""

    loss: str
    variant: str
    layout: str
    dtype: str
    inputs: dict[str, np.ndarray | None]
    params: dict[str, Any]
    cotangent: np.ndarray | None = None
    dims: dict[str, Any] = field(default_factory=dict)
    layouts: dict[str, MemoryLayout] = field(default_factory=dict)  # non-contiguous inputs only
    cotangent_layout: MemoryLayout | None = None

    def layout_scope(self, inputs: Iterable[str]) -> dict[str, str]:
        """``layout_<input>`` for every input: how it lay in memory."""
        return {f"layout_{name}": self.layouts[name].kind if name in self.layouts else "contiguous" for name in inputs}

    def input_scope(self, inputs: Iterable[str]) -> dict[str, Any]:
        """The names a deviation's ``when`` sees about the inputs beside their values: ``layout_<input>``
        and ``passed_<input>``, whether the input was passed at all (an optional input left out
        takes its default value in the formula's scope, but a backend may take another path
        without it: torch's weighted MSE is computed in Python, the unweighted one in ATen); and in a
        backward check, ``cotangent``, the incoming gradient (a kernel that multiplies by it before
        dividing by the count can overflow where the gradient itself is finite); in a forward_ad
        check, ``tangent_<input>``, the direction drawn for each differentiable input."""
        inputs = list(inputs)
        tangents = self.transform.get("tangents") or {}
        return {**self.layout_scope(inputs), **{f"passed_{name}": self.inputs.get(name) is not None for name in inputs},
                **({"cotangent": self.cotangent} if self.cotangent is not None else {}),
                **{f"tangent_{name}": value for name, value in tangents.items()}}
    # What a function transform adds to the inputs (tangents, the other samples of a vmapped batch).
    transform: dict[str, Any] = field(default_factory=dict)

    def present_inputs(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.inputs.items() if v is not None}

    def dtype_of(self, value: np.ndarray) -> str:
        """The dtype the backend receives ``value`` in: the case's for a float input (a bfloat16 case
        is held in float32 arrays of bfloat16 values), its own for an index input."""
        return self.dtype if value.dtype.kind == "f" and self.dtype in ("float16", "bfloat16", "float32",
                                                                          "float64") else str(value.dtype)

    def arrays(self) -> dict[str, np.ndarray]:
        """The inputs passed, and the cotangent where there is one: what a reproduction needs."""
        return {**self.present_inputs(), **({"cotangent": self.cotangent} if self.cotangent is not None else {})}

    def is_large(self) -> bool:
        return any(v.size > LISTED_ELEMENTS for v in self.arrays().values())

    def counterexample(self, saved: str | None = None) -> dict[str, Any]:
        """``describe``, with the cotangent of a backward check (listed, or in the file ``saved``)."""
        cotangent = self.cotangent
        if cotangent is None:
            return self.describe(saved)
        return {**self.describe(saved), "cotangent": cotangent.tolist() if cotangent.size <= LISTED_ELEMENTS
                else {"saved": saved}}

    def describe(self, saved: str | None = None) -> dict[str, Any]:
        """A JSON-ready form: shapes, dtypes and values (exact, as Python floats); an array too
        large to list is summarised, its values in the file ``saved``."""
        return {
            "variant": self.variant,
            "layout": self.layout,
            "inputs": {k: {"shape": list(v.shape), "dtype": self.dtype_of(v), **listed(v, saved)}
                       for k, v in self.present_inputs().items()},
            **({"dims": _plain(self.dims)} if self.is_large() else {}),
            "params": dict(self.params),
            **({"layouts": {k: v.describe() for k, v in self.layouts.items()}} if self.layouts else {}),
            **({"cotangent_layout": self.cotangent_layout.describe()} if self.cotangent_layout else {}),
            **({"transform": _plain(self.transform)} if self.transform else {}),
        }


def listed(array: np.ndarray, saved: str | None = None) -> dict[str, Any]:
    """An array's values for a report: listed, or summarised where there are too many (``saved``:
    the file that holds them, if any)."""
    if array.size <= LISTED_ELEMENTS:
        return {"values": array.tolist()}
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array.reshape(-1)
    summary = {"min": finite.min().item(), "max": finite.max().item()} if finite.size else {}
    if array.dtype.kind == "f":
        summary.update(nan=int(np.isnan(array).sum()), inf=int(np.isinf(array).sum()))
    return {"values": None, "summary": summary, "saved": saved}


def _plain(value: Any) -> Any:
    """Arrays as nested lists, inside dicts and lists too: JSON-ready."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.tolist() if isinstance(value, np.ndarray) else value
