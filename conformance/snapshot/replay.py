"""One corpus case on a backend, in its worker process: the output, the vector-Jacobian product
with the stored cotangent, the Hessian-vector product with the stored direction (where the spec
promises double backward), and what raised. Recording and comparing both go through here, so the
two runs make exactly the same calls."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from loss_conformance.execution import Output, Request
from loss_conformance.precision import casts
from loss_conformance.snapshot.corpus import CorpusCase, differentiable
from loss_conformance.workers import IsolatedBackend, WorkerLost
from loss_conformance_reference.model import LossSpec


@dataclass(frozen=True)
class Outcome:
    """What the backend did on one case; an exception as its text, ``Type: message``. A worker
    that died or overran its time is recorded as ``crashed: ...`` or ``timeout: ...``."""

    raised: str | None = None
    output: Output | None = None
    grads: Mapping[str, Output | None] | None = None
    grad_raised: str | None = None
    hvp: Mapping[str, Output | None] | None = None
    hvp_raised: str | None = None


def _lost(lost: WorkerLost) -> str:
    # The first line only: the rest is a faulthandler stack, which differs between runs.
    return f"{lost.status}: {lost.message.splitlines()[0] if lost.message else ''}"


def replay(backend: IsolatedBackend, spec: LossSpec, entry: CorpusCase) -> Outcome:
    case = entry.case
    wrt = differentiable(spec, case) if backend.differentiable and case.cotangent is not None else ()
    request = Request("call", spec.id, dict(case.inputs), dict(case.params), "cpu", wrt,
                      case.cotangent if wrt else None, casts(case.inputs, case.dtype),
                      spec.gradient.double_backward, layouts=dict(case.layouts))
    try:
        reply = backend.run(request)
    except WorkerLost as lost:
        return Outcome(raised=_lost(lost))
    if reply.raised is not None:
        return Outcome(raised=reply.raised)
    outcome = Outcome(output=reply.output, grads=reply.grads, grad_raised=reply.grad_raised)
    tangents = case.transform.get("tangents")
    if not wrt or not tangents:
        return outcome
    # Reverse over reverse, as the spec's double_backward promises (torch.func's forward over reverse
    # lacks rules that double backward has: huber_loss's and soft_margin_loss's backward).
    second = Request("double_backward", spec.id, dict(case.inputs), dict(case.params), "cpu", wrt, case.cotangent,
                     casts(case.inputs, case.dtype), True, layouts=dict(case.layouts), tangents=dict(tangents))
    try:
        derived = backend.run(second)
    except WorkerLost as lost:
        return replace(outcome, hvp_raised=_lost(lost))
    return replace(outcome, hvp=derived.derived, hvp_raised=derived.derived_raised or derived.raised)
