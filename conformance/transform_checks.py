"""Checks of the backend under torch's function transforms, each against the float64 oracle.

torch gives forward-mode AD and ``vmap`` derivative and batching rules of their own, apart from
the ones the forward and backward checks exercise, with bugs of their own (pytorch/pytorch#123996:
``jvp`` of ``grad`` of ``mse_loss`` raised under mean reduction while sum worked). Like the other
checks, these know nothing of the loss they look at.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from hypothesis import strategies as st

from loss_conformance.case import Case
from loss_conformance.checks import CheckContext, CheckFailure, NotApplicable, zeros_like
from loss_conformance.compare import compare, rounded
from loss_conformance.execution import Output, Reply, Request
from loss_conformance.kinks import KinkSpan, tangent_span
from loss_conformance.strategies import cotangent_strategy, siblings_strategy
from loss_conformance_reference.formula import numpy_context

# Samples in a vmapped batch: two or more, so that a batching rule that mixes samples shows.
BATCH_SIZES = st.integers(2, 3)
_NEAR_OVERFLOW = float(np.finfo(np.float64).max) * 2.0 ** -24

_NP = numpy_context()


def _tangents(ctx: CheckContext, case: Case, wrt: tuple[str, ...], data: st.DataObject) -> dict[str, np.ndarray]:
    """A direction per differentiable input, of small exact values (exact in every dtype)."""
    tangents = {name: data.draw(cotangent_strategy(np.shape(case.inputs[name])), label=f"tangent of {name}")
                for name in wrt}
    case.transform["tangents"] = tangents
    return tangents


def _derived(reply: Reply, key: str, like: np.ndarray | None, ctx: CheckContext) -> Output:
    """A transform's named result; a missing one (no dependence on the inputs) is zeros."""
    got = (reply.derived or {}).get(key)
    return got if got is not None else zeros_like(like, ctx)


def _compare_derived(ctx: CheckContext, request: Request, reply: Reply, expected: dict[str, np.ndarray],
                     what: Callable[[str], str], unspecified: np.ndarray | None = None,
                     magnitude: float = 1.0, span: KinkSpan | None = None) -> None:
    """Each derived result against ``expected``; positions where ``unspecified`` holds take any value;
    ``atol`` scales with ``magnitude``, the size of the terms that the results sum. With ``span`` (on
    a declared kink), any tangent in it is right, and the derivative the backend chose is noted."""
    if reply.derived_raised is not None:
        raise CheckFailure(reply.derived_raised)
    tol = ctx.spec.grad_tolerance[ctx.dtype]
    for key, want in expected.items():
        got = _derived(reply, key, want, ctx)
        if span is not None and got.values is not None:
            want = span.nearest("tangent", got.values)
        if unspecified is not None and got.values is not None and got.values.shape == want.shape:
            want = np.where(unspecified, got.values, want)
        problem = compare(got, want, ctx.dtype, ctx.device, tol, magnitude, what=what(key))
        if problem:
            ctx.confirm(problem, [(request, got)], lambda again: _derived(again, key, want, ctx))
        if span is not None and got.values is not None and key == next(iter(expected)):  # once per example
            ctx.kink_choices.update(span.chosen({"tangent": got.values}).items())


