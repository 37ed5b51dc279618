"""Broken backends whose bug lives where inputs lie in memory or how large they are.

A kernel that indexes raw storage as if every input were contiguous is right on every tensor
built with ``torch.tensor`` and wrong on a transposed view or a slice; a kernel that switches to
its stable formula at a threshold of its own is right everywhere but in the band between the
dtype's true overflow point and that threshold.
"""
from __future__ import annotations

import torch

from tests.broken import Broken

Tensor = torch.Tensor


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return {"none": lambda: loss, "sum": loss.sum, "mean": loss.mean}[reduction]()


def _as_if_contiguous(t: Tensor) -> Tensor:
    """What a kernel reading ``data_ptr()`` with row-major offsets sees: the storage from the
    tensor's first element, whatever its strides."""
    strides, step = [], 1
    for size in reversed(t.shape):
        strides.append(step)
        step *= max(size, 1)
    return t.as_strided(t.shape, tuple(reversed(strides)), t.storage_offset())


def l1_assumes_contiguous(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Reads input and target as row-major from their first element: right for contiguous tensors
    (and at any storage offset), wrong for permuted, strided, expanded or channels-last ones."""
    return _reduce((_as_if_contiguous(input) - _as_if_contiguous(target)).abs(), reduction)


def bcewl_own_threshold(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: None = None,
                        reduce: None = None, reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """(1 - y) x + (1 + (p - 1) y) log(1 + exp(-x)), with log(1 + exp(-x)) computed naively for
    |x| <= 100 and as its limits beyond: float32's exp(-x) overflows from x = -88.72 on, so the
    loss is inf in the band [-100, -88.72); float64's only from -709.78, past the switch."""
    inside = input.abs() <= 100
    softplus = torch.where(inside, torch.log1p(torch.exp(-torch.where(inside, input, torch.zeros_like(input)))),
                           torch.where(input > 0, torch.zeros_like(input), -input))
    scale = 1 + (pos_weight - 1) * target if pos_weight is not None else 1
    loss = (1 - target) * input + scale * softplus
    return _reduce(loss * weight if weight is not None else loss, reduction)


CATALOGUE: tuple[Broken, ...] = (
    Broken("l1_assumes_contiguous", "non-contiguous inputs read as contiguous", "l1_loss", l1_assumes_contiguous),
    Broken("bcewl_own_threshold", "stable formula switched on past the dtype's overflow threshold",
           "binary_cross_entropy_with_logits", bcewl_own_threshold),
)
