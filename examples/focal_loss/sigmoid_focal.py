"""A worked example of a user's own loss: the sigmoid focal loss (RetinaNet), in torch, checked
against the spec beside it (``focal_loss.yaml``), which torch does not ship:

    loss-conformance run --spec examples/focal_loss/focal_loss.yaml --backend examples.focal_loss.sigmoid_focal \
        --loss sigmoid_focal_loss

Same signature and defaults as ``torchvision.ops.sigmoid_focal_loss``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(input: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> torch.Tensor:
    ce = F.binary_cross_entropy_with_logits(input, target, reduction="none")
    # 1 - p_t as a sum of non-negative terms: torchvision's 1 - (p y + (1 - p)(1 - y)) can round
    # below zero on a soft target, and a negative number to a fractional gamma is NaN.
    miss = target * torch.sigmoid(-input) + (1 - target) * torch.sigmoid(input)
    loss = ce * miss ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"unknown reduction {reduction!r}")
