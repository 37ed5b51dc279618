"""An adapter from the torch.nn.functional contract to optax's losses (``optax.losses``, JAX).

Each function has torch's name and signature and calls the optax loss that computes the same
quantity; the adapter only moves axes, applies the reduction and translates options. What optax
does not offer is left out: a loss it lacks has no function here, and an option or reduction it
lacks is declared in ``capabilities.yaml`` beside this file. From the repository's root, with
``pip install "loss-conformance[jax]" optax``:

    PYTHONPATH=examples loss-conformance run --backend optax_losses.optax_losses \\
        --capabilities examples/optax_losses/capabilities.yaml \\
        --known-deviations examples/optax_losses/known_deviations.yaml \\
        --loss mse_loss huber_loss smooth_l1_loss cross_entropy binary_cross_entropy_with_logits \\
               kl_div triplet_margin_loss ctc_loss cosine_embedding_loss

and the sigmoid focal loss against the user spec of ``examples/focal_loss``:

    PYTHONPATH=examples loss-conformance run --spec examples/focal_loss/focal_loss.yaml \\
        --backend optax_losses.optax_losses --loss sigmoid_focal_loss
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

loss_conformance_array_type = "jax"


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    if reduction == "mean":
        return jnp.mean(loss)
    raise ValueError(f"unknown reduction {reduction!r}")


def _class_axis(input):
    # torch puts the classes on dim 1 of a batch, on dim 0 of a single sample
    return 0 if input.ndim == 1 else 1


def mse_loss(input, target, reduction="mean"):
    return _reduce(optax.losses.squared_error(input, target), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    return _reduce(optax.losses.huber_loss(input, target, delta=delta), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    if beta == 0:  # torch's definition: the L1 loss
        return _reduce(jnp.abs(input - target), reduction)
    return _reduce(optax.losses.huber_loss(input, target, delta=beta) / beta, reduction)


def cross_entropy(input, target, reduction="mean", ignore_index=-100, label_smoothing=0.0):
    axis = _class_axis(input)
    if not jnp.issubdtype(target.dtype, jnp.integer):  # class probabilities
        if label_smoothing != 0.0:
            target = _smooth(target, label_smoothing, axis)
        return _reduce(optax.losses.softmax_cross_entropy(input, target, axis=axis), reduction)
    # optax has no ignored class: mask it here, as torch does (a target of -100 by default)
    keep = target != ignore_index
    labels = jnp.where(keep, target, 0)
    if label_smoothing == 0.0:
        loss = optax.losses.softmax_cross_entropy_with_integer_labels(input, labels, axis=axis)
    else:
        one_hot = jnp.moveaxis(jax.nn.one_hot(labels, input.shape[axis], dtype=input.dtype), -1, axis)
        loss = optax.losses.softmax_cross_entropy(input, _smooth(one_hot, label_smoothing, axis), axis=axis)
    loss = jnp.where(keep, loss, 0.0)
    if reduction == "mean":
        return jnp.sum(loss) / jnp.sum(keep)
    return _reduce(loss, reduction)


def _smooth(probabilities, label_smoothing, axis):
    return jnp.moveaxis(optax.smooth_labels(jnp.moveaxis(probabilities, axis, -1), label_smoothing), -1, axis)


def binary_cross_entropy_with_logits(input, target, reduction="mean"):
    return _reduce(optax.losses.sigmoid_binary_cross_entropy(input, target), reduction)


def kl_div(input, target, reduction="mean", log_target=False):
    kl = optax.losses.kl_divergence_with_log_targets if log_target else optax.losses.kl_divergence
    total = kl(input, target, axis=None)  # optax sums: no elementwise ('none') result
    if reduction == "sum":
        return total
    if reduction == "batchmean":
        return total / input.shape[0] if input.ndim else total
    if reduction == "mean":
        return total / input.size
    raise ValueError(f"unsupported reduction {reduction!r}")


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, reduction="mean"):
    loss = optax.losses.triplet_margin_loss(anchor, positive, negative, norm_degree=p, margin=margin, eps=eps)
    return _reduce(loss, reduction)


def cosine_embedding_loss(input1, input2, target, margin=0.0, reduction="mean"):
    cos = optax.losses.cosine_similarity(input1, input2, epsilon=1e-12)
    return _reduce(jnp.where(target == 1, 1.0 - cos, jnp.maximum(0.0, cos - margin)), reduction)


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    unbatched = log_probs.ndim == 2
    if unbatched:
        log_probs, input_lengths, target_lengths = log_probs[:, None], input_lengths[None], target_lengths[None]
        targets = targets[None]
    logits = jnp.moveaxis(log_probs, 0, 1)  # (N, T, C); optax's log_softmax leaves log-probabilities as they are
    steps = jnp.arange(logits.shape[1])
    logit_paddings = (steps[None, :] >= input_lengths[:, None]).astype(logits.dtype)
    if targets.ndim == 1:  # concatenated targets: pad each sample's slice to the longest possible width
        starts = jnp.cumsum(target_lengths) - target_lengths
        width = jnp.arange(max(targets.shape[0], 1))
        targets = jnp.take(targets, starts[:, None] + width[None, :], mode="clip") if targets.shape[0] else \
            jnp.zeros((target_lengths.shape[0], 1), targets.dtype)
    label_paddings = (jnp.arange(targets.shape[1])[None, :] >= target_lengths[:, None]).astype(logits.dtype)
    loss = optax.losses.ctc_loss(logits, logit_paddings, targets, label_paddings, blank_id=blank)
    if zero_infinity:
        loss = jnp.where(jnp.isinf(loss), 0.0, loss)
    if unbatched:
        loss = loss[0]
    if reduction == "mean":
        return jnp.mean(loss / jnp.maximum(target_lengths, 1))
    return _reduce(loss, reduction)


def sigmoid_focal_loss(input, target, alpha=0.25, gamma=2.0, reduction="none"):
    loss = optax.losses.sigmoid_focal_loss(input, target, alpha=None if alpha < 0 else alpha, gamma=gamma)
    return _reduce(loss, reduction)
