"""Backends that declare what they support (``loss_conformance_capabilities``)."""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F


def _mse_mean_only(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    if reduction != "mean" or weight is not None:
        raise NotImplementedError("only the unweighted mean")  # a FAIL, were it asked for anything else
    return F.mse_loss(input, target)


# Declares the mean and no weight: every other reduction is unsupported, weight is never passed.
mean_only = types.SimpleNamespace(
    mse_loss=_mse_mean_only,
    loss_conformance_capabilities={"format": 1, "losses": {"mse_loss": {"reductions": ["mean"],
                                                                         "options": {"weight": False}}}})

# The same function, its support given in a file instead (tests/capabilities/mean_only.yaml).
undeclared = types.SimpleNamespace(mse_loss=_mse_mean_only)


def _cross_entropy_hard_labels(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                               ignore_index: int = -100, reduction: str = "mean",
                               label_smoothing: float = 0.0) -> torch.Tensor:
    if target.is_floating_point() or label_smoothing not in (0.0, 0.25) or input.dtype != torch.float32:
        raise NotImplementedError("class indices, label smoothing 0 or 0.25, float32 only")
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


# Kornia-like: no probability targets, two label-smoothing values, float32 only.
hard_labels = types.SimpleNamespace(
    cross_entropy=_cross_entropy_hard_labels,
    loss_conformance_capabilities={"format": 1, "dtypes": ["float32"], "losses": {"cross_entropy": {
        "variants": ["class_index"], "options": {"label_smoothing": [0.0, 0.25]}}}})
