"""Broken backends for the embedding and margin losses: cosine embedding, multi-class and
multi-label margin, multi-label soft margin, triplet margin (with and without a distance function)."""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from tests.broken import Broken

Tensor = torch.Tensor


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return {"none": lambda: loss, "sum": loss.sum, "mean": loss.mean}[reduction]()


# --- cosine_embedding_loss ------------------------------------------------------------------

def cosine_no_epsilon(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                      reduction: str = "mean") -> Tensor:
    """The textbook cosine x1.x2 / (|x1| |x2|): right on ordinary vectors, NaN on a zero vector."""
    cos = (input1 * input2).sum(-1) / (input1.norm(dim=-1) * input2.norm(dim=-1))
    loss = torch.where(target > 0, 1 - cos, (cos - margin).clamp_min(0))
    return _reduce(loss, reduction)


def cosine_hinge_sign_flipped(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                              reduction: str = "mean") -> Tensor:
    """Dissimilar pairs cost max(0, margin - cos) instead of max(0, cos - margin)."""
    none = F.cosine_embedding_loss(input1, input2, target, margin=margin, reduction="none")
    sq1 = (input1 * input1).sum(-1) + 1e-12
    sq2 = (input2 * input2).sum(-1) + 1e-12
    cos = (input1 * input2).sum(-1) / torch.sqrt(sq1 * sq2)
    loss = torch.where(target > 0, none, (margin - cos).clamp_min(0))
    return _reduce(loss, reduction)


# --- multi_margin_loss ----------------------------------------------------------------------

