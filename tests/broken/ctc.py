"""Broken backends for ctc_loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.broken import Broken

Tensor = torch.Tensor


def ctc_zero_infinity_ignored(log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor,
                              blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=blank, reduction=reduction)


def ctc_mean_over_samples(log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor,
                          blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """The mean of the per-sample losses, not divided by each target length first."""
    loss = F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=blank, reduction="none",
                      zero_infinity=zero_infinity)
    return loss.mean() if reduction == "mean" else F.ctc_loss(
        log_probs, targets, input_lengths, target_lengths, blank=blank, reduction=reduction,
        zero_infinity=zero_infinity)


def ctc_blank_always_zero(log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor,
                          blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction=reduction,
                      zero_infinity=zero_infinity)


def ctc_concatenated_as_first_row(log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor,
                                  blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """Batched 1-D (concatenated) targets read as every sample starting at offset 0."""
    if log_probs.dim() == 3 and targets.dim() == 1 and target_lengths.numel():
        width = int(target_lengths.max())
        row = torch.cat([targets, targets.new_full((width,), blank + 1 if blank == 0 else 0)])[:width]
        targets = row.expand(log_probs.shape[1], width)
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=blank, reduction=reduction,
                      zero_infinity=zero_infinity)


CATALOGUE = (
    Broken("ctc_zero_infinity_ignored", "zero_infinity ignored", "ctc_loss", ctc_zero_infinity_ignored),
    Broken("ctc_mean_over_samples", "ctc mean not divided by target lengths", "ctc_loss", ctc_mean_over_samples),
    Broken("ctc_blank_always_zero", "blank index ignored", "ctc_loss", ctc_blank_always_zero),
    Broken("ctc_concatenated_as_first_row", "concatenated targets misread", "ctc_loss", ctc_concatenated_as_first_row),
)
