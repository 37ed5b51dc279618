"""Backends that the CLI tests name on the command line (``tests.sample_backends:NAME``)."""
from __future__ import annotations

import time
import types

import torch
import torch.nn.functional as F

from tests.broken.seed_losses import l1_mean_is_sum

# Implements one loss only: the others must be reported as not implemented.
only_mse = types.SimpleNamespace(mse_loss=F.mse_loss)

# l1_loss's mean reduction returns the sum.
broken_l1 = types.SimpleNamespace(l1_loss=l1_mean_is_sum, mse_loss=F.mse_loss)


def _l1_in_float64(input, target, reduction="mean"):
    return F.l1_loss(input, target, reduction=reduction).double()


# Right values, of the wrong dtype for a float32 input.
l1_in_float64 = types.SimpleNamespace(l1_loss=_l1_in_float64)


def _bce_logits_without_options(input, target, reduction="mean"):
    return F.binary_cross_entropy_with_logits(input, target, reduction=reduction)


# Takes neither weight nor pos_weight: properties that substitute them do not apply to it.
no_weight = types.SimpleNamespace(binary_cross_entropy_with_logits=_bce_logits_without_options)


def _mse_on_cpu(*args, **kwargs):
    return F.mse_loss(*args, **kwargs).cpu()


# Returns its outputs on the CPU whatever the inputs' device (module-level: a spawned worker can load it).
leaky_cuda = types.SimpleNamespace(mse_loss=_mse_on_cpu)


def _mse_empty_mean_is_zero(input, target, reduction="mean", weight=None):
    # A library's documented choice: the mean over no elements is 0, not 0/0.
    if reduction == "mean" and input.numel() == 0:
        return torch.zeros((), dtype=input.dtype)
    return F.mse_loss(input, target, reduction=reduction, weight=weight)


empty_mean_zero = types.SimpleNamespace(mse_loss=_mse_empty_mean_is_zero)


def _scaled_mse(factor: float):
    def mse_loss(input, target, reduction="mean", weight=None):
        return F.mse_loss(input, target, reduction=reduction, weight=weight) * factor
    return mse_loss


# Values and gradients off by a relative 2^-12 (2.4e-4: past the spec's float32 tolerance of 1e-5,
# inside a declared 1e-3), and by 2^-5 (3%: past both).
mse_off_by_2e_4 = types.SimpleNamespace(mse_loss=_scaled_mse(1 + 2.0 ** -12))
mse_off_by_3_percent = types.SimpleNamespace(mse_loss=_scaled_mse(1 + 2.0 ** -5))


def _huber_lopsided(input, target, reduction="mean", delta=1.0, weight=None):
    # One ulp too large where input < target: huber is no longer symmetric in its inputs, bit for bit.
    loss = F.huber_loss(input, target, reduction="none", delta=delta, weight=weight)
    loss = torch.where(input < target, torch.nextafter(loss, torch.full_like(loss, float("inf"))), loss)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


huber_lopsided = types.SimpleNamespace(huber_loss=_huber_lopsided)


def _huber_two_bugs(input, target, reduction="mean", delta=1.0, weight=None):
    # Two causes in one check: off by a relative 2^-10 everywhere (small), and delta ignored (large
    # wherever delta is not 1 and a difference passes the smaller of the two).
    return F.huber_loss(input, target, reduction=reduction, delta=1.0, weight=weight) * (1 + 2.0 ** -10)


huber_two_bugs = types.SimpleNamespace(huber_loss=_huber_two_bugs)


_SLOW_START_S = 5.0
_answered = []


def _l1_slow_to_start(input, target, reduction="mean", weight=None):
    if not _answered:  # the first call in each worker process
        time.sleep(_SLOW_START_S)
        _answered.append(True)
    return F.l1_loss(input, target, reduction=reduction, weight=weight)


# torch's l1_loss, whose first call in a process takes seconds: a test that must act while a check is
# under way (kill its job) has the time to, however fast the rest runs.
slow_to_start = types.SimpleNamespace(l1_loss=_l1_slow_to_start)
