"""What the harness knows about each floating dtype: how NumPy holds its values, how a drawn value
is rounded into it, and how torch names it when it has no kernel for it.

NumPy has no bfloat16. A bfloat16 case is held in float32 arrays whose every value is a bfloat16
(rounded to nearest, ties to even, as ``torch.Tensor.to(torch.bfloat16)`` rounds), and the
request tells the worker to cast them: the cast is exact, so the backend receives the very values
the float64 oracle sees.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class Precision:
    name: str
    storage: type  # the NumPy dtype that holds the values exactly
    bits: int  # significand bits, the implicit one included
    max: float  # the largest finite value
    torch_name: str  # as torch's dispatch errors name it: "not implemented for 'Half'"

    @property
    def unit_roundoff(self) -> float:
        """u = 2^-p: the largest relative error of one correctly rounded operation."""
        return 2.0 ** -self.bits

    @property
    def overflow(self) -> float:
        """Where rounding into the dtype gives inf: the largest finite value plus half its last place
        (65520 in float16)."""
        return self.max * (1 + self.unit_roundoff / 2)

    @property
    def narrow(self) -> bool:
        """A half dtype: drawn values are rounded into it, and ranges clipped to its finite values."""
        return self.bits < 24

    @property
    def native(self) -> bool:
        """Whether NumPy holds the dtype itself (so no cast is needed in the worker)."""
        return np.dtype(self.storage).name == self.name


PRECISIONS = {p.name: p for p in (
    Precision("float16", np.float16, 11, 65504.0, "Half"),
    Precision("bfloat16", np.float32, 8, (2 - 2.0 ** -7) * 2.0 ** 127, "BFloat16"),
    Precision("float32", np.float32, 24, float(np.finfo(np.float32).max), "Float"),
    Precision("float64", np.float64, 53, float(np.finfo(np.float64).max), "Double"),
)}


def storage_dtype(dtype: str) -> type:
    """The NumPy dtype of a case's float arrays in ``dtype``."""
    return PRECISIONS[dtype].storage


def draw_width(dtype: str) -> int:
    """The width Hypothesis draws floats of for ``dtype``; bfloat16 is drawn as float32 and rounded."""
    return int(np.finfo(storage_dtype(dtype)).bits)


def representable_bounds(low: float, high: float, dtype: str) -> tuple[float, float]:
    """[low, high] clipped to ``dtype``'s finite range and shrunk to the nearest values of
    ``dtype`` inside it; low > high when no such value exists."""
    prec = PRECISIONS[dtype]
    low, high = max(low, -prec.max), min(high, prec.max)
    lo, hi = (float(v) for v in quantize(np.array([low, high]), dtype))
    if lo < low:
        lo = _step(lo, dtype, up=True)
    if hi > high:
        hi = _step(hi, dtype, up=False)
    return lo, hi


def _step(value: float, dtype: str, up: bool) -> float:
    """The neighbour of ``value`` (a value of ``dtype``) in ``dtype``, above or below it."""
    storage = storage_dtype(dtype)
    if PRECISIONS[dtype].native:
        return float(np.nextafter(storage(value), storage(np.inf if up else -np.inf)))
    if value == 0:  # the smallest bfloat16 subnormal, of the sign asked for
        bits = np.array([0x00010000 if up else 0x80010000], dtype=np.uint32)
        return float(bits.view(np.float32)[0])
    bits = np.array([value], dtype=np.float32).view(np.uint32)
    away = up == (value > 0)  # a larger magnitude: the next bit pattern
    bits = bits + np.uint32(0x10000) if away else bits - np.uint32(0x10000)
    return float(bits.view(np.float32)[0])


def quantize(values: Any, dtype: str) -> np.ndarray:
    """``values`` rounded to nearest (ties to even) into ``dtype``, held in its storage dtype.

    Finite values beyond the dtype's range saturate at its largest finite value: a value domain
    that reaches further (logits of 1e5 in float16, whose largest value is 65504) is drawn at the
    edge of the dtype instead. Infinities and NaN stay what they are.
    """
    array = np.asarray(values, dtype=np.float64)
    prec = PRECISIONS[dtype]
    with np.errstate(invalid="ignore"):
        array = np.where(np.isfinite(array), np.clip(array, -prec.max, prec.max), array)
    if prec.native:
        return array.astype(prec.storage)
    if prec.name != "bfloat16":
        raise ValueError(f"no rounding into {dtype}")
    bits = array.astype(np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    out = np.where(np.isnan(array), np.float32(np.nan), rounded.view(np.float32))
    return out.astype(np.float32)


def casts(inputs: Mapping[str, np.ndarray | None], dtype: str) -> dict[str, str]:
    """The per-input dtypes a request carries so that the worker casts stored values into ``dtype``
    (none where NumPy holds the dtype itself)."""
    if dtype not in PRECISIONS or PRECISIONS[dtype].native:
        return {}
    return {name: dtype for name, value in inputs.items()
            if value is not None and np.issubdtype(np.asarray(value).dtype, np.floating)}


_NO_KERNEL = re.compile(r'"([^"]+)" not implemented for \'(\w+)\'')


def missing_kernel(raised: str | None, dtype: str) -> str | None:
    """The kernel named by torch's dispatch error in ``raised`` when it is missing for ``dtype``
    (``"ctc_loss_cpu" not implemented for 'Half'``); None for any other error, and for a kernel
    missing for another dtype than the check's (a backend that casts wrongly still fails)."""
    if not raised or dtype not in PRECISIONS:
        return None
    match = _NO_KERNEL.search(raised)
    if match is None or match.group(2) != PRECISIONS[dtype].torch_name:
        return None
    return match.group(1)
