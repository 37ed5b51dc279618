"""Broken backends for the likelihood losses: nll, kl_div, poisson_nll and gaussian_nll.

Each is ``torch.nn.functional`` with one loss replaced by a plausible reimplementation that has
one bug, of a kind real ports and fused kernels ship: right on random inputs, wrong on the edge
cases (zero targets, boundaries of piecewise terms, clamps, broadcasts) the specs aim at.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from tests.broken import Broken

Tensor = torch.Tensor


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return {"none": lambda: loss, "sum": loss.sum, "mean": loss.mean}[reduction]()


# --- nll_loss -------------------------------------------------------------------------------

def nll_undefined_mean_as_zero(input: Tensor, target: Tensor, weight: Tensor | None = None,
                               ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Guards the weighted mean's division: no kept weight (all ignored, empty) gives 0, not NaN."""
    if reduction != "mean":
        return F.nll_loss(input, target, weight, ignore_index=ignore_index, reduction=reduction)
    total = F.nll_loss(input, target, weight, ignore_index=ignore_index, reduction="sum")
    kept_weight = F.nll_loss(-torch.ones_like(input), target, weight, ignore_index=ignore_index, reduction="sum")
    return total / kept_weight.clamp_min(torch.finfo(input.dtype).tiny)


# --- kl_div ---------------------------------------------------------------------------------

