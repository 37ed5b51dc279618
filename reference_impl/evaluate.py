"""Evaluate a spec on concrete inputs: bind the names, run the formula, apply a reduction."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from loss_conformance_reference.formula import ArrayContext
from loss_conformance_reference.model import Layout, LossSpec, Variant
from loss_conformance_reference.shapes import match_layout


@dataclass
class Evaluation:
    """Outputs per reduction (and their error magnitudes), as arrays of the context."""

    outputs: dict[str, Any]
    magnitude: dict[str, Any]
    kinks_hit: frozenset[str] = frozenset()  # the variant's kinks that some element sits exactly on


def pick_variant(spec: LossSpec, inputs: Mapping[str, Any]) -> Variant:
    """The first variant whose index inputs are integers, float inputs floats, and whose layouts
    fit the given shapes."""
    for variant in spec.variants:
        given = {k: v for k, v in inputs.items() if v is not None and k in variant.inputs}
        if any(("float" in str(v.dtype)) == variant.inputs[k].is_index for k, v in given.items()):
            continue
        try:
            match_layout(variant, {k: tuple(v.shape) for k, v in given.items()})
        except ValueError:
            continue
        return variant
    raise ValueError(f"the inputs fit no variant of {spec.id}")


def resolve_params(spec: LossSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Spec defaults overlaid with the given parameters."""
    return {name: params.get(name, p.default) for name, p in spec.params.items()}


def build_env(spec: LossSpec, variant: Variant, inputs: Mapping[str, Any], params: Mapping[str, Any],
              ctx: ArrayContext, layout: Layout | None = None) -> tuple[dict[str, Any], Layout]:
    """Names in scope for ``variant``'s formulas: dims, parameters, inputs (defaults filled in)."""
    present = {k: v for k, v in inputs.items() if v is not None}
    shapes = {k: tuple(v.shape) for k, v in present.items() if k in variant.inputs}
    matched, dims = match_layout(variant, shapes)
    layout = layout or matched
    env: dict[str, Any] = {**dims, **resolve_params(spec, params)}
    for name, value in present.items():
        env[name] = value
    for name, ispec in variant.inputs.items():
        if name not in env and ispec.default is not None:
            env[name] = ispec.default.evaluate(env, ctx)
    for name, axis in layout.unbatched.items():
        env[name] = ctx.xp.expand_dims(env[name], axis=axis)
    return env, layout


def evaluate(spec: LossSpec, variant: Variant, inputs: Mapping[str, Any], params: Mapping[str, Any],
             ctx: ArrayContext, reductions: tuple[str, ...] | None = None, with_magnitude: bool = False,
             layout: Layout | None = None, gradient: bool = False, precomputed: Mapping[str, Any] | None = None,
             skip: frozenset[str] = frozenset(), kink_slopes: Mapping[str, float] | None = None,
             find_kinks: bool = False) -> Evaluation:
    """The loss under each reduction in ``reductions`` (the one in ``params`` by default); with
    ``gradient``, the magnitudes are the gradient's (``gradient_magnitude``). The bindings in
    ``skip`` are not evaluated: those the rest reads are given in ``precomputed`` (evaluated in
    chunks, ``loss_conformance_reference.chunks``). ``kink_slopes`` (torch only) gives kinks, by name, the
    derivative autograd takes where an element sits on them; ``find_kinks`` fills ``kinks_hit``.
    Kinks are located only for one of these: ``at`` is a formula of its own, off the hot path."""
    env, layout = build_env(spec, variant, inputs, params, ctx, layout)
    env.update(precomputed or {})
    if reductions is None:
        reductions = (env.get("reduction", "none"),)
    hit = set()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, formula in variant.bindings:
            if name in skip:
                continue
            env[name] = formula.evaluate(env, ctx)
            for kink in variant.kinks if find_kinks or kink_slopes else ():
                if kink.of != name:
                    continue
                at = ctx.asarray(kink.at.evaluate(env, ctx))
                on = at == 0
                if not bool(ctx.xp.any(on)):
                    continue
                hit.add(kink.name)
                if kink_slopes is not None and kink.name in kink_slopes:
                    env[name] = _with_slope(env[name], at, on, kink_slopes[kink.name])
        outputs = {r: _finish(variant.reductions[r].evaluate(env, ctx), r, layout, ctx) for r in reductions}
        magnitude = {}
        if with_magnitude:
            table = variant.gradient_magnitude if gradient else variant.magnitude
            for r in reductions:
                formula = table.get(r)
                magnitude[r] = _finish(formula.evaluate(env, ctx), r, layout, ctx) if formula else 1.0
    return Evaluation(outputs, magnitude, frozenset(hit))


def _with_slope(value: Any, at: Any, on: Any, slope: float) -> Any:
    """``value`` unchanged, but where ``on`` its derivative is ``slope`` times that of ``at``: a kink's
    element of the subdifferential, chosen (``value`` depends on the inputs through ``at`` alone there).
    ``at - at.detach()`` is 0 with ``at``'s gradient, so the values stay exactly as they were."""
    import torch

    pinned = value.detach() + slope * (at - at.detach())
    return torch.where(on, pinned, value)


def _finish(value: Any, reduction: str, layout: Layout, ctx: ArrayContext) -> Any:
    value = ctx.asarray(value)
    if reduction == "none" and layout.unbatched and value.ndim > 0:
        value = ctx.xp.squeeze(value, axis=0)
    return value
