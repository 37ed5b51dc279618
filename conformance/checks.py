"""The checks. Each takes one generated case and raises ``CheckFailure`` when the backend does
not conform; none of them knows which loss it is looking at."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from conformance.backends import Backend
from conformance.case import Case
from conformance.compare import compare
from conformance.oracle import Oracle
from conformance.strategies import cotangent_strategy
from conformance.tensors import TORCH_DTYPES, to_numpy64, to_tensors
from conformance.timing import Timings
from reference_impl.examples import example_inputs, example_slack, expected_array
from reference_impl.formula import numpy_context
from reference_impl.model import LossSpec, Tolerance

_NP = numpy_context()


class CheckFailure(AssertionError):
    """The backend does not conform on this case."""


@dataclass
class CheckContext:
    spec: LossSpec
    backend: Backend
    oracle: Oracle
    dtype: str
    device: str
    reduction: str
    timings: Timings

    def call(self, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        with self.timings.in_backend(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a backend's per-call warnings would flood the report
            try:
                return self.backend.call(self.spec, inputs, params)
            except Exception as exc:  # noqa: BLE001 - any exception on valid input is non-conformance
                raise CheckFailure(f"backend raised {type(exc).__name__}: {exc}") from exc

    def wrt(self, case: Case) -> tuple[str, ...]:
        """Differentiable inputs present in ``case``."""
        variant = self.spec.variant(case.variant)
        return tuple(n for n in variant.differentiable if case.inputs.get(n) is not None)


def check_forward(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    actual = ctx.call(to_tensors(case.inputs, ctx.device), case.params)
    expected, magnitude = ctx.oracle.forward(case, (ctx.reduction,))
    problem = compare(actual, expected[ctx.reduction], ctx.dtype, ctx.device, ctx.spec.tolerance[ctx.dtype],
                      magnitude[ctx.reduction])
    if problem:
        raise CheckFailure(problem)


def check_backward(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    wrt = ctx.wrt(case)
    tensors = to_tensors(case.inputs, ctx.device, requires_grad=wrt)
    actual = ctx.call(tensors, case.params)
    expected, _ = ctx.oracle.forward(case, (ctx.reduction,))
    problem = compare(actual, expected[ctx.reduction], ctx.dtype, ctx.device, ctx.spec.tolerance[ctx.dtype])
    if problem and "values differ" not in problem:
        raise CheckFailure(problem)  # a wrong shape or dtype leaves nothing to differentiate against
    case.cotangent = data.draw(cotangent_strategy(tuple(actual.shape)), label="cotangent")
    if not wrt:
        return
    if not actual.requires_grad:
        raise CheckFailure(f"output carries no gradient to {', '.join(wrt)}")
    cot = torch.as_tensor(case.cotangent, dtype=actual.dtype, device=actual.device)
    with ctx.timings.in_backend():
        try:
            grads = torch.autograd.grad(actual, [tensors[n] for n in wrt], grad_outputs=cot, allow_unused=True)
        except Exception as exc:  # noqa: BLE001
            raise CheckFailure(f"backward raised {type(exc).__name__}: {exc}") from exc
    oracle = ctx.oracle.vjp(case, ctx.reduction, case.cotangent, wrt)
    tol = ctx.spec.grad_tolerance[ctx.dtype]
    for name, grad in zip(wrt, grads):
        got = grad if grad is not None else torch.zeros_like(tensors[name])
        problem = compare(got, oracle[name], ctx.dtype, ctx.device, tol, what=f"gradient of {name}")
        if problem:
            raise CheckFailure(problem)


def check_gradcheck(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    smooth = ctx.spec.gradient.smooth_when
    if smooth is not None:
        assume(bool(smooth.evaluate(ctx.oracle.env(case), _NP)))
    expected, _ = ctx.oracle.forward(case, (ctx.reduction,))
    assume(bool(np.all(np.isfinite(expected[ctx.reduction]))))  # finite differences need a finite loss
    wrt = ctx.wrt(case)
    if not wrt:
        return
    tensors = to_tensors(case.inputs, ctx.device, requires_grad=wrt)
    leaves = tuple(tensors[n] for n in wrt)

    def fn(*xs: torch.Tensor) -> Any:
        return ctx.call({**tensors, **dict(zip(wrt, xs))}, case.params)

    for name, runner in (("gradcheck", torch.autograd.gradcheck), ("gradgradcheck", torch.autograd.gradgradcheck)):
        if name == "gradgradcheck" and not ctx.spec.gradient.double_backward:
            break
        try:
            with ctx.timings.in_backend():
                runner(fn, leaves, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True)
        except CheckFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - GradcheckError or a backward that raised
            first = str(exc).strip().splitlines()
            raise CheckFailure(f"{name} failed: {' '.join(first[:6])}") from exc


def check_properties(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    variant = ctx.spec.variant(case.variant)
    tol = ctx.spec.tolerance[ctx.dtype]
    np_ctx = _NP.with_tolerance(tol.rtol, tol.atol)
    original: dict[str, np.ndarray] = {}

    def outputs(inputs: Mapping[str, np.ndarray | None], reductions: set[str],
                cache: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for reduction in reductions - set(cache):
            value = ctx.call(to_tensors(inputs, ctx.device), {**case.params, "reduction": reduction})
            if not isinstance(value, torch.Tensor):
                raise CheckFailure(f"output is a {type(value).__name__}, not a torch.Tensor")
            cache[reduction] = to_numpy64(value)
        return {r: cache[r] for r in reductions}

    base = ctx.oracle.env(case)
    for prop in ctx.spec.properties:
        if prop.variants and variant.name not in prop.variants:
            continue
        names = prop.holds.names | (prop.when.names if prop.when else frozenset())
        wanted = {p: {r for r in ctx.spec.reductions if f"{p}_{r}" in names} for p in ("out", "orig")}
        inputs, env = case.inputs, base
        if prop.substitute:
            inputs = dict(case.inputs)
            for name, formula in prop.substitute.items():
                value = np.asarray(formula.evaluate(base, _NP))
                inputs[name] = value.astype(case.inputs[name].dtype) if case.inputs.get(name) is not None else value
            env = ctx.oracle.env(Case(**{**case.__dict__, "inputs": inputs}))
            out = outputs(inputs, wanted["out"], {})
            orig = outputs(case.inputs, wanted["orig"], original)
        else:
            orig = outputs(case.inputs, wanted["out"] | wanted["orig"], original)
            out = orig
        env = {**env, **{f"orig_{r}": v for r, v in orig.items()}, **{f"out_{r}": v for r, v in out.items()}}
        with np.errstate(all="ignore"):
            if prop.when is not None and not bool(prop.when.evaluate(env, np_ctx)):
                continue
            if not bool(prop.holds.evaluate(env, np_ctx)):
                shown = {k: _shown(v) for k, v in env.items() if k in names}
                raise CheckFailure(f"property '{prop.name}' does not hold: {prop.holds.text} with {shown}")


def _shown(value: Any) -> Any:
    """A value for a failure message: float arrays rounded, anything else as it is."""
    array = np.asarray(value)
    return np.round(array, 6).tolist() if array.dtype.kind == "f" else array.tolist()


CHECKS: dict[str, Callable[[CheckContext, Case, st.DataObject], None]] = {
    "forward": check_forward,
    "backward": check_backward,
    "gradcheck": check_gradcheck,
    "properties": check_properties,
}


def example_failures(ctx: CheckContext) -> list[str]:
    """The spec's worked examples on the backend, on ``ctx.device``; messages of those that fail."""
    failures = []
    accepted = ctx.backend.accepts(ctx.spec)
    for example in ctx.spec.examples:
        if not set(example.inputs) <= accepted or not set(example.params) <= accepted:
            continue
        dtype = TORCH_DTYPES[example.dtype]
        tensors = {k: torch.as_tensor(np.asarray(v), device=ctx.device) for k, v in
                   example_inputs(ctx.spec, example).items()}
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        try:
            actual = ctx.call(tensors, example.params)
        except CheckFailure as exc:
            failures.append(f"{example.name}: {exc}")
            continue
        tol = ctx.spec.tolerance.get(example.dtype, ctx.spec.tolerance["float64"])
        if example.decimals is not None:
            tol = Tolerance(0.0, example_slack(ctx.spec, example))
        problem = compare(actual, expected_array(example), example.dtype, ctx.device, tol)
        if problem:
            failures.append(f"{example.name}: {problem}")
    return failures
