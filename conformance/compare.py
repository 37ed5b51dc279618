"""Conformance of one output: exact checks first (type, shape, dtype, device, NaN/inf), then values."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from loss_conformance.execution import Output
from loss_conformance.precision import PRECISIONS
from loss_conformance.tensors import TORCH_DTYPES
from loss_conformance_reference.model import Tolerance


def compare(actual: Output, expected: np.ndarray, dtype: str, device: str, tol: Tolerance,
            magnitude: Any = 1.0, what: str = "output") -> str | None:
    """None when ``actual`` conforms to the float64 ``expected``; otherwise why not.

    The expectation is first rounded into ``dtype``: a float32 sum that overflows to inf is
    right to be inf. ``atol`` scales with the spec's error magnitude for this example.
    """
    if not actual.is_tensor:
        return f"{what} is a {actual.type_name}, not a torch.Tensor"
    assert actual.values is not None
    if tuple(actual.shape or ()) != tuple(expected.shape):
        return f"{what} shape {tuple(actual.shape or ())} != expected {tuple(expected.shape)}"
    want_dtype = TORCH_DTYPES[dtype]
    if actual.dtype != str(want_dtype):
        return f"{what} dtype {actual.dtype} != expected {want_dtype}"
    if torch.device(actual.device or "cpu").type != torch.device(device).type:
        return f"{what} on device {actual.device} != expected {device}"
    scale = float(np.max(np.abs(magnitude))) if np.size(magnitude) else 1.0
    want = torch.from_numpy(_at_the_overflow_edge(actual.values, expected, dtype, tol, tol.atol * max(scale, 1.0)))
    got = torch.from_numpy(actual.values)
    if _plainly_close(got, want, tol.rtol, tol.atol * max(scale, 1.0)):
        return None
    try:
        torch.testing.assert_close(got, want, rtol=tol.rtol, atol=tol.atol * max(scale, 1.0), equal_nan=True)
    except AssertionError as exc:
        detail = str(exc).strip().splitlines()
        summary = "; ".join(line.strip() for line in detail[:6] if line.strip())
        return f"{what} values differ: {summary}; actual={shown(got.numpy())} expected={shown(want.numpy())}"
    return None


def _at_the_overflow_edge(actual: np.ndarray, expected: np.ndarray, dtype: str, tol: Tolerance,
                          atol: float) -> np.ndarray:
    """``expected`` rounded into ``dtype``, but where the exact value lies within the tolerance of the
    dtype's overflow threshold (65520 in float16), the backend's answer wherever it is the one
    rounding leaves there: an infinity of the exact value's sign, or a finite value within the
    tolerance of the exact one. A kernel's own roundings put a value near the threshold on either
    side of it (a weighted term of exactly 65552 is inf, torch's float16 gives 65504)."""
    want = rounded(expected, dtype)
    exact = np.asarray(expected, dtype=np.float64)
    got = np.asarray(actual, dtype=np.float64)
    if got.shape != exact.shape or not np.any(np.isinf(got) != np.isinf(want)):
        return want
    with np.errstate(invalid="ignore", over="ignore"):
        allowed = atol + tol.rtol * np.abs(exact)
        near = np.isfinite(exact) & (np.abs(exact) + allowed >= PRECISIONS[dtype].overflow)
        either_side = near & ((np.isinf(got) & (np.sign(got) == np.sign(exact)))
                              | (np.isfinite(got) & (np.abs(got - exact) <= allowed)))
    return np.where(either_side, got, want)


def _plainly_close(got: torch.Tensor, want: torch.Tensor, rtol: float, atol: float) -> bool:
    """True when every element is finite and within ``atol + rtol |want|``: the verdict of
    ``assert_close`` in a few passes over the arrays, where it makes many (seconds on the large
    check's 2^24 elements). Anything else, NaN and inf included, goes to ``assert_close``."""
    if got.numel() < 4096 or got.dtype != want.dtype:
        return False
    if not (bool(torch.isfinite(want).all()) and bool(torch.isfinite(got).all())):
        return False
    return bool(((got - want).abs_() <= want.abs().mul_(rtol).add_(atol)).all())


def rounded(values: Any, dtype: str) -> np.ndarray:
    """``values`` rounded into ``dtype`` (overflowing to inf as that dtype does), back in float64."""
    return torch.from_numpy(np.asarray(values, dtype=np.float64)).to(TORCH_DTYPES[dtype]).to(torch.float64).numpy()


def shown(values: np.ndarray, limit: int = 8) -> str:
    """A short text form of an array for messages: the first ``limit`` values, full precision."""
    flat = np.asarray(values).reshape(-1).tolist()
    body = ", ".join(f"{v:.9g}" for v in flat[:limit])
    more = f", ... ({len(flat)} values)" if len(flat) > limit else ""
    return f"[{body}{more}]" if np.ndim(values) else body


def error_ratio(actual: np.ndarray, expected: np.ndarray, dtype: str, tol: Tolerance, magnitude: Any = 1.0) -> float:
    """The largest error of ``actual`` as a fraction of what ``compare`` allows (1.0 is the limit),
    over the elements both give finite; inf where their NaN or inf positions differ. For measuring
    how much of a tolerance an implementation uses."""
    want = rounded(expected, dtype)
    got = np.asarray(actual, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    finite = np.isfinite(got) & np.isfinite(want)
    if not np.array_equal(np.isnan(got), np.isnan(want)) or \
            not np.array_equal(np.where(finite, 0.0, got), np.where(finite, 0.0, want), equal_nan=True):
        return float("inf")
    if not finite.any():
        return 0.0
    scale = float(np.max(np.abs(magnitude))) if np.size(magnitude) else 1.0
    allowed = tol.atol * max(scale, 1.0) + tol.rtol * np.abs(want[finite])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.abs(got[finite] - want[finite]) / allowed
    return float(np.max(np.where(allowed > 0, ratios, np.where(ratios > 0, np.inf, 0.0))))
