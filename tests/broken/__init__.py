"""A catalogue of deliberately broken backends, one bug class each.

Each is ``torch.nn.functional`` with exactly one loss replaced, so the suite must flag that loss
and no other. The bugs are the ones real kernels ship: they pass a casual test on random inputs
and are wrong on the inputs a conformance suite goes looking for. Every module in this package
contributes its ``CATALOGUE``.
"""
from __future__ import annotations

import importlib
import pkgutil
import types
from dataclasses import dataclass
from typing import Any, Callable

import torch.nn.functional as F


@dataclass(frozen=True)
class Broken:
    name: str
    bug_class: str
    loss: str
    fn: Callable[..., Any]
    # The dtypes the meta-test runs it in: those its bug shows in (a half-precision-only bug needs a
    # half dtype), each one the loss's spec gives a tolerance for.
    dtypes: tuple[str, ...] = ("float32", "float64")
    # The checks the meta-test runs: every generated one of a default run, unless the bug lives
    # where only an opt-in check goes (the large check's sizes).
    checks: tuple[str, ...] | None = None

    def backend_object(self) -> types.SimpleNamespace:
        names = {n: getattr(F, n) for n in dir(F) if not n.startswith("_")}
        return types.SimpleNamespace(**{**names, self.loss: self.fn})


def catalogue() -> tuple[Broken, ...]:
    """Every broken backend of every module in this package, in module order."""
    found: list[Broken] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "CATALOGUE", ()))
    return tuple(found)
