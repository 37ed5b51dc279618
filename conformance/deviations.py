"""Known deviations: where a named backend is known to differ from the spec, and when."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from reference_impl.formula import numpy_context
from reference_impl.model import Deviation, LossSpec

_CTX = numpy_context()


def applicable(spec: LossSpec, backend: str, check: str) -> tuple[Deviation, ...]:
    return tuple(d for d in spec.deviations if (backend in d.backends or "*" in d.backends) and check in d.checks)


def matching(deviations: tuple[Deviation, ...], env: Callable[[], dict[str, Any]]) -> Deviation | None:
    """The first deviation whose ``when`` holds for this example (no ``when``: always)."""
    scope: dict[str, Any] | None = None
    for dev in deviations:
        if dev.when is None:
            return dev
        if scope is None:
            scope = env()
        with np.errstate(all="ignore"):
            if bool(dev.when.evaluate(scope, _CTX)):
                return dev
    return None
