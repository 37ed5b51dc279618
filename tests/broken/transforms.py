"""Broken backends that are right on a plain call and its gradient, and wrong only under one of
torch's function transforms: forward-mode AD, ``vmap``, or forward over reverse at large inputs.

Each is a fused kernel written as a ``torch.autograd.Function`` with its own rules (``jvp``,
``vmap``, a double-backward kernel), as real custom kernels are: those rules run only under the
transform, so only the transform checks can see them.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tests.broken import Broken

Tensor = torch.Tensor


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return {"none": lambda: loss, "sum": loss.sum, "mean": loss.mean}[reduction]()


# --- huber_loss: a forward-mode rule that forgets the quadratic zone --------------------------

class _HuberKernel(torch.autograd.Function):
    """Huber of the difference d. Forward and backward are right; ``jvp`` takes the linear zone's
    slope delta sign(d) everywhere, also for |d| < delta where the slope is d."""

    generate_vmap_rule = True

    @staticmethod
    def forward(d: Tensor, delta: float) -> Tensor:
        return torch.where(d.abs() < delta, 0.5 * d * d, delta * (d.abs() - 0.5 * delta))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        d, ctx.delta = inputs
        ctx.save_for_backward(d)
        ctx.save_for_forward(d)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (d,) = ctx.saved_tensors
        return grad * torch.where(d.abs() < ctx.delta, d, ctx.delta * torch.sign(d)), None

    @staticmethod
    def jvp(ctx: Any, d_t: Tensor, _: Any) -> Tensor:
        (d,) = ctx.saved_tensors
        return ctx.delta * torch.sign(d) * d_t


def huber_forward_ad_bug(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
                         weight: Tensor | None = None) -> Tensor:
    loss = _HuberKernel.apply(input - target, delta)
    return _reduce(loss if weight is None else loss * weight, reduction)


# --- smooth_l1_loss: a batching rule that reduces across the batch ------------------------------

class _FusedReduce(torch.autograd.Function):
    """The mean or sum of a loss. Forward, backward and jvp are right; the ``vmap`` rule reduces
    over every dimension, the batch's included, so each sample gets the whole batch's value."""

    @staticmethod
    def forward(loss: Tensor, mode: str) -> Tensor:
        return loss.mean() if mode == "mean" else loss.sum()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        loss, ctx.mode = inputs
        ctx.shape, ctx.count = loss.shape, loss.numel()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.expand(ctx.shape)
        return (grad / ctx.count if ctx.mode == "mean" else grad), None

    @staticmethod
    def jvp(ctx: Any, loss_t: Tensor, _: Any) -> Tensor:
        return loss_t.mean() if ctx.mode == "mean" else loss_t.sum()

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Any, ...], loss: Tensor, mode: str) -> tuple[Tensor, Any]:
        if in_dims[0] is None:
            return _FusedReduce.forward(loss, mode), None
        whole = loss.mean() if mode == "mean" else loss.sum()
        return whole.expand(info.batch_size), 0


def smooth_l1_vmap_bug(input: Tensor, target: Tensor, size_average: Any = None, reduce: Any = None,
                       reduction: str = "mean", beta: float = 1.0) -> Tensor:
    loss = F.smooth_l1_loss(input, target, reduction="none", beta=beta)
    return loss if reduction == "none" else _FusedReduce.apply(loss, reduction)


# --- mse_loss: a double-backward kernel that saturates beyond |x - y| = 20 ----------------------

_SATURATION = 20.0


def _unsaturated(d: Tensor) -> Tensor:
    return (d.abs() <= _SATURATION).to(d.dtype)


class _SquareGrad(torch.autograd.Function):
    """2 g d, the gradient of d^2 for the cotangent g: right. Its own derivatives (the second-order
    kernel) clip the slope in d to 0 beyond |d| = 20, as a saturating softplus-style kernel does
    past its threshold: gradgradcheck, which stays at small values, cannot see it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad: Tensor, d: Tensor) -> Tensor:
        return 2 * grad * d

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx: Any, gg: Tensor) -> tuple[Tensor, Tensor]:
        grad, d = ctx.saved_tensors
        return 2 * gg * d, 2 * gg * grad * _unsaturated(d)

    @staticmethod
    def jvp(ctx: Any, grad_t: Tensor | None, d_t: Tensor | None) -> Tensor:
        grad, d = ctx.saved_tensors
        out = torch.zeros_like(d * grad)
        if grad_t is not None:
            out = out + 2 * grad_t * d
        if d_t is not None:
            out = out + 2 * grad * d_t * _unsaturated(d)
        return out


class _Square(torch.autograd.Function):
    """d^2, whose backward and forward-mode rule both go through ``_SquareGrad``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(d: Tensor) -> Tensor:
        return d * d

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (d,) = ctx.saved_tensors
        return _SquareGrad.apply(grad, d)

    @staticmethod
    def jvp(ctx: Any, d_t: Tensor) -> Tensor:
        (d,) = ctx.saved_tensors
        return _SquareGrad.apply(d_t, d)


def mse_second_order_bug(input: Tensor, target: Tensor, size_average: Any = None, reduce: Any = None,
                         reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    loss = _Square.apply(input - target)
    if weight is None:
        return _reduce(loss, reduction)
    loss = loss * weight
    return loss.sum() / weight.sum() if reduction == "mean" else _reduce(loss, reduction)


CATALOGUE: tuple[Broken, ...] = (
    Broken("huber_forward_ad_bug", "bug only in forward-mode AD", "huber_loss", huber_forward_ad_bug),
    Broken("smooth_l1_vmap_bug", "bug only under vmap", "smooth_l1_loss", smooth_l1_vmap_bug),
    Broken("mse_second_order_bug", "second derivative wrong at large magnitude", "mse_loss", mse_second_order_bug),
)