def multi_margin_p_ignored(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                           weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Always the p = 1 hinge, whatever p says."""
    return F.multi_margin_loss(input, target, p=1, margin=margin, weight=weight, reduction=reduction)


def multi_margin_weight_inside_power(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                                     weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """max(0, w_y z)^p: the class weight squared along with the hinge when p = 2."""
    x = input if input.dim() > 1 else input.unsqueeze(0)
    t = target.reshape(-1)
    w = weight if weight is not None else torch.ones(x.shape[-1], dtype=x.dtype)
    z = margin - x.gather(-1, t.unsqueeze(-1)) + x
    h = (w[t].unsqueeze(-1) * z).clamp_min(0) ** p
    others = 1.0 - F.one_hot(t, x.shape[-1]).to(x.dtype)
    loss = (h * others).sum(-1) / x.shape[-1]
    if input.dim() == 1 and reduction == "none":
        loss = loss.squeeze(0)
    return _reduce(loss, reduction)


# --- multilabel_margin_loss -----------------------------------------------------------------

def multilabel_reads_past_terminator(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Every non-negative entry counts as a target, also those after the first -1."""
    x = input if input.dim() > 1 else input.unsqueeze(0)
    y = target if target.dim() > 1 else target.unsqueeze(0)
    read = y >= 0
    t = y.clamp_min(0)
    is_target = (F.one_hot(t, x.shape[-1]) * read.unsqueeze(-1)).amax(-2).to(x.dtype) if t.numel() else \
        torch.zeros_like(x)
    z = 1 - x.gather(-1, t).unsqueeze(-1) + x.unsqueeze(-2)
    pairs = read.to(x.dtype).unsqueeze(-1) * (1 - is_target).unsqueeze(-2)
    loss = (z.clamp_min(0) * pairs).sum((-2, -1)) / x.shape[-1]
    if input.dim() == 1 and reduction == "none":
        loss = loss.squeeze(0)
    return _reduce(loss, reduction)


# --- multilabel_soft_margin_loss ------------------------------------------------------------

def multilabel_soft_none_per_class(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                   reduction: str = "mean") -> Tensor:
    """reduction='none' returns the (N, C) per-class terms instead of the (N) class means."""
    if reduction != "none":
        return F.multilabel_soft_margin_loss(input, target, weight=weight, reduction=reduction)
    loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    return loss * weight if weight is not None else loss


# --- triplet_margin_loss --------------------------------------------------------------------

def triplet_swap_ignored(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                         eps: float = 1e-6, swap: bool = False, reduction: str = "mean") -> Tensor:
    """The distance swap option is accepted and ignored."""
    return F.triplet_margin_loss(anchor, positive, negative, margin=margin, p=p, eps=eps, swap=False,
                                 reduction=reduction)


def triplet_eps_outside_norm(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0,
                             p: float = 2, eps: float = 1e-6, swap: bool = False,
                             reduction: str = "mean") -> Tensor:
    """||x - y||_p + eps instead of ||x - y + eps||_p."""
    def d(x: Tensor, y: Tensor) -> Tensor:
        return torch.linalg.vector_norm(x - y, ord=p, dim=-1) + eps

    d_neg = d(anchor, negative)
    if swap:
        d_neg = torch.minimum(d_neg, d(positive, negative))
    return _reduce((margin + d(anchor, positive) - d_neg).clamp_min(0), reduction)


# --- triplet_margin_with_distance_loss ------------------------------------------------------

def _distance(distance_function: Callable[..., Tensor] | None) -> Callable[..., Tensor]:
    return distance_function if distance_function is not None else F.pairwise_distance


def triplet_distance_default_margin(anchor: Tensor, positive: Tensor, negative: Tensor,
                                    distance_function: Callable[..., Tensor] | None = None,
                                    margin: float = 0.5, swap: bool = False, reduction: str = "mean") -> Tensor:
    """A default margin of 0.5 instead of 1."""
    return F.triplet_margin_with_distance_loss(anchor, positive, negative, distance_function=distance_function,
                                               margin=margin, swap=swap, reduction=reduction)


class _UnmaskedHinge(torch.autograd.Function):
    """max(0, z) whose backward forgets the mask: right forward, gradient also where the loss is 0."""

    @staticmethod
    def forward(ctx: Any, z: Tensor) -> Tensor:
        return z.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


def triplet_distance_backward_bug(anchor: Tensor, positive: Tensor, negative: Tensor,
                                  distance_function: Callable[..., Tensor] | None = None,
                                  margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> Tensor:
    dist = _distance(distance_function)
    d_neg = dist(anchor, negative)
    if swap:
        d_neg = torch.minimum(d_neg, dist(positive, negative))
    return _reduce(_UnmaskedHinge.apply(margin + dist(anchor, positive) - d_neg), reduction)


CATALOGUE: tuple[Broken, ...] = (
    Broken("cosine_no_epsilon", "vector: zero vector gives NaN (no epsilon in the norms)", "cosine_embedding_loss",
           cosine_no_epsilon),
    Broken("cosine_hinge_sign_flipped", "vector: sign error in the dissimilar-pair hinge", "cosine_embedding_loss",
           cosine_hinge_sign_flipped),
    Broken("multi_margin_p_ignored", "vector: option p ignored", "multi_margin_loss", multi_margin_p_ignored),
    Broken("multi_margin_weight_inside_power", "vector: class weight inside the power", "multi_margin_loss",
           multi_margin_weight_inside_power),
    Broken("multilabel_reads_past_terminator", "vector: targets after -1 read anyway", "multilabel_margin_loss",
           multilabel_reads_past_terminator),
    Broken("multilabel_soft_none_per_class", "vector: per-class output shape for reduction none",
           "multilabel_soft_margin_loss", multilabel_soft_none_per_class),
    Broken("triplet_swap_ignored", "vector: swap ignored", "triplet_margin_loss", triplet_swap_ignored),
    Broken("triplet_eps_outside_norm", "vector: eps applied outside the norm", "triplet_margin_loss",
           triplet_eps_outside_norm),
    Broken("triplet_distance_default_margin", "vector: wrong default margin", "triplet_margin_with_distance_loss",
           triplet_distance_default_margin),
    Broken("triplet_distance_backward_bug", "vector: hinge mask missing only in the backward pass",
           "triplet_margin_with_distance_loss", triplet_distance_backward_bug),
)
