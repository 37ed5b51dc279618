"""Broken backends whose bug shows only at the sizes where kernels change strategy.

Each is right on every input of the ordinary checks (a few dozen elements, a handful of classes)
and wrong once an input outgrows a block or an index field: only the ``large`` check reaches them
(``tests/test_meta.py`` shows both sides).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.broken import Broken

Tensor = torch.Tensor
BLOCK = 65536


def mse_blocked_sum_drops_tail(input: Tensor, target: Tensor, size_average: None = None, reduce: None = None,
                               reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Sums in blocks of 65536 elements and, once there is more than one block, forgets the
    partial block at the end (a grid of n // BLOCK blocks whose tail loop only runs for n < BLOCK):
    the sum and mean lose up to 65535 terms, and their gradients are 0 there."""
    loss = (input - target) ** 2 if weight is None else weight * (input - target) ** 2
    if reduction == "none":
        return loss
    flat = loss.reshape(-1)
    kept = flat[: flat.numel() - flat.numel() % BLOCK] if flat.numel() > BLOCK else flat
    total = kept.sum()
    if reduction == "sum":
        return total
    return total / (weight.expand_as(loss).sum() if weight is not None else flat.numel())


def cross_entropy_15_bit_class_index(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: None = None, ignore_index: int = -100, reduce: None = None,
                                     reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Keeps a class index in a 15-bit field of a packed word: class 32768 reads as class 0, so
    every target past 32767 takes another class's log-probability (and weight)."""
    if not target.is_floating_point():
        target = torch.where(target >= 0, target % 32768, target)
    return F.cross_entropy(input, target, weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


CATALOGUE: tuple[Broken, ...] = (
    Broken("mse_blocked_sum_drops_tail", "partial last block dropped at large sizes", "mse_loss",
           mse_blocked_sum_drops_tail, dtypes=("float32",), checks=("large",)),
    Broken("cross_entropy_15_bit_class_index", "class index wraps past 32767", "cross_entropy",
           cross_entropy_15_bit_class_index, dtypes=("float32",), checks=("large",)),
)
