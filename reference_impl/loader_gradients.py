"""The loader's part for gradients at kinks: a spec's declared kinks (``gradient: kinks:``) and the
expected gradients of its worked examples (``examples: - gradients:``)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from loss_conformance_reference.model import Kink, Variant

if TYPE_CHECKING:  # the builder imports this module
    from loss_conformance_reference.loader import _Builder


def variant_kinks(builder: "_Builder", variant: str, scopes: dict[str, list[str]]) -> tuple[Kink, ...]:
    """The declared kinks that apply to ``variant``, their ``at`` compiled in the scope of the binding
    they name (``scopes``: each binding of the variant -> the names defined before it)."""
    out = []
    for i, k in enumerate(builder.data.get("gradient", {}).get("kinks", [])):
        where = ("gradient", "kinks", i)
        if "variants" in k and variant not in k["variants"]:
            continue
        if k["of"] not in scopes:
            if "variants" in k:
                raise builder.error(where + ("of",), f"variant '{variant}' has no binding '{k['of']}'")
            continue
        low, high = (float(x) for x in k["derivative"])
        if not (math.isfinite(low) and math.isfinite(high)):
            raise builder.error(where + ("derivative",), "the derivatives must be finite numbers")
        if low > high:
            raise builder.error(where + ("derivative",), f"low {low} is above high {high}")
        # ``at`` is evaluated where ``of`` is bound: it sees the names bound before it, not ``of`` itself.
        at = builder.formula(k["at"], scopes[k["of"]], where + ("at",))
        out.append(Kink(k["name"], k["of"], at, low, high))
    return tuple(out)


def check_kinks(builder: "_Builder", variants: tuple[Variant, ...]) -> None:
    """Each kink has a name of its own, names variants that exist, and applies to one at least."""
    names = {v.name for v in variants}
    seen: set[str] = set()
    for i, k in enumerate(builder.data.get("gradient", {}).get("kinks", [])):
        where = ("gradient", "kinks", i)
        if k["name"] in seen:
            raise builder.error(where + ("name",), f"another kink is named '{k['name']}'")
        seen.add(k["name"])
        for j, name in enumerate(k.get("variants", [])):
            if name not in names:
                raise builder.error(where + ("variants", j), f"no variant '{name}'")
        if not any(kink.name == k["name"] for v in variants for kink in v.kinks):
            raise builder.error(where + ("of",), f"'{k['of']}' is not a binding of any variant's formula")


def example_gradients(builder: "_Builder", e: dict[str, Any], where: tuple[Any, ...],
                      variant: Variant) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A worked example's expected gradients: (low, high) per input, of the input's shape, low <= high."""
    out = {}
    for name, given in e.get("gradients", {}).items():
        at = where + ("gradients", name)
        spec = variant.inputs.get(name)
        if spec is None or not spec.differentiable:
            raise builder.error(at, f"'{name}' is not a differentiable input of variant '{variant.name}'")
        if name not in e["inputs"]:
            raise builder.error(at, f"'{name}' is not among the example's inputs")
        low, high = (given["low"], given["high"]) if isinstance(given, dict) else (given, given)
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        shape = np.shape(np.asarray(e["inputs"][name], dtype=np.float64))
        for part, value in (("low", low), ("high", high)):
            if value.shape != shape:
                raise builder.error(at, f"{part if isinstance(given, dict) else 'gradient'} of shape "
                                        f"{list(value.shape)}, the input's is {list(shape)}")
        with np.errstate(invalid="ignore"):
            if np.any(low > high):
                raise builder.error(at, "low is above high at an element")
        out[name] = (low, high)
    return out
