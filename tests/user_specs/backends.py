"""Backends for the user specs of ``tests/user_specs/``: a faithful log-cosh and a broken one."""
from __future__ import annotations

import math
import types

import torch


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def log_cosh_loss(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    d = (input - target).abs()
    return _reduce(d + torch.log1p(torch.exp(-2 * d)) - math.log(2.0), reduction)


def _log_cosh_overflowing(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    # The textbook form: cosh overflows to inf past |x - y| of about 89 (float32) or 710 (float64).
    return _reduce(torch.log(torch.cosh(input - target)), reduction)


broken = types.SimpleNamespace(log_cosh_loss=_log_cosh_overflowing)
