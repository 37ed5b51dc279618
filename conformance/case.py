"""One generated example: everything needed to call a backend and the reference on it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
    # What a function transform adds to the inputs (tangents, the other samples of a vmapped batch).
    transform: dict[str, Any] = field(default_factory=dict)

    def present_inputs(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.inputs.items() if v is not None}

    def describe(self) -> dict[str, Any]:
        """A JSON-ready form: shapes, dtypes and values (exact, as Python floats)."""
        return {
            "variant": self.variant,
            "layout": self.layout,
            "inputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "values": v.tolist()}
                       for k, v in self.present_inputs().items()},
            "params": dict(self.params),
            **({"transform": _plain(self.transform)} if self.transform else {}),
        }


def _plain(value: Any) -> Any:
    """Arrays as nested lists, inside dicts and lists too: JSON-ready."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.tolist() if isinstance(value, np.ndarray) else value
