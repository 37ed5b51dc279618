"""Broken backends for the seed's four losses: l1, mse, binary cross-entropy, cross-entropy."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tests.broken import Broken

Tensor = torch.Tensor


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return {"none": lambda: loss, "sum": loss.sum, "mean": loss.mean}[reduction]()


# --- l1_loss / mse_loss --------------------------------------------------------------------

def l1_mean_is_sum(input: Tensor, target: Tensor, reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    loss = (input - target).abs() * (1 if weight is None else weight)
    return loss.sum() if reduction in ("mean", "sum") else loss


def l1_none_flattened(input: Tensor, target: Tensor, reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    out = F.l1_loss(input, target, reduction=reduction, weight=weight)
    return out.reshape(-1) if reduction == "none" else out


def mse_default_sum(input: Tensor, target: Tensor, reduction: str = "sum", weight: Tensor | None = None) -> Tensor:
    return F.mse_loss(input, target, reduction=reduction, weight=weight)


def mse_upcasts(input: Tensor, target: Tensor, reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    w = None if weight is None else weight.double()
    return F.mse_loss(input.double(), target.double(), reduction=reduction, weight=w)


class _HalfGradSquare(torch.autograd.Function):
    """(x - t)^2 whose backward forgets the factor 2: right forward, wrong gradient."""

    @staticmethod
    def forward(ctx: Any, diff: Tensor) -> Tensor:
        ctx.save_for_backward(diff)
        return diff * diff

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (diff,) = ctx.saved_tensors
        return grad * diff


def mse_backward_bug(input: Tensor, target: Tensor, reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    loss = _HalfGradSquare.apply(input - target)
    if weight is not None:
        loss = loss * weight
        return loss.sum() / weight.sum() if reduction == "mean" else _reduce(loss, reduction)
    return _reduce(loss, reduction)


# --- binary_cross_entropy -------------------------------------------------------------------

def bce_no_clamp(input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    loss = -(target * torch.log(input) + (1 - target) * torch.log1p(-input))
    return _reduce(loss * (1 if weight is None else weight), reduction)


def bce_ignores_weight(input: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    return F.binary_cross_entropy(input, target, reduction=reduction)


# --- cross_entropy --------------------------------------------------------------------------

def ce_mean_over_samples(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                         reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Weighted mean divided by the number of kept samples instead of the sum of their weights."""
    if reduction != "mean" or target.is_floating_point():
        return F.cross_entropy(input, target, weight, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=label_smoothing)
    loss = F.cross_entropy(input, target, weight, ignore_index=ignore_index, reduction="none",
                           label_smoothing=label_smoothing)
    return loss.sum() / (target != ignore_index).sum()


def ce_hardcoded_ignore(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                        reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Only ever ignores -100, whatever ignore_index says (a class index then counts)."""
    if not target.is_floating_point() and ignore_index != -100:
        ignore_index = -100
        if (target < 0).any():
            target = target.clamp(min=0)
    return F.cross_entropy(input, target, weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


def ce_smoothing_over_others(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                             reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Label smoothing that spreads eps over the C - 1 other classes instead of all C."""
    classes = input.shape[1] if input.dim() > 1 else input.shape[0]
    eps = label_smoothing * classes / max(classes - 1, 1)
    return F.cross_entropy(input, target, weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=min(eps, 1.0))


def ce_naive_softmax(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                     reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """log(exp(x) / sum(exp(x))) without the max shift: overflows at large logits."""
    dim = 1 if input.dim() > 1 else 0
    e = torch.exp(input)
    log_p = torch.log(e / e.sum(dim=dim, keepdim=True))
    if target.is_floating_point():
        return F.cross_entropy(log_p, target, weight, reduction=reduction, label_smoothing=label_smoothing)
    return F.nll_loss(log_p, target, weight, ignore_index=ignore_index, reduction=reduction) \
        if label_smoothing == 0.0 else F.cross_entropy(input, target, weight, ignore_index=ignore_index,
                                                       reduction=reduction, label_smoothing=label_smoothing)


def ce_last_axis_classes(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                         reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """For (N, C, d1, ...) inputs, normalises over the last axis instead of the class axis 1."""
    if input.dim() > 2:
        input = torch.log_softmax(input, dim=-1)
    return F.cross_entropy(input, target, weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


def ce_probabilities_as_argmax(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                               reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Class-probability targets collapsed to their argmax class."""
    if target.is_floating_point():
        dim = 1 if input.dim() > 1 else 0
        target = target.argmax(dim=dim)
    return F.cross_entropy(input, target, weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


CATALOGUE: tuple[Broken, ...] = (
    Broken("l1_mean_is_sum", "wrong reduction", "l1_loss", l1_mean_is_sum),
    Broken("ce_mean_over_samples", "wrong normaliser", "cross_entropy", ce_mean_over_samples),
    Broken("bce_no_clamp", "missing clamp", "binary_cross_entropy", bce_no_clamp),
    Broken("bce_ignores_weight", "ignored weight", "binary_cross_entropy", bce_ignores_weight),
    Broken("ce_hardcoded_ignore", "ignore_index mishandled", "cross_entropy", ce_hardcoded_ignore),
    Broken("ce_smoothing_over_others", "wrong label smoothing", "cross_entropy", ce_smoothing_over_others),
    Broken("ce_naive_softmax", "overflow at large logits", "cross_entropy", ce_naive_softmax),
    Broken("ce_last_axis_classes", "wrong class axis for K-dim inputs", "cross_entropy", ce_last_axis_classes),
    Broken("ce_probabilities_as_argmax", "probability targets mishandled", "cross_entropy",
           ce_probabilities_as_argmax),
    Broken("mse_backward_bug", "bug only in the backward pass", "mse_loss", mse_backward_bug),
    Broken("mse_upcasts", "wrong output dtype", "mse_loss", mse_upcasts),
    Broken("l1_none_flattened", "wrong output shape", "l1_loss", l1_none_flattened),
    Broken("mse_default_sum", "wrong default", "mse_loss", mse_default_sum),
)
