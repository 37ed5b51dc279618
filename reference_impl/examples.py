"""The spec's worked examples: their inputs as arrays, and how far printed inputs may move them."""
from __future__ import annotations

from typing import Any

import numpy as np

from loss_conformance_reference.evaluate import evaluate
from loss_conformance_reference.formula import ArrayContext, numpy_context, torch_context
from loss_conformance_reference.model import Example, LossSpec


def example_inputs(spec: LossSpec, example: Example, ctx: ArrayContext | None = None) -> dict[str, Any]:
    """The example's inputs in float64 (indices as int64), after its ``prepare`` formulas."""
    ctx = ctx or numpy_context()
    variant = spec.variant(example.variant)
    arrays: dict[str, Any] = {}
    for name, value in example.inputs.items():
        dtype = ctx.index_dtype if variant.inputs[name].is_index else ctx.float_dtype
        arrays[name] = ctx.xp.asarray(value, dtype=dtype, device=ctx.device)
    return prepared(example, arrays, ctx)


def prepared(example: Example, arrays: dict[str, Any], ctx: ArrayContext) -> dict[str, Any]:
    out = dict(arrays)
    for name, formula in example.prepare.items():
        out[name] = formula.evaluate(arrays, ctx)
    return out


def example_slack(spec: LossSpec, example: Example) -> float:
    """How far the example's value may sit from the printed one.

    Half a unit in the last printed decimal of the result, plus, when the inputs were printed
    rounded to ``input_decimals``, the first-order effect of that rounding: half a unit times
    the sum of |d loss / d input| over every float input (torch autograd of the reference).
    """
    slack = 0.5 * 10.0 ** -example.decimals if example.decimals is not None else 0.0
    if example.input_decimals is None:
        return slack
    import torch

    ctx = torch_context("cpu")
    variant = spec.variant(example.variant)
    raw = {}
    for name, value in example.inputs.items():
        is_index = variant.inputs[name].is_index
        raw[name] = torch.tensor(value, dtype=torch.int64 if is_index else torch.float64,
                                 requires_grad=not is_index)
    out = evaluate(spec, variant, prepared(example, raw, ctx), example.params, ctx).outputs
    value = next(iter(out.values())).sum()
    leaves = [t for t in raw.values() if t.requires_grad]
    grads = torch.autograd.grad(value, leaves, allow_unused=True)
    total = sum(float(g.abs().sum()) for g in grads if g is not None)
    return slack + 0.5 * 10.0 ** -example.input_decimals * total * 1.01


def expected_array(example: Example) -> np.ndarray:
    return np.asarray(example.expected, dtype=np.float64)
