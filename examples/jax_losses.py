"""A worked example of a JAX backend: L1, MSE and soft margin written in ``jax.numpy``.

    pip install "loss-conformance[jax]"
    loss-conformance run --backend jax_losses --loss l1_loss mse_loss soft_margin_loss   (examples/ on PYTHONPATH)

The module-level flag tells the harness that these functions take and return JAX arrays: it
enables 64-bit floats, converts the generated tensors, and checks the gradients JAX computes
(``jax.vjp``) against the oracle, to second order where the spec promises double backward.
"""
from __future__ import annotations

import jax.numpy as jnp

loss_conformance_array_type = "jax"


def _reduce(loss, weight, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    if reduction == "mean":
        return jnp.sum(loss) / (jnp.sum(weight) if weight is not None else loss.size)
    raise ValueError(f"unknown reduction {reduction!r}")


def l1_loss(input, target, reduction="mean", weight=None):
    loss = jnp.abs(input - target)
    return _reduce(loss * weight if weight is not None else loss, weight, reduction)


def mse_loss(input, target, reduction="mean", weight=None):
    loss = jnp.square(input - target)
    return _reduce(loss * weight if weight is not None else loss, weight, reduction)


def soft_margin_loss(input, target, reduction="mean"):
    # log(1 + exp(-y x)), stable for large |x|
    return _reduce(jnp.logaddexp(0.0, -target * input), None, reduction)
