"""What a run checks, in report order: which checks run in which dtypes, per loss, reduction and device."""
from __future__ import annotations

from typing import Iterable

from loss_conformance.profiles import Profile
from loss_conformance.records import CheckId
from loss_conformance_reference.model import LossSpec

CHECK_NAMES = ("examples", "forward", "backward", "gradcheck", "properties", "forward_ad", "vmap", "jvp_of_grad",
               "large")
# The large check (inputs of 2^24 elements and more) takes seconds per example: thorough runs it,
# the other profiles when asked with --check.
DEFAULT_CHECKS = tuple(c for c in CHECK_NAMES if c != "large")
ALL = "*"
WIDTH = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}
GRADIENT_CHECKS = ("backward", "gradcheck", "forward_ad", "jvp_of_grad")


def default_checks(profile: Profile) -> tuple[str, ...]:
    return CHECK_NAMES if profile.large else DEFAULT_CHECKS


def large_examples(max_examples: int) -> int:
    """Examples per large check: one per 300 of the others' (one under thorough), at least one. An
    example takes seconds (inputs of 2^24 elements, compared in float64); nightly thorough runs draw
    a fresh seed each, so the sizes and values vary from night to night."""
    return max(1, max_examples // 300)


def plan(specs: Iterable[LossSpec], dtypes: Iterable[str], devices: Iterable[str],
         checks: Iterable[str] = DEFAULT_CHECKS) -> list[CheckId]:
    """Every check to run, in report order. Gradcheck runs in float64 only; jvp_of_grad only where the
    spec promises double backward; forward_ad and vmap in the widest dtype asked for; large in the
    narrowest."""
    wanted = set(checks)
    dtypes = list(dtypes)
    # A transform's rules (a forward-mode derivative, a batching rule) are written once for every
    # dtype: they run in the widest dtype asked for, with its tightest tolerance, at half the cost
    # of running them in each.
    widest = max(dtypes, key=WIDTH.__getitem__) if dtypes else None
    # Sizes matter where accumulation is narrowest (a float32 sum of 2^24 ones stops at 2^24 when
    # it is not blocked), and an input of 2^24 elements costs seconds: one dtype is enough.
    narrowest = min(dtypes, key=WIDTH.__getitem__) if dtypes else None
    out = []
    for spec in specs:
        for device in devices:
            if "examples" in wanted:
                out.append(CheckId(spec.id, "examples", ALL, ALL, device))
            for dtype in dtypes:
                for reduction in spec.reductions:
                    for check in ("forward", "backward", "forward_ad", "vmap"):
                        if check in wanted and (check in ("forward", "backward") or dtype == widest):
                            out.append(CheckId(spec.id, check, reduction, dtype, device))
                    # Second derivatives in float64 only: the spec bounds the rounding of values and
                    # gradients, and a float32 Hessian's cancellation exceeds both.
                    if "jvp_of_grad" in wanted and spec.gradient.double_backward and dtype == "float64":
                        out.append(CheckId(spec.id, "jvp_of_grad", reduction, dtype, device))
                    if "large" in wanted and dtype == narrowest:
                        out.append(CheckId(spec.id, "large", reduction, dtype, device))
                if "properties" in wanted and spec.properties:
                    out.append(CheckId(spec.id, "properties", ALL, dtype, device))
            if "gradcheck" in wanted and "float64" in dtypes:
                out.extend(CheckId(spec.id, "gradcheck", r, "float64", device) for r in spec.reductions)
    return out
