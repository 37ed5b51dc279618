"""What every forked process would load for itself, loaded once in the process that forks them.

torch loads much of itself on first use: autograd's symbolic shapes (sympy, about 480 modules) at
the first backward pass, ``torch._dynamo`` (about 300) at the first ``torch.func.grad``, and forward-mode
AD sets itself up at the first ``torch.func.jvp``: 1 to 2 s on a 2-core machine. A worker forked
before that pays it again in its own process, and so does every worker after it. Done in the parent,
it is paid once, and every process forked afterwards inherits it. It pays where derivatives are
checked (the parent's oracle differentiates too, and a run has a worker per backend, or per job under
``--jobs``), and where one process forks many workers (the replacements of a worker that keeps crashing,
``loss_conformance.workers``; a test session's hundreds of runners, ``tests/conftest.py``). A run whose
parent does not differentiate gains little or nothing, and a run of values only loses.

Only torch's own functions run here, on CPU tensors of two elements: never the backend under test
(whose calls belong in a worker) and never CUDA (a parent that initialised CUDA cannot fork). Where
an accelerator is visible nothing runs: a backward pass in the parent would leave its later forks
unable to differentiate (``loss_conformance.fork_safety``).
"""
from __future__ import annotations

import warnings
from typing import Iterable

import torch
import torch.autograd.forward_ad as fwAD

from loss_conformance.fork_safety import accelerator_visible

_warmed = False
# The checks whose oracle differentiates in the parent, as their requests do in the worker: warmed
# first, the parent loads autograd's parts once for both. (``vmap`` and ``examples`` differentiate in
# the worker only, ``forward`` and ``properties`` nowhere.)
DIFFERENTIATING_CHECKS = frozenset({"backward", "gradcheck", "forward_ad", "jvp_of_grad", "large"})


def differentiates(checks: Iterable[str]) -> bool:
    """Whether a run of ``checks`` (their names) differentiates in the parent: then it is worth warming."""
    return not DIFFERENTIATING_CHECKS.isdisjoint(checks)


def warm_before_fork() -> None:
    """Load and set up, in this process, the parts of torch that the checks' requests use: backward
    and double backward, ``torch.func`` (``jvp``, ``grad``, ``vmap``) and dual tensors. Idempotent."""
    global _warmed
    if _warmed or accelerator_visible():
        # With an accelerator visible, a backward pass here would leave every child forked
        # afterwards unable to differentiate (``loss_conformance.fork_safety``): the workers load
        # what they use themselves.
        return
    _warmed = True
    with warnings.catch_warnings():
        # torch's own modules, loaded here, warn of torch's own deprecations (torch.jit.script)
        warnings.simplefilter("ignore", DeprecationWarning)
        _use_derivatives()


def _use_derivatives() -> None:
    x = torch.ones(2, dtype=torch.float64)

    def f(a: torch.Tensor) -> torch.Tensor:
        return (a * a).sum()

    leaf = x.clone().requires_grad_(True)
    torch.autograd.grad(f(leaf), leaf, create_graph=True)
    torch.func.jvp(torch.func.grad(f), (x,), (x,))
    torch.func.vmap(f)(torch.ones(2, 2, dtype=torch.float64))
    with fwAD.dual_level():
        fwAD.unpack_dual(f(fwAD.make_dual(x, x)))
