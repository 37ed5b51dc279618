"""The examples check: the spec's worked examples on the backend, their values and, where an
example states them, their gradients (an interval element by element at a kink)."""
from __future__ import annotations

import numpy as np

from loss_conformance.case import Case
from loss_conformance.checks import (CheckContext, CheckFailure, DeclaredTolerance, NondeterminismFound, held_to,
                                     zeros_like)
from loss_conformance.causes import failure_kind_of
from loss_conformance.compare import compare
from loss_conformance.deviations import applicable, declared_tolerance, explaining, matching, reads_bindings
from loss_conformance.execution import Reply, Request
from loss_conformance.records import CheckId, Record
from loss_conformance.workers import WorkerLost
from loss_conformance_reference.examples import example_inputs, example_slack, expected_array
from loss_conformance_reference.model import Deviation, Example, Tolerance


def examples_record(ctx: CheckContext, cid: CheckId) -> Record:
    """The record of the examples check: ``pass``, ``fail`` naming each failing example, or
    ``known_deviation`` where known deviations excuse every failing one."""
    backend, count = ctx.backend.name, len(ctx.spec.examples)
    excused: list[tuple[str, Deviation]] = []
    try:
        failures = example_failures(ctx, excused)
    except NondeterminismFound as found:
        return Record.for_check(cid, backend, "nondeterministic", examples=count, message=found.message,
                                detail=found.detail())
    if excused and not failures:
        first = excused[0][1]
        return Record.for_check(cid, backend, "known_deviation", examples=count,
                                message="\n".join(f"{name}: {dev.reason}"
                                                  f"{held_to(dev.tolerance, backend) if dev.tolerance else ''}"
                                                  for name, dev in excused),
                                deviation={"reason": first.reason, "reference": first.reference,
                                           "observed": len(excused), "examples": [name for name, _ in excused],
                                           **({"tolerance": vars(first.tolerance)} if first.tolerance else {})})
    return Record.for_check(cid, backend, "fail" if failures else "pass", examples=count, message="\n".join(failures))


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
        deviations = applicable(ctx.spec, ctx.backend.name, "examples", example.dtype)
        declared = declared_tolerance(deviations)
        try:
            reply = ctx.run(request)
            problem = ctx.compared(tol, lambda t: compare(reply.output, expected, example.dtype, ctx.device, t),
                                   declared)
            if problem:
                ctx.fail(problem, request, reply)
            if wrt:
                _check_gradients(ctx, example, request, reply, declared)
        except CheckFailure as exc:
            deviation = _deviation(ctx, example, inputs, explaining(deviations, isinstance(exc, DeclaredTolerance),
                                                                        failure_kind_of(exc)))
            if deviation is not None and excused is not None:
                excused.append((example.name, deviation))
            else:
                failures.append(f"{example.name}: {exc}")
        except WorkerLost as lost:
            raise WorkerLost(lost.status, f"worked example '{example.name}': {lost.message}") from None
    return failures


def _deviation(ctx: CheckContext, example: Example, inputs: dict[str, np.ndarray],
               deviations: tuple[Deviation, ...]) -> Deviation | None:
    """The first of the backend's known ``deviations`` for the examples check whose ``when`` holds
    on ``example``."""
    if not deviations:
        return None
    variant = ctx.spec.variant(example.variant)
    case = Case(ctx.spec.id, example.variant, "", example.dtype, dict(inputs), dict(example.params))

    bound = reads_bindings(deviations, (variant,))

    def scope() -> dict:
        env = ctx.oracle.scope(variant, inputs, example.params, bindings=bound)
        return {**env, **case.input_scope(variant.inputs), "dtype": example.dtype, "device": ctx.device}

    return matching(deviations, scope)


def _check_gradients(ctx: CheckContext, example: Example, request: Request, reply: Reply,
                     declared: Tolerance | None) -> None:
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
        problem = ctx.compared(tol, lambda t: compare(got, want, example.dtype, ctx.device, t,
                                                      what=f"gradient of {name}{interval}"), declared)
        if problem:
            ctx.fail(problem, request, reply)
