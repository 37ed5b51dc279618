"""Backends that misbehave instead of computing a wrong value: they crash, hang, exit, mutate or
alias their inputs, answer differently each time. Each is ``torch.nn.functional`` with
``mse_loss`` replaced, and is named on the command line as ``tests.misbehaving:NAME``.

``EXPECTED`` maps each to the status the suite must give it; the verdict must never be green.
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
import types
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _with_mse(fn: Any) -> types.SimpleNamespace:
    names = {n: getattr(F, n) for n in dir(F) if not n.startswith("_")}
    return types.SimpleNamespace(**{**names, "mse_loss": fn})


def _raises(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    raise RuntimeError("no kernel for this input")


def _wrong_type(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Any:
    return F.mse_loss(input, target, reduction=reduction, weight=weight).tolist()


def _nan(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    return F.mse_loss(input, target, reduction=reduction, weight=weight) * float("nan")


def _hangs(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    time.sleep(10_000)
    raise AssertionError("unreachable")


def _segfaults(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    ctypes.string_at(0)  # reads address 0: SIGSEGV
    raise AssertionError("unreachable")


def _os_exit_0(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    os._exit(0)


def _sys_exit_0(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    sys.exit(0)


def _mutates_target(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    """Right value, but the target is used as scratch space afterwards."""
    out = F.mse_loss(input, target, reduction=reduction, weight=weight)
    target.mul_(0.5)
    return out


def _restrides_input(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    """Right value, but the input's metadata is changed in place (a transpose written back)."""
    out = F.mse_loss(input, target, reduction=reduction, weight=weight)
    if input.dim() >= 2 and input.shape[0] != input.shape[1]:
        input.data = input.data.t()
    elif input.dim() >= 1:
        input.data = input.data.unsqueeze(0)
    return out


def _nondeterministic(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    """A race: each call is off by a different random amount."""
    out = F.mse_loss(input, target, reduction=reduction, weight=weight)
    return out + torch.rand((), dtype=out.dtype) + 0.5


def _aliases_input(input: Tensor, target: Tensor, reduction: str = "mean", weight: Any = None) -> Tensor:
    """reduction='none' written into the input's own memory and returned (right values, shared storage)."""
    out = F.mse_loss(input, target, reduction=reduction, weight=weight)
    if reduction != "none" or input.requires_grad or out.shape != input.shape:
        return out
    return input.copy_(out)


raises = _with_mse(_raises)
wrong_type = _with_mse(_wrong_type)
returns_nan = _with_mse(_nan)
hangs = _with_mse(_hangs)
segfaults = _with_mse(_segfaults)
os_exit_0 = _with_mse(_os_exit_0)
sys_exit_0 = _with_mse(_sys_exit_0)
mutates_target = _with_mse(_mutates_target)
restrides_input = _with_mse(_restrides_input)
nondeterministic = _with_mse(_nondeterministic)
aliases_input = _with_mse(_aliases_input)

# name -> (status the forward check must give, a phrase its message must contain)
EXPECTED: dict[str, tuple[str, str]] = {
    "raises": ("fail", "backend raised RuntimeError: no kernel for this input"),
    "wrong_type": ("fail", "not a torch.Tensor"),
    "returns_nan": ("fail", "values differ"),
    "hangs": ("timeout", "did not return within"),
    "segfaults": ("crashed", "SIGSEGV"),
    "os_exit_0": ("crashed", "exited with status 0"),
    "sys_exit_0": ("crashed", "exited with status 0"),
    "mutates_target": ("fail", "backend modified its input `target`"),
    "restrides_input": ("fail", "backend modified its input `input`"),
    "nondeterministic": ("nondeterministic", "two calls on the same input disagree"),
    "aliases_input": ("fail", "output aliases input `input`"),
}