def kl_log_target_ignored(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Accepts log_target but always reads the target as probabilities."""
    return F.kl_div(input, target, reduction=reduction)


def _kl_reduce(loss: Tensor, input: Tensor, reduction: str) -> Tensor:
    if reduction == "batchmean":
        return loss.sum() / input.size(0) if input.dim() else loss.sum()
    return _reduce(loss, reduction)


def kl_plain_log(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """target * (log(target) - input) taken literally: 0 * log 0 is NaN instead of 0."""
    loss = target.exp() * (target - input) if log_target else target * (target.log() - input)
    return _kl_reduce(loss, input, reduction)


def kl_batchmean_last_dim(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """batchmean divides by the size of the last dimension (the class count) instead of the first."""
    if reduction != "batchmean" or input.dim() == 0:
        return F.kl_div(input, target, reduction=reduction, log_target=log_target)
    return F.kl_div(input, target, reduction="sum", log_target=log_target) / input.size(-1)


# --- poisson_nll_loss -----------------------------------------------------------------------

def poisson_default_rate_input(input: Tensor, target: Tensor, log_input: bool = False, full: bool = False,
                               eps: float = 1e-8, reduction: str = "mean") -> Tensor:
    """Defaults to log_input=False (rates), where torch's default is log-rates."""
    return F.poisson_nll_loss(input, target, log_input=log_input, full=full, eps=eps, reduction=reduction)


def _stirling(target: Tensor) -> Tensor:
    return target * torch.log(target) - target + 0.5 * torch.log(2 * math.pi * target)


def _poisson_base(input: Tensor, target: Tensor, log_input: bool, eps: float) -> Tensor:
    return torch.exp(input) - target * input if log_input else input - target * torch.log(input + eps)


def poisson_stirling_sign(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                          eps: float = 1e-8, reduction: str = "mean") -> Tensor:
    """Stirling term typed as y log y + y + log(2 pi y) / 2 (the sign of y flipped)."""
    loss = _poisson_base(input, target, log_input, eps)
    if full:
        term = target * torch.log(target) + target + 0.5 * torch.log(2 * math.pi * target)
        loss = loss + term.masked_fill(target <= 1, 0)
    return _reduce(loss, reduction)


def poisson_stirling_from_one(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                              eps: float = 1e-8, reduction: str = "mean") -> Tensor:
    """Adds the Stirling term for targets >= 1 instead of > 1 (at exactly 1 it is -0.081, not 0)."""
    loss = _poisson_base(input, target, log_input, eps)
    if full:
        loss = loss + _stirling(target).masked_fill(target < 1, 0)
    return _reduce(loss, reduction)


# --- gaussian_nll_loss ----------------------------------------------------------------------

def _gaussian_var(input: Tensor, var: Tensor) -> Tensor:
    if var.dim() == input.dim() - 1 and var.shape == input.shape[:-1]:
        var = var.unsqueeze(-1)
    return var


def _gaussian_finish(loss: Tensor, full: bool, reduction: str) -> Tensor:
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def gaussian_var_misaligned(input: Tensor, target: Tensor, var: Tensor, full: bool = False, eps: float = 1e-6,
                            reduction: str = "mean") -> Tensor:
    """A var with one dimension fewer is broadcast as is, aligned with the input's trailing
    dimensions instead of its leading ones (no unsqueeze(-1))."""
    var = var.clone()
    with torch.no_grad():
        var.clamp_(min=eps)
    loss = 0.5 * (torch.log(var) + (input - target) ** 2 / var)
    return _gaussian_finish(loss, full, reduction)


def gaussian_clamp_blocks_gradient(input: Tensor, target: Tensor, var: Tensor, full: bool = False,
                                   eps: float = 1e-6, reduction: str = "mean") -> Tensor:
    """Clamps var with autograd watching: below eps its gradient is 0, not the documented one."""
    var = _gaussian_var(input, var).clamp(min=eps)
    loss = 0.5 * (torch.log(var) + (input - target) ** 2 / var)
    return _gaussian_finish(loss, full, reduction)


def gaussian_eps_added(input: Tensor, target: Tensor, var: Tensor, full: bool = False, eps: float = 1e-6,
                       reduction: str = "mean") -> Tensor:
    """Reads eps as 'value added to var' (as the functional docstring long said): var + eps."""
    var = _gaussian_var(input, var) + eps
    loss = 0.5 * (torch.log(var) + (input - target) ** 2 / var)
    return _gaussian_finish(loss, full, reduction)


class _GaussianElementwise(torch.autograd.Function):
    """0.5 (log v + (x - y)^2 / v) with a hand-written backward that halves the var gradient."""

    @staticmethod
    def forward(ctx: Any, input: Tensor, target: Tensor, var: Tensor) -> Tensor:
        ctx.save_for_backward(input, target, var)
        return 0.5 * (torch.log(var) + (input - target) ** 2 / var)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        input, target, var = ctx.saved_tensors
        diff = input - target
        g_input = grad * diff / var
        g_var = grad * 0.25 * (1 / var - diff ** 2 / var ** 2)  # should be 0.5
        return g_input, -g_input, g_var


def gaussian_custom_backward(input: Tensor, target: Tensor, var: Tensor, full: bool = False, eps: float = 1e-6,
                             reduction: str = "mean") -> Tensor:
    var = _gaussian_var(input, var).clone()
    with torch.no_grad():
        var.clamp_(min=eps)
    shape = torch.broadcast_shapes(input.shape, target.shape, var.shape)
    loss = _GaussianElementwise.apply(input.expand(shape), target.expand(shape), var.expand(shape))
    return _gaussian_finish(loss, full, reduction)


CATALOGUE: tuple[Broken, ...] = (
    Broken("nll_undefined_mean_as_zero", "undefined weighted mean (no kept weight) returned as 0 instead of NaN",
           "nll_loss", nll_undefined_mean_as_zero),
    Broken("kl_log_target_ignored", "log_target option accepted but ignored", "kl_div", kl_log_target_ignored),
    Broken("kl_plain_log", "0 log 0 evaluated literally (NaN) instead of as 0", "kl_div", kl_plain_log),
    Broken("kl_batchmean_last_dim", "batchmean divides by the last dimension, not the batch", "kl_div",
           kl_batchmean_last_dim),
    Broken("poisson_default_rate_input", "wrong default of log_input (rates instead of log-rates)",
           "poisson_nll_loss", poisson_default_rate_input),
    Broken("poisson_stirling_sign", "sign error in the Stirling term (+y instead of -y)", "poisson_nll_loss",
           poisson_stirling_sign),
    Broken("poisson_stirling_from_one", "off-by-one threshold of a piecewise term (y >= 1 instead of y > 1)",
           "poisson_nll_loss", poisson_stirling_from_one),
    Broken("gaussian_var_misaligned", "var with one fewer dimension broadcast against the trailing dimensions",
           "gaussian_nll_loss", gaussian_var_misaligned),
    Broken("gaussian_clamp_blocks_gradient", "clamp differentiated: zero var gradient below eps",
           "gaussian_nll_loss", gaussian_clamp_blocks_gradient),
    Broken("gaussian_eps_added", "eps added to var instead of clamping it", "gaussian_nll_loss",
           gaussian_eps_added),
    Broken("gaussian_custom_backward", "var gradient halved only in a custom autograd backward",
           "gaussian_nll_loss", gaussian_custom_backward),
)
