"""A worked example of a third-party backend: L1 and MSE written in NumPy.

    loss-conformance run --backend numpy_losses --loss l1_loss mse_loss   (with examples/ on PYTHONPATH)

The module-level flag tells the harness that these functions take and return NumPy arrays; it
converts the generated tensors, and skips the gradient checks (NumPy has no autograd).
"""
from __future__ import annotations

import numpy as np

loss_conformance_array_type = "numpy"


def _reduce(loss: np.ndarray, weight: np.ndarray | None, reduction: str) -> np.ndarray:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum(dtype=loss.dtype))
    if reduction == "mean":
        denominator = weight.sum(dtype=loss.dtype) if weight is not None else loss.dtype.type(loss.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(loss.sum(dtype=loss.dtype) / denominator, dtype=loss.dtype)
    raise ValueError(f"unknown reduction {reduction!r}")


def l1_loss(input: np.ndarray, target: np.ndarray, reduction: str = "mean",
            weight: np.ndarray | None = None) -> np.ndarray:
    loss = np.abs(input - target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, weight, reduction)


def mse_loss(input: np.ndarray, target: np.ndarray, reduction: str = "mean",
             weight: np.ndarray | None = None) -> np.ndarray:
    loss = np.square(input - target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, weight, reduction)
