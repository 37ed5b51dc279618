"""Broken backends for the logit, robust-regression and margin losses: binary cross-entropy with
logits, Huber, smooth L1, soft margin, margin ranking and hinge embedding."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tests.broken import Broken

Tensor = torch.Tensor


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return {"none": lambda: loss, "sum": loss.sum, "mean": loss.mean}[reduction]()


# --- binary_cross_entropy_with_logits ---------------------------------------------------------

def bcewl_ignores_pos_weight(input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean",
                             pos_weight: Tensor | None = None) -> Tensor:
    """Accepts pos_weight and drops it on the floor."""
    return F.binary_cross_entropy_with_logits(input, target, weight, reduction=reduction)


def bcewl_naive_sigmoid(input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean",
                        pos_weight: Tensor | None = None) -> Tensor:
    """log(sigmoid(x)) and log(1 - sigmoid(x)) taken literally: right for small logits,
    -inf (and so inf or NaN losses) once sigmoid rounds to 0 or 1 at large ones."""
    p = torch.sigmoid(input)
    pw = 1.0 if pos_weight is None else pos_weight
    loss = -(pw * target * torch.log(p) + (1 - target) * torch.log(1 - p))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def bcewl_weighted_mean(input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean",
                        pos_weight: Tensor | None = None) -> Tensor:
    """The mean normalised by the sum of the weights (l1_loss's convention), not by the count."""
    loss = F.binary_cross_entropy_with_logits(input, target, weight, reduction="none", pos_weight=pos_weight)
    if reduction != "mean" or weight is None:
        return _reduce(loss, reduction)
    return loss.sum() / (weight * torch.ones_like(input)).sum()


# --- huber_loss / smooth_l1_loss --------------------------------------------------------------

def huber_default_delta(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.35,
                        weight: Tensor | None = None) -> Tensor:
    """Default delta 1.35 (scikit-learn's HuberRegressor epsilon) instead of torch's 1.0."""
    return F.huber_loss(input, target, reduction=reduction, delta=delta, weight=weight)


def huber_divided_by_delta(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
                           weight: Tensor | None = None) -> Tensor:
    """Huber confused with smooth L1: 0.5 d^2 / delta inside and |d| - delta / 2 outside."""
    loss = F.smooth_l1_loss(input, target, reduction="none", beta=delta)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def smooth_l1_beta_zero_nan(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Both pieces computed and selected with where, without the beta = 0 special case: the
    forward is right (0 / 0 is never selected) but its NaN leaks into the backward pass."""
    d = input - target
    a = d.abs()
    loss = torch.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
    return _reduce(loss, reduction)


def smooth_l1_default_beta(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0 / 9) -> Tensor:
    """Default beta 1/9 (Detectron's box-regression value) instead of torch's 1.0."""
    return F.smooth_l1_loss(input, target, reduction=reduction, beta=beta)


# --- soft_margin_loss -------------------------------------------------------------------------

def soft_margin_sign_flipped(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """softplus(y x) instead of softplus(-y x): rewards the wrong side."""
    return _reduce(F.softplus(target * input), reduction)


# --- margin_ranking_loss ----------------------------------------------------------------------

def margin_ranking_flattened(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                             reduction: str = "mean") -> Tensor:
    """Flattens its inputs "to be safe": fine for equal 1-D shapes, wrong shapes (or a
    broadcasting error) for 0-d, 2-D and broadcast inputs."""
    x1, x2, y = input1.reshape(-1), input2.reshape(-1), target.reshape(-1)
    return _reduce((-y * (x1 - x2) + margin).clamp_min(0), reduction)


# --- hinge_embedding_loss ---------------------------------------------------------------------

class _HingeWrongBackward(torch.autograd.Function):
    """max(0, margin - x) with a backward that forgets the minus sign: right forward, and a
    gradient of +1 instead of -1 inside the margin."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, margin: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.margin = margin
        return (margin - x).clamp_min(0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * (x <= ctx.margin).to(grad.dtype), None


def hinge_backward_sign(input: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    hinge = _HingeWrongBackward.apply(input, margin)
    loss = torch.where(target > 0, input, hinge)
    return _reduce(loss, reduction)


CATALOGUE: tuple[Broken, ...] = (
    Broken("bcewl_ignores_pos_weight", "pos_weight ignored", "binary_cross_entropy_with_logits",
           bcewl_ignores_pos_weight),
    Broken("bcewl_naive_sigmoid", "log(sigmoid(x)) taken literally: unstable at large logits",
           "binary_cross_entropy_with_logits", bcewl_naive_sigmoid),
    Broken("bcewl_weighted_mean", "per-element weight put into the mean's normaliser",
           "binary_cross_entropy_with_logits", bcewl_weighted_mean),
    Broken("huber_default_delta", "wrong default delta (1.35, scikit-learn's epsilon)", "huber_loss",
           huber_default_delta),
    Broken("huber_divided_by_delta", "Huber confused with smooth L1 (divided by delta)", "huber_loss",
           huber_divided_by_delta),
    Broken("smooth_l1_beta_zero_nan", "beta = 0 divides by zero (NaN only in the backward pass)",
           "smooth_l1_loss", smooth_l1_beta_zero_nan),
    Broken("smooth_l1_default_beta", "wrong default beta (1/9, Detectron's value)", "smooth_l1_loss",
           smooth_l1_default_beta),
    Broken("soft_margin_sign_flipped", "sign error in the margin (softplus(y x))", "soft_margin_loss",
           soft_margin_sign_flipped),
    Broken("margin_ranking_flattened", "same-rank broadcasting rule broken (inputs flattened)",
           "margin_ranking_loss", margin_ranking_flattened),
    Broken("hinge_backward_sign", "hinge gradient sign wrong only in a custom autograd backward",
           "hinge_embedding_loss", hinge_backward_sign),
)
