"""Broken backends for gradients at kinks: a hinge whose derivative at the tie lies outside the
subdifferential [0, 1] (twice the slope, minus the slope, the other branch's slope). Beside them,
``OTHER_END``: hinges that take the other end of the interval at the tie (the flat piece's 0, as
torch 2.14's clamp_min does, where torch 2.13 takes the active piece's 1) and are right: the
suite must pass them."""
from __future__ import annotations

import torch

from tests.broken import Broken

Tensor = torch.Tensor


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return {"none": lambda: loss, "sum": loss.sum, "mean": loss.mean}[reduction]()


def hinge(z: Tensor, tie_slope: float) -> Tensor:
    """max(z, 0) with derivative ``tie_slope`` where z == 0 exactly (the value is unchanged there:
    z - z.detach() is 0, with z's gradient)."""
    flat = torch.where(z > 0, z, torch.zeros_like(z))  # slope 0 at the tie
    return flat + tie_slope * torch.where(z == 0, z - z.detach(), torch.zeros_like(z))


def margin_ranking(tie_slope: float):
    def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                            reduction: str = "mean") -> Tensor:
        return _reduce(hinge(-target * (input1 - input2) + margin, tie_slope), reduction)
    return margin_ranking_loss


def hinge_embedding(tie_slope: float, other_branch: bool = False):
    def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean") -> Tensor:
        z = margin - input
        margin_part = hinge(z, tie_slope)
        if other_branch:  # at the tie the label +1 branch's slope, +1 for d/dx, where -1 to 0 is valid
            margin_part = torch.where(z == 0, input - input.detach(), margin_part)
        return _reduce(torch.where(target > 0, input, margin_part), reduction)
    return hinge_embedding_loss


def multilabel_margin(tie_slope: float):
    """Every read target against every class not among the targets, pair by pair (C x C)."""
    def multilabel_margin_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        x, y = (input, target) if input.dim() == 2 else (input[None], target[None])
        read = torch.cumprod((y != -1).long(), dim=-1) > 0
        t = torch.where(read, y, torch.zeros_like(y))
        is_target = ((t[..., :, None] == torch.arange(x.shape[-1])) & read[..., :, None]).any(-2)
        z = 1 - x.gather(-1, t)[..., :, None] + x[..., None, :]  # (N, target j, class i)
        pairs = read[..., :, None] & ~is_target[..., None, :]
        loss = torch.where(pairs, hinge(z, tie_slope), torch.zeros_like(z)).sum((-1, -2)) / x.shape[-1]
        return _reduce(loss if input.dim() == 2 else loss[0], reduction)
    return multilabel_margin_loss


CATALOGUE = (
    Broken("margin_ranking_twice_the_slope_at_the_tie", "tie gradient outside the subdifferential",
           "margin_ranking_loss", margin_ranking(2.0)),
    Broken("margin_ranking_minus_the_slope_at_the_tie", "tie gradient outside the subdifferential",
           "margin_ranking_loss", margin_ranking(-1.0)),
    Broken("hinge_embedding_other_branch_at_the_tie", "tie gradient of the wrong branch",
           "hinge_embedding_loss", hinge_embedding(0.0, other_branch=True)),
    Broken("multilabel_margin_twice_the_slope_at_the_tie", "tie gradient outside the subdifferential",
           "multilabel_margin_loss", multilabel_margin(2.0)),
)

# Right at every tie: the flat piece's slope 0, the other end of [0, 1] from torch 2.13's clamp_min.
OTHER_END = (
    Broken("margin_ranking_flat_at_the_tie", "the other end of the subdifferential", "margin_ranking_loss",
           margin_ranking(0.0)),
    Broken("hinge_embedding_flat_at_the_tie", "the other end of the subdifferential", "hinge_embedding_loss",
           hinge_embedding(0.0)),
)

# Right at every tie too: the active piece's slope 1, the other end of [0, 1] from ATen's 0.
ACTIVE_AT_THE_TIE = (
    Broken("multilabel_margin_active_at_the_tie", "the other end of the subdifferential", "multilabel_margin_loss",
           multilabel_margin(1.0)),
)
