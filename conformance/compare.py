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
    atol = tol.atol * max(scale, 1.0)
    values = np.asarray(actual.values, dtype=np.float64)
    want = _at_the_overflow_edge(values, expected, dtype, tol, atol)
    if _plainly_close(values, want, tol.rtol, atol):
        return None
    got, want_ = torch.from_numpy(values), torch.from_numpy(want)
    try:
        torch.testing.assert_close(got, want_, rtol=tol.rtol, atol=atol, equal_nan=True)
    except AssertionError as exc:
        detail = str(exc).strip().splitlines()
        summary = "; ".join(line.strip() for line in detail[:6] if line.strip())
        return f"{what} values differ: {summary}; actual={shown(values)} expected={shown(want)}"
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


def _plainly_close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    """True when every element is close as ``torch.isclose(got, want, rtol, atol, equal_nan=True)``
    sees it (equal, NaN beside NaN, or a finite error within ``atol + rtol |want|``): then
    ``assert_close`` would pass, and it costs far more, per call on a few elements (a check makes
    thousands of comparisons) as on the large check's 2^24. Otherwise ``assert_close`` gives the
    verdict and its message."""
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(got - want)
        allowed = np.abs(want)
        allowed *= rtol
        allowed += atol
        close = np.less_equal(error, allowed, out=np.empty(error.shape, dtype=bool))
        close &= np.isfinite(error)
    if close.all():
        return True
    rest = ~close
    g, w = got[rest], want[rest]
    return bool(np.all((g == w) | (np.isnan(g) & np.isnan(w))))


_NUMPY_ROUNDS = {"float64": np.float64, "float32": np.float32}


def rounded(values: Any, dtype: str) -> np.ndarray:
    """``values`` rounded into ``dtype`` (overflowing to inf as that dtype does), back in float64."""
    if dtype in _NUMPY_ROUNDS:  # NumPy rounds float64 into these as torch does (half dtypes: not always)
        with np.errstate(over="ignore"):
            return np.asarray(values, dtype=np.float64).astype(_NUMPY_ROUNDS[dtype]).astype(np.float64)
    return torch.from_numpy(np.asarray(values, dtype=np.float64)).to(TORCH_DTYPES[dtype]).to(torch.float64).numpy()


def shown(values: np.ndarray, limit: int = 8) -> str:
    """A short text form of an array for messages: the first ``limit`` values, full precision."""
    flat = np.asarray(values).reshape(-1)  # only the values shown become Python floats: a large output has millions
    body = ", ".join(f"{v:.9g}" for v in flat[:limit].tolist())
    more = f", ... ({flat.size} values)" if flat.size > limit else ""
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
