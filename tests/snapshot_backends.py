"""Backends that differ from ``torch.nn.functional`` in one way each, as an upgrade of torch can:
``snapshot compare`` must classify the change for the loss it touches and nothing else. Named on
the command line as ``tests.snapshot_backends:NAME``.

None of them is broken in the sense of ``tests/broken``: each would pass ``run`` (a one-ULP change
is within every tolerance, any subgradient at a tie is a gradient, an error message is free text);
a snapshot is what sees them."""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F

from tests.broken.kinks import hinge_embedding, margin_ranking

Tensor = torch.Tensor


def _functional(**replaced: object) -> types.SimpleNamespace:
    """torch.nn.functional's losses with some replaced."""
    losses = {name: getattr(F, name) for name in dir(F) if name.endswith("_loss") or name in
              ("cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "nll_loss")}
    return types.SimpleNamespace(**{**losses, **replaced})


def _mse_one_ulp_up(input: Tensor, target: Tensor, reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """torch's value moved one unit in the last place towards +inf; the gradient is torch's."""
    out = F.mse_loss(input, target, reduction=reduction, weight=weight)
    step = torch.nextafter(out.detach(), torch.full_like(out.detach(), float("inf"))) - out.detach()
    return out + torch.where(torch.isfinite(step), step, torch.zeros_like(step))


def _margin_ranking_zero_at_ties(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                                 reduction: str = "mean") -> Tensor:
    """torch's formula and values, with the subgradient 0 (instead of torch 2.13's 1) where the hinge
    sits exactly at its kink: the convention change of a clamp's boundary gradient."""
    z = -target * (input1 - input2) + margin
    loss = torch.where(z == 0, torch.zeros_like(z), z.clamp_min(0))
    return {"none": lambda: loss, "sum": loss.sum, "mean": loss.mean}[reduction]()


def _nll_refusing_sum(message: str):
    def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                 reduction: str = "mean") -> Tensor:
        if reduction == "sum":
            raise ValueError(message)
        return F.nll_loss(input, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    return nll_loss


# One ULP in mse_loss's output.
mse_one_ulp = _functional(mse_loss=_mse_one_ulp_up)
# margin_ranking_loss's gradient at a tie.
margin_ranking_tie_gradient = _functional(margin_ranking_loss=_margin_ranking_zero_at_ties)
# Hinges with a stated derivative at the tie, whatever torch's own convention: each end of the
# subdifferential [0, 1] (right: torch 2.13's clamp_min; left: torch 2.14's), and outside it.
hinges_right_end = _functional(margin_ranking_loss=margin_ranking(1.0), hinge_embedding_loss=hinge_embedding(1.0))
hinges_left_end = _functional(margin_ranking_loss=margin_ranking(0.0), hinge_embedding_loss=hinge_embedding(0.0))
hinges_twice_the_slope = _functional(margin_ranking_loss=margin_ranking(2.0),
                                     hinge_embedding_loss=hinge_embedding(2.0))
hinges_other_branch = _functional(margin_ranking_loss=margin_ranking(-1.0),
                                  hinge_embedding_loss=hinge_embedding(0.0, other_branch=True))
# nll_loss raises under reduction="sum", in one wording and in another.
nll_sum_raises = _functional(nll_loss=_nll_refusing_sum("reduction='sum' is not supported"))
nll_sum_raises_reworded = _functional(nll_loss=_nll_refusing_sum("this backend does not support reduction='sum'"))