def check_forward_ad(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    """The loss's tangent by ``torch.func.jvp`` and by ``torch.autograd.forward_ad`` dual tensors,
    both against the oracle's Jacobian-vector product."""
    wrt = ctx.wrt(case)
    if not wrt:
        return
    tangents = _tangents(ctx, case, wrt, data)
    request = ctx.request(case.inputs, case.params, op="jvp", wrt=wrt, tangents=tangents)
    reply = ctx.run(request)
    want = ctx.oracle.jvp(case, ctx.reduction, tangents)
    # The tangent of a loss that is NaN (0/0) or overflows in the candidate dtype is not specified:
    # its terms are inf - inf there in any implementation, though the float64 oracle's cancel.
    expected, _ = ctx.oracle.forward(case, (ctx.reduction,))
    undefined = ~np.isfinite(rounded(expected[ctx.reduction], ctx.dtype))
    # atol scales with the size of the terms the tangent sums (J_ik t_k), which a kernel rounds.
    _compare_derived(ctx, request, reply, {api: want for api in ("torch.func.jvp", "torch.autograd.forward_ad")},
                     lambda api: f"tangent by {api}", undefined, ctx.oracle.jvp_magnitude(case, ctx.reduction, tangents),
                     tangent_span(ctx.oracle, case, ctx.reduction, tangents))


def check_jvp_of_grad(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    """Forward over reverse, where the spec promises double backward: ``jvp`` of ``grad`` of the
    loss weighted by a drawn cotangent and summed (a Hessian-vector product), against the oracle's."""
    wrt = ctx.wrt(case)
    if not wrt:
        return
    smooth = ctx.spec.gradient.smooth_when
    if smooth is not None and not bool(smooth.evaluate(ctx.oracle.env(case), _NP)):
        # Second derivatives are specified where the spec says the loss is smooth: not at a kink,
        # nor at a zero vector whose eps-regularised norm puts 1/eps in the Hessian.
        raise NotApplicable("outside the spec's smooth_when, where second derivatives are not specified")
    expected, _ = ctx.oracle.forward(case, (ctx.reduction,))
    case.cotangent = data.draw(cotangent_strategy(np.shape(expected[ctx.reduction])), label="cotangent")
    tangents = _tangents(ctx, case, wrt, data)
    request = ctx.request(case.inputs, case.params, op="jvp_of_grad", wrt=wrt, cotangent=case.cotangent,
                          tangents=tangents)
    reply = ctx.run(request)
    want = ctx.oracle.hvp(case, ctx.reduction, case.cotangent, tangents)
    # Rows of the Hessian that overflow (a beta of 1e-310 puts 1/beta in it) give a huge value, inf,
    # inf - inf or inf * 0 = NaN as the order of the terms goes: such products are not specified.
    # The rows are found by the products with a tangent of ones on each input in turn.
    blocks = [ctx.oracle.hvp(case, ctx.reduction, case.cotangent,
                             {n: (np.ones_like(t) if n == one else np.zeros_like(t)) for n, t in tangents.items()})
              for one in tangents]
    # Each product sums Hessian entries as large as the largest product: their rounding scales atol
    # (a distance's Hessian near a tie has entries of 1e5 that cancel to 1e-10).
    sizes = [np.abs(a) for a in [*want.values(), *(v for block in blocks for v in block.values())]]
    magnitude = max((float(np.max(a[a < _NEAR_OVERFLOW])) for a in sizes if np.any(a < _NEAR_OVERFLOW)), default=1.0)
    for name, hvp in want.items():
        unspecified = ~(np.abs(hvp) < _NEAR_OVERFLOW)
        for block in blocks:
            unspecified |= ~(np.abs(block[name]) < _NEAR_OVERFLOW)
        _compare_derived(ctx, request, reply, {name: hvp}, lambda key: f"Hessian-vector product of {key}", unspecified,
                         magnitude)


def check_vmap(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    """``torch.func.vmap`` of the loss over a batch of independent samples of one shape: each
    vmapped result conforms to the oracle and agrees with the backend called on that sample alone.

    A backend that raises under vmap fails, unless the error is one torch.func raises for any
    function it cannot vmap (data-dependent control flow, ``.item()``, output shapes that depend
    on the values, an op without a batching rule or fallback): that example is not applicable,
    and the record says why."""
    size = data.draw(BATCH_SIZES, label="batch size")
    samples = [case, *data.draw(siblings_strategy(ctx.spec, case, size - 1), label="other samples")]
    batch = {name: (np.stack([s.inputs[name] for s in samples]) if value is not None else None)
             for name, value in case.inputs.items()}
    case.transform["batch"] = batch
    request = ctx.request(batch, case.params, op="vmap")
    reply = ctx.run(request)
    if reply.limitation is not None:
        raise NotApplicable(f"torch.func cannot vmap this loss: {reply.limitation}")
    out = reply.output
    assert out is not None
    if out.values is None or tuple(out.shape or ())[:1] != (size,):
        ctx.fail(f"vmapped output is a {out.type_name} of shape {out.shape}, not {size} stacked samples",
                 request, reply)
    for index, sample in enumerate(samples):
        sample.transform["batch"] = batch
        got = Output(out.type_name, out.dtype, out.device, tuple(out.shape or ())[1:], np.asarray(out.values[index]))  # type: ignore
        expected, magnitude = ctx.oracle.forward(sample, (ctx.reduction,))
        tol = ctx.spec.tolerance[ctx.dtype]
        problem = compare(got, expected[ctx.reduction], ctx.dtype, ctx.device, tol, magnitude[ctx.reduction],
                          what=f"vmapped sample {index} of {size}")
        if problem is None:
            alone = ctx.request(sample.inputs, sample.params)
            single = ctx.run(alone).output
            if single is None or single.values is None:
                raise CheckFailure(f"sample {index} called alone gave a {single.type_name if single else 'nothing'}",
                                   sample)
            problem = compare(got, single.values, ctx.dtype, ctx.device, tol, magnitude[ctx.reduction],
                              what=f"vmapped sample {index} of {size} against the same sample called alone")
        if problem:
            ctx.confirm(problem, [(request, out)], case=sample)


TRANSFORM_CHECKS = {
    "forward_ad": check_forward_ad,
    "vmap": check_vmap,
    "jvp_of_grad": check_jvp_of_grad,
}
