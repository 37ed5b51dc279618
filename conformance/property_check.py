"""The properties check: the spec's properties (relations between outputs, some on substituted
inputs) hold for the backend's outputs on every drawn case."""
from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from loss_conformance.case import Case
from loss_conformance.checks import CheckContext, CheckFailure
from loss_conformance.execution import Output, Request
from loss_conformance.precision import PRECISIONS, quantize
from loss_conformance_reference.formula import numpy_context

_NP = numpy_context()


def check_properties(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    variant = ctx.spec.variant(case.variant)
    tol = ctx.spec.tolerance[ctx.dtype]
    # atol scales with the spec's error magnitude, as in the forward check: a property that
    # substitutes inputs (1 - target) rounds them, and the loss moves by that rounding times its slope.
    _, magnitude = ctx.oracle.forward(case, ctx.spec.reductions)
    scale = max((float(np.max(np.abs(m))) for m in magnitude.values() if np.size(m)), default=1.0)
    np_ctx = _NP.with_tolerance(tol.rtol, tol.atol * max(scale, 1.0), overflow=PRECISIONS[ctx.dtype].overflow)
    original: dict[str, np.ndarray] = {}
    calls: list[tuple[Request, Output | None]] = []  # what a failing property rests on

    def outputs(called: Case, reductions: set[str], cache: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for reduction in reductions - set(cache):
            request = ctx.request(called.inputs, {**case.params, "reduction": reduction}, layouts=called.layouts)
            try:
                output = ctx.run(request).output
                if output is None or output.values is None:
                    raise CheckFailure(f"output is a {output.type_name if output else 'nothing'}, not a torch.Tensor")
            except CheckFailure as exc:  # the call that failed was made on ``called``'s inputs
                raise CheckFailure(str(exc), called_on=(called,)) from None
            calls.append((request, output))
            cache[reduction] = output.values
        return {r: cache[r] for r in reductions}

    base = ctx.oracle.env(case)
    accepted = ctx.accepted()
    outputs_named = {f"{p}_{r}" for p in ("out", "orig") for r in ctx.spec.reductions}
    for prop in ctx.spec.properties:
        if prop.variants and variant.name not in prop.variants:
            continue
        if not set(prop.substitute) <= accepted:
            continue  # the property needs an option this backend does not take
        names = prop.holds.names | (prop.when.names if prop.when else frozenset())
        if any(n.startswith(("out_", "orig_")) and n not in outputs_named for n in names):
            continue  # it needs a reduction this backend does not support
        wanted = {p: {r for r in ctx.spec.reductions if f"{p}_{r}" in names} for p in ("out", "orig")}
        env, called_on, given = base, (case,), ""
        if prop.substitute:
            inputs = dict(case.inputs)
            for name, formula in prop.substitute.items():
                value = np.asarray(formula.evaluate(base, _NP))
                drawn = case.inputs.get(name)
                if drawn is not None and not np.issubdtype(drawn.dtype, np.floating):
                    inputs[name] = value.astype(drawn.dtype)  # indices stay indices (a permuted target)
                else:
                    inputs[name] = quantize(value, ctx.dtype) if drawn is not None else value
            # Substituted inputs hold other values: they are passed contiguous, the others as drawn.
            layouts = {k: v for k, v in case.layouts.items() if inputs.get(k) is case.inputs.get(k)}
            substituted = Case(**{**case.__dict__, "inputs": inputs, "layouts": layouts})
            env = ctx.oracle.env(substituted)
            out = outputs(substituted, wanted["out"], {})
            orig = outputs(case, wanted["orig"], original)
            called_on = (case, substituted) if wanted["orig"] else (substituted,)
            given = "; with " + ", ".join(f"{n} = {f.text} = {_shown(inputs[n])}" for n, f in prop.substitute.items())
        else:
            orig = outputs(case, wanted["out"] | wanted["orig"], original)
            out = orig
        env = {**env, **{f"orig_{r}": v for r, v in orig.items()}, **{f"out_{r}": v for r, v in out.items()}}
        with np.errstate(all="ignore"):
            if prop.when is not None and not bool(prop.when.evaluate(env, np_ctx)):
                continue
            if not bool(prop.holds.evaluate(env, np_ctx)):
                shown = ", ".join(f"{k} = {_shown(v)}" for k, v in env.items() if k in names)
                ctx.confirm(f"property '{prop.name}' does not hold: {prop.holds.text}, where {shown}{given}", calls,
                            called_on=called_on)


def _shown(value: Any, limit: int = 16) -> str:
    """A value for a failure message, exactly (Python's repr of each float round-trips): an
    equality that fails by one ulp must not read as two equal numbers; ``limit`` values at most."""
    array = np.asarray(value)
    if array.size <= limit:
        return repr(array.tolist())
    head = ", ".join(map(repr, array.reshape(-1)[:limit].tolist()))
    return f"[{head}, ...] ({array.size} values, shape {array.shape})"
