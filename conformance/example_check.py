"""The examples check: the spec's worked examples on the backend, their values and, where an
example states them, their gradients (an interval element by element at a kink)."""
from __future__ import annotations

import numpy as np

from loss_conformance.case import Case
from loss_conformance.checks import CheckContext, CheckFailure, zeros_like
from loss_conformance.compare import compare
from loss_conformance.deviations import applicable, matching, reads_bindings
from loss_conformance.execution import Reply, Request
from loss_conformance.workers import WorkerLost
from loss_conformance_reference.examples import example_inputs, example_slack, expected_array
from loss_conformance_reference.model import Deviation, Example, Tolerance


def example_failures(ctx: CheckContext, excused: list[tuple[str, Deviation]] | None = None) -> list[str]:
    """The spec's worked examples on the backend, on ``ctx.device``; messages of those that fail.
    An example that fails where a known deviation of the backend holds is not a failure: it goes to
    ``excused`` (its name and the deviation), as a search's counterexample would."""
    failures = []
    accepted = ctx.accepted()
    for example in ctx.spec.examples:
        if not set(example.inputs) <= accepted or not set(example.params) <= accepted:
            continue
        inputs = {k: np.asarray(v) for k, v in example_inputs(ctx.spec, example).items()}
        dtypes = {k: example.dtype for k, v in inputs.items() if np.issubdtype(v.dtype, np.floating)}
        expected = expected_array(example)
        # Gradients of the output summed, where the example states them and the backend has autograd.
        wrt = tuple(example.gradients) if ctx.backend.differentiable else ()
        request = ctx.request(inputs, example.params, dtypes=dtypes, wrt=wrt,
                              cotangent=np.ones(expected.shape) if wrt else None)
        tol = ctx.spec.tolerance.get(example.dtype, ctx.spec.tolerance["float64"])
        if example.decimals is not None:
            tol = Tolerance(0.0, example_slack(ctx.spec, example))
        try:
            reply = ctx.run(request)
            problem = compare(reply.output, expected, example.dtype, ctx.device, tol)
            if problem:
                ctx.fail(problem, request, reply)
            if wrt:
                _check_gradients(ctx, example, request, reply)
        except CheckFailure as exc:
            deviation = _deviation(ctx, example, inputs)
            if deviation is not None and excused is not None:
                excused.append((example.name, deviation))
            else:
                failures.append(f"{example.name}: {exc}")
        except WorkerLost as lost:
            raise WorkerLost(lost.status, f"worked example '{example.name}': {lost.message}") from None
    return failures


def _deviation(ctx: CheckContext, example: Example, inputs: dict[str, np.ndarray]) -> Deviation | None:
    """The backend's known deviation for the examples check whose ``when`` holds on ``example``."""
    deviations = applicable(ctx.spec, ctx.backend.name, "examples", example.dtype)
    if not deviations:
        return None
    variant = ctx.spec.variant(example.variant)
    case = Case(ctx.spec.id, example.variant, "", example.dtype, dict(inputs), dict(example.params))

    bound = reads_bindings(deviations, (variant,))

    def scope() -> dict:
        env = ctx.oracle.scope(variant, inputs, example.params, bindings=bound)
        return {**env, **case.input_scope(variant.inputs), "dtype": example.dtype, "device": ctx.device}

    return matching(deviations, scope)


def _check_gradients(ctx: CheckContext, example: Example, request: Request, reply: Reply) -> None:
    """Each stated gradient within [low, high] element by element, within the gradient tolerance."""
    if reply.grad_raised is not None:
        raise CheckFailure(f"backward raised {ctx.unless_no_kernel(reply.grad_raised)}")
    if reply.grads is None:
        raise CheckFailure(f"output carries no gradient to {', '.join(example.gradients)}")
    tol = ctx.spec.grad_tolerance.get(example.dtype, ctx.spec.grad_tolerance["float64"])
    for name, (low, high) in example.gradients.items():
        got = reply.grads.get(name) or zeros_like(request.inputs[name], ctx)
        want = low
        if got.values is not None and np.shape(got.values) == low.shape:
            with np.errstate(invalid="ignore"):
                want = np.where(np.isnan(got.values), low, np.clip(got.values, low, high))
        interval = "" if np.array_equal(low, high, equal_nan=True) else f" (valid: {low.tolist()} to {high.tolist()})"
        problem = compare(got, want, example.dtype, ctx.device, tol, what=f"gradient of {name}{interval}")
        if problem:
            ctx.fail(problem, request, reply)
