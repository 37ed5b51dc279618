"""Broken backends loaded by name, as a user's would be: a wrong mean (the sum over n - 1
elements) in NumPy, torch and JAX for the standalone snippet's tests (tests/test_standalone.py),
and a JAX MSE with a doubled gradient (tests/test_jax_backend.py). JAX is imported only when one
of its functions is called."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np


def _numpy_l1(input, target, reduction="mean", weight=None):
    loss = np.abs(input - target) * (1 if weight is None else weight)
    if reduction == "none":
        return loss
    total = loss.sum(dtype=loss.dtype)
    return np.asarray(total if reduction == "sum" else total / max(loss.size - 1, 1), dtype=loss.dtype)


def _torch_l1(input, target, reduction="mean", weight=None):
    loss = (input - target).abs() * (1 if weight is None else weight)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / max(loss.numel() - 1, 1)


def _jax_l1(input, target, reduction="mean", weight=None):
    import jax.numpy as jnp

    loss = jnp.abs(input - target) * (1 if weight is None else weight)
    if reduction == "none":
        return loss
    return jnp.sum(loss) if reduction == "sum" else jnp.sum(loss) / max(loss.size - 1, 1)


def _torch_l1_doubled_gradient(input, target, reduction="mean", weight=None):
    """L1 whose value is right and whose gradient is twice the true one."""
    right = _torch_l1(input, target, reduction, weight)
    return 2 * right - right.detach()


numpy_wrong_mean = SimpleNamespace(loss_conformance_array_type="numpy", l1_loss=_numpy_l1)
torch_wrong_mean = SimpleNamespace(l1_loss=_torch_l1)
jax_wrong_mean = SimpleNamespace(loss_conformance_array_type="jax", l1_loss=_jax_l1)
torch_doubled_gradient = SimpleNamespace(l1_loss=_torch_l1_doubled_gradient)


def _jax_doubled_gradient_mse(input, target, reduction="mean"):
    """MSE whose forward is right and whose gradient JAX is told is twice the true one."""
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def squares(d):
        return jnp.square(d)

    squares.defvjp(lambda d: (jnp.square(d), d), lambda d, g: (4 * d * g,))
    loss = squares(input - target)
    return loss if reduction == "none" else jnp.sum(loss) if reduction == "sum" else jnp.mean(loss)


jax_doubled_gradient = SimpleNamespace(loss_conformance_array_type="jax", mse_loss=_jax_doubled_gradient_mse)
