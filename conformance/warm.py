"""What every forked process would load for itself, loaded once in the process that forks them.

torch loads much of itself on first use: autograd's symbolic shapes (sympy, about 480 modules) at
the first backward pass, ``torch._dynamo`` (about 300) at the first ``torch.func.grad``, and forward-mode
AD sets itself up at the first ``torch.func.jvp``: 1 to 2 s on a 2-core machine. A worker forked
before that pays it again in its own process, and so does every worker after it. Done in the parent,
it is paid once, and every process forked afterwards inherits it; but the parent never needs
``torch.func`` itself, so this only pays where one process forks many workers: the replacements of a
worker that keeps crashing (``loss_conformance.workers``) and a test session's hundreds of runners
(``tests/conftest.py``). A run that forks one worker, or checks no derivatives, is better off without.

Only torch's own functions run here, on CPU tensors of two elements: never the backend under test
(whose calls belong in a worker) and never CUDA (a parent that initialised CUDA cannot fork).
"""
from __future__ import annotations

import warnings

import torch
import torch.autograd.forward_ad as fwAD

_warmed = False


def warm_before_fork() -> None:
    """Load and set up, in this process, the parts of torch that the checks' requests use: backward
    and double backward, ``torch.func`` (``jvp``, ``grad``, ``vmap``) and dual tensors. Idempotent."""
    global _warmed
    if _warmed:
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
