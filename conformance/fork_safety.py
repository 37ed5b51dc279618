"""Whether a child forked now can still differentiate.

At the first backward pass of a process that sees an accelerator (a CUDA build on a machine with a
GPU), torch's autograd engine starts a thread per device, even for CPU tensors, and from then on
marks every child forked from that process: the child's first backward pass raises "Unable to
handle autograd's threading in combination with fork-based multiprocessing". The harness's oracle
differentiates in the parent, so a worker forked after it (a crashed worker's replacement, the
worker of a ``--jobs`` process that has run checks) could not, and every gradient it was asked for
would read as the backend's error. torch's Python API does not say whether the engine started: a
forked child that tries a backward pass does.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys

import torch

_known_bad = False  # for good once found: the engine's threads are never stopped


def accelerator_visible() -> bool:
    """Whether torch sees a device its autograd engine starts threads for (CUDA, XPU, ...)."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


def autograd_survives_fork() -> bool:
    """Whether a child forked from this process now can run a backward pass. Without an accelerator
    it always can; with one, a child forked to try says (a few milliseconds)."""
    global _known_bad
    if _known_bad:
        return False
    if sys.platform != "linux" or not accelerator_visible():
        return True
    child = mp.get_context("fork").Process(target=_differentiate_or_fail, daemon=True)
    child.start()
    child.join(60)
    if child.exitcode != 0:
        if child.is_alive():
            child.kill()
        _known_bad = True
    return not _known_bad


def _differentiate_or_fail() -> None:
    try:
        x = torch.ones(1, dtype=torch.float64, requires_grad=True)
        torch.autograd.grad(x.sum(), x)
    except RuntimeError:
        os._exit(1)
    os._exit(0)
