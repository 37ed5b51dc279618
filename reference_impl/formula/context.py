"""Where a formula runs: an array namespace, the float and index dtypes, the device."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


# Types found to be arrays (a shape and a dtype): NumPy's and torch's, and their scalars.
_ARRAY_TYPES: set[type] = set()


@dataclass(frozen=True)
class ArrayContext:
    """An Array-API namespace plus the dtypes and device that new arrays take.

    ``rtol``/``atol`` are the tolerance that ``close`` uses in property formulas; ``overflow`` is
    where the values it compares stop being finite in the dtype under test (beyond it, a sum of a
    half-precision output is inf, and inf is then the right value).
    """

    xp: Any
    float_dtype: Any
    index_dtype: Any
    device: Any = None
    rtol: float = 0.0
    atol: float = 0.0
    name: str = field(default="numpy")
    overflow: float = float("inf")
    # A dtype the operands of comparisons are rounded into first (torch tensors only): ties and
    # sides as a kernel computing in that dtype sees them. None: compared as they are.
    compare_dtype: Any = None

    def asarray(self, value: Any) -> Any:
        """An array of this context's float dtype (index dtype for integer data)."""
        if self.is_array(value):
            return value
        if isinstance(value, bool):
            return self.xp.asarray(value, device=self.device)
        dtype = self.index_dtype if isinstance(value, int) else self.float_dtype
        return self.xp.asarray(value, dtype=dtype, device=self.device)

    def is_array(self, value: Any) -> bool:
        kind = type(value)
        if kind in _ARRAY_TYPES:  # asked hundreds of thousands of times a run: by type, once known
            return True
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            _ARRAY_TYPES.add(kind)
            return True
        return False

    def with_tolerance(self, rtol: float, atol: float, overflow: float = float("inf")) -> "ArrayContext":
        return ArrayContext(self.xp, self.float_dtype, self.index_dtype, self.device, rtol, atol, self.name, overflow,
                            self.compare_dtype)

    def comparing_in(self, dtype: Any) -> "ArrayContext":
        """This context with comparisons made on operands rounded into ``dtype`` (a torch dtype)."""
        return ArrayContext(self.xp, self.float_dtype, self.index_dtype, self.device, self.rtol, self.atol, self.name,
                            self.overflow, dtype)

    def compare(self, op: Any, a: Any, b: Any) -> Any:
        """``op(a, b)``, on operands rounded into ``compare_dtype`` where one is set."""
        if self.compare_dtype is not None:
            a, b = self.rounded(a), self.rounded(b)
        return op(a, b)

    def rounded(self, value: Any) -> Any:
        """A floating tensor rounded into ``compare_dtype`` (and back), detached; others as they are."""
        if hasattr(value, "is_floating_point") and value.is_floating_point():
            return value.detach().to(self.compare_dtype).to(value.dtype)
        return value


def numpy_context() -> ArrayContext:
    """float64 NumPy, through array-api-compat."""
    import array_api_compat.numpy as xp

    return ArrayContext(xp, np.float64, np.int64, None, name="numpy")


def torch_context(device: str = "cpu") -> ArrayContext:
    """float64 torch on ``device``: differentiable through autograd."""
    import array_api_compat.torch as xp
    import torch

    return ArrayContext(xp, torch.float64, torch.int64, torch.device(device), name="torch")
