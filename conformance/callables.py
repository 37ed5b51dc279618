"""Named callables: parameters whose value is a function (``distance_function=...``).

A spec cannot hold code, so a callable parameter is declared with the domain
``{callable: [name, ...]}``. The strategies draw one of the names; the reference formula sees
the name, a string, and selects its maths with ``a if param == "name" else b``; a backend
receives the torch callable registered here under that name. Each entry's docstring states
exactly what it computes, so that a spec formula can mirror it.

Add a callable by adding an entry to ``CALLABLES``: it is general, not tied to one loss.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from loss_conformance_reference.model import LossSpec


def pairwise_distance(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """``torch.nn.functional.pairwise_distance`` with its defaults: ||x1 - x2 + 1e-6||_2 over the last axis."""
    return F.pairwise_distance(x1, x2)


def cosine_distance(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """1 - cosine_similarity over the last axis: 1 - sum(x1 / max(|x1|, 1e-8) * x2 / max(|x2|, 1e-8))."""
    return 1.0 - F.cosine_similarity(x1, x2, dim=-1)


def l1_distance(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """``pairwise_distance`` with p = 1: ||x1 - x2 + 1e-6||_1 over the last axis."""
    return F.pairwise_distance(x1, x2, p=1.0)


CALLABLES: dict[str, Callable[..., Any]] = {
    "pairwise_distance": pairwise_distance,
    "cosine_distance": cosine_distance,
    "l1_distance": l1_distance,
}


class UnknownCallable(KeyError):
    """A spec names a callable that the registry does not hold."""


def lookup(name: str) -> Callable[..., Any]:
    try:
        return CALLABLES[name]
    except KeyError:
        raise UnknownCallable(f"no callable named '{name}' (known: {', '.join(sorted(CALLABLES))})") from None


def callable_params(spec: LossSpec) -> frozenset[str]:
    """The parameters of ``spec`` whose values are names of callables."""
    return frozenset(name for name, p in spec.params.items() if any(d.kind == "callable" for d in p.domain))


def resolve_callables(spec: LossSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every callable parameter's name replaced by its registered callable."""
    names = callable_params(spec)
    return {k: (lookup(v) if k in names and isinstance(v, str) else v) for k, v in params.items()}


def unknown_names(spec: LossSpec) -> list[str]:
    """Names in the spec's callable domains (and defaults) that the registry lacks."""
    missing = []
    for name, p in spec.params.items():
        for d in p.domain:
            if d.kind == "callable":
                missing += [c for c in d.choices if c not in CALLABLES]
                if isinstance(p.default, str) and p.default not in CALLABLES:
                    missing.append(p.default)
    return sorted(set(missing))
