"""The checks. Each takes one generated case and raises ``CheckFailure`` when the backend does
not conform; none of them knows which loss it is looking at."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NoReturn

import numpy as np
from hypothesis import strategies as st

from loss_conformance.case import LISTED_ELEMENTS, Case, listed
from loss_conformance.compare import compare, shown
from loss_conformance.execution import Output, Reply, Request
from loss_conformance.kinks import kink_span
from loss_conformance.layouts import MemoryLayout, layout_strategy, repeat_along
from loss_conformance.memory import keep_large_blocks_for
from loss_conformance.oracle import Oracle
from loss_conformance.oracle_check import check_oracle_gradient
from loss_conformance.precision import PRECISIONS, casts, missing_kernel
from loss_conformance.strategies import cotangent_strategy
from loss_conformance.tensors import TORCH_DTYPES
from loss_conformance.timing import Timings
from loss_conformance.workers import IsolatedBackend
from loss_conformance_reference.formula import numpy_context
from loss_conformance_reference.model import LossSpec, Tolerance

_NP = numpy_context()


class CheckFailure(AssertionError):
    """The backend does not conform on this case (or on ``case``, one derived from it: a sample of
    a vmapped batch, which known deviations and the counterexample then describe).

    ``called_on`` names the cases whose inputs the failing calls were made on, where they are not
    just the counterexample: a property that substitutes inputs (a flipped label) rests on calls
    with the drawn inputs and with the substituted ones, and a known deviation that holds for
    either explains the failure. Empty: the counterexample alone."""

    def __init__(self, message: str, case: Case | None = None, called_on: tuple[Case, ...] = ()) -> None:
        super().__init__(message)
        self.case = case
        self.called_on = called_on


class WithinDeclared(str):
    """A comparison's problem that the tolerance a known deviation declares for the backend covers."""


class DeclaredTolerance(CheckFailure):
    """Outside the spec's tolerance, inside the one a known deviation declares for this backend: only
    such an entry (``Deviation.tolerance``) can explain it."""


class NotApplicable(Exception):
    """This example cannot be checked, for a reason that is no fault of the backend's (torch.func
    cannot vmap its loss at all): it is counted and reported, never a pass in silence."""


class Rejected(Exception):
    """This case is outside what the check can judge (finite differences across a kink, or of a
    loss that is not finite): it is passed over, as Hypothesis's ``assume`` would, but only it and
    not the other cases drawn with it (``runner``)."""


def judge_only_if(condition: bool) -> None:
    if not condition:
        raise Rejected()


class NoKernel(Exception):
    """The backend raised torch's dispatch error for the check's dtype: it has no kernel for it
    (``"ctc_loss_cpu" not implemented for 'Half'``). The example is not checked; a check where
    every example ends so is ``unsupported`` (see ``runner``)."""

    def __init__(self, kernel: str, raised: str) -> None:
        super().__init__(raised)
        self.kernel, self.raised = kernel, raised


class NondeterminismFound(BaseException):
    """Two calls on the same input disagreed. A BaseException, so that Hypothesis stops at once:
    shrinking a nondeterministic failure only produces a flaky one."""

    def __init__(self, message: str, first: Output | None, second: Output | None) -> None:
        super().__init__(message)
        self.message, self.first, self.second = message, first, second

    def detail(self) -> dict[str, Any]:
        """The two results, for the record's ``detail``: listed, or where there are too many to list
        (the large check's millions), summarised, with how many elements differ and the first that does."""
        first, second = (o.values if o is not None else None for o in (self.first, self.second))
        if all(v is None or v.size <= LISTED_ELEMENTS for v in (first, second)):
            return {"outputs": [v.tolist() if v is not None else None for v in (first, second)]}
        out: dict[str, Any] = {"outputs": [{"shape": list(v.shape), **listed(v)} if v is not None else None
                                           for v in (first, second)]}
        if first is not None and second is not None and first.shape == second.shape:
            differ = np.flatnonzero(~((first == second) | (np.isnan(first) & np.isnan(second))))
            if differ.size:
                at = differ[0]
                out["differing"] = {"count": int(differ.size), "first_at": [int(i) for i in np.unravel_index(at, first.shape)],
                                    "values": [first.flat[at].item(), second.flat[at].item()]}
        return out


@dataclass
class CheckContext:
    spec: LossSpec
    backend: IsolatedBackend
    oracle: Oracle
    dtype: str
    device: str
    reduction: str
    timings: Timings
    accepts: frozenset[str] | None = None  # what may be passed: the backend's, less what it declares unsupported
    declared: Tolerance | None = None  # the loosest tolerance a known deviation declares for this check

    def accepted(self) -> frozenset[str]:
        return self.accepts if self.accepts is not None else self.backend.accepts(self.spec)
    # (kink, the derivative the backend chose there) -> examples: the backward check's report of ties
    kink_choices: Counter[tuple[str, str]] = field(default_factory=Counter)
    # What the backend's worker reported beside the replies (torch.compile fell back to eager).
    notices: dict[str, None] = field(default_factory=dict)

    def request(self, inputs: Mapping[str, np.ndarray | None], params: Mapping[str, Any], op: str = "call",
                wrt: tuple[str, ...] = (), cotangent: np.ndarray | None = None,
                dtypes: Mapping[str, str] | None = None, layouts: Mapping[str, MemoryLayout] | None = None,
                cotangent_layout: MemoryLayout | None = None, tangents: Mapping[str, np.ndarray] | None = None) -> Request:
        # A dtype NumPy cannot hold (bfloat16) is stored rounded into it, and cast by the worker.
        casts_ = casts(inputs, self.dtype) if dtypes is None else dict(dtypes)
        return Request(op, self.spec.id, dict(inputs), dict(params), self.device, wrt, cotangent, casts_,
                       self.spec.gradient.double_backward, layouts=dict(layouts or {}),
                       cotangent_layout=cotangent_layout, tangents=dict(tangents or {}))

    def unless_no_kernel(self, raised: str) -> str:
        """``raised``, unless it is torch's error for a kernel missing in the check's dtype: NoKernel."""
        kernel = missing_kernel(raised, self.dtype)
        if kernel is not None:
            raise NoKernel(kernel, raised)
        return raised

    def run(self, request: Request) -> Reply:
        """The backend's reply; CheckFailure if it raised or tampered with its inputs."""
        with self.timings.in_backend():
            reply = self.backend.run(request)
        self.notices.update(dict.fromkeys(reply.notices))
        if reply.raised is not None:
            raise CheckFailure(f"backend raised {self.unless_no_kernel(reply.raised)}")
        if reply.problems:
            raise CheckFailure("; ".join(reply.problems))
        return reply

    def compared(self, tol: Tolerance, compare_at: Callable[[Tolerance], str | None],
                 declared: Tolerance | None = None) -> str | None:
        """The problem ``compare_at`` finds at the spec's ``tol``, marked ``WithinDeclared`` where it
        finds none at the tolerance a known deviation declares (``declared``, else the check's)."""
        problem = compare_at(tol)
        declared = declared if declared is not None else self.declared
        if problem and declared is not None:
            looser = Tolerance(max(tol.rtol, declared.rtol), max(tol.atol, declared.atol))
            if compare_at(looser) is None:
                return WithinDeclared(f"{problem}{held_to(looser, self.backend.name)}")
        return problem

    def fail(self, problem: str, request: Request, first: Reply) -> NoReturn:
        self.confirm(problem, [(request, first.output)])

    def confirm(self, problem: str, calls: list[tuple[Request, Output | None]],
                result: Callable[[Reply], Output | None] = lambda reply: reply.output,
                case: Case | None = None, called_on: tuple[Case, ...] = ()) -> NoReturn:
        """Before blaming the backend for ``problem``, repeat the calls it rests on: a different
        answer to the same input is nondeterminism, not a wrong value. ``result`` picks the answer
        out of a reply (a transform's derived value rather than the output); ``case`` and
        ``called_on`` are the failure's (``CheckFailure``)."""
        for request, first in calls:
            with self.timings.in_backend():
                again = self.backend.run(request)
            value = result(again) if again.raised is None else None
            if value is None or first is None or not value.same_as(first):
                second = "raised " + again.raised if again.raised else shown_output(value)
                raise NondeterminismFound(f"two calls on the same input disagree: first {shown_output(first)}, "
                                          f"then {second} (the first call: {problem})", first, value)
        raise (DeclaredTolerance if isinstance(problem, WithinDeclared) else CheckFailure)(problem, case, called_on)

    def wrt(self, case: Case) -> tuple[str, ...]:
        """Differentiable inputs present in ``case``."""
        variant = self.spec.variant(case.variant)
        return tuple(n for n in variant.differentiable if case.inputs.get(n) is not None)


def held_to(tol: Tolerance, backend: str) -> str:
    """How a record says that a difference lies within the tolerance declared for ``backend``."""
    return f" (within the tolerance declared for {backend}: rtol={tol.rtol:g}, atol={tol.atol:g})"


def shown_output(output: Output | None) -> str:
    if output is None:
        return "nothing"
    return shown(output.values) if output.values is not None else f"a {output.type_name}"


def check_forward(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    expected, magnitude = ctx.oracle.forward(case, (ctx.reduction,))
    request = ctx.request(case.inputs, case.params, layouts=case.layouts)
    reply = ctx.run(request)
    tol = ctx.spec.tolerance[ctx.dtype]
    problem = ctx.compared(tol, lambda t: compare(reply.output, expected[ctx.reduction], ctx.dtype, ctx.device, t,
                                                  magnitude[ctx.reduction]))
    if problem:
        ctx.fail(problem, request, reply)


def check_backward(ctx: CheckContext, case: Case, data: st.DataObject, values: bool = False) -> None:
    """Gradients against the oracle's; the values too with ``values`` (the forward check's job
    otherwise: here a wrong value only matters where it leaves nothing to differentiate)."""
    wrt = ctx.wrt(case)
    expected, magnitude = ctx.oracle.forward(case, (ctx.reduction,))
    want = expected[ctx.reduction]
    # The incoming gradient comes in any layout too: ``loss.sum().backward()`` passes a stride-0 one.
    shape = tuple(want.shape)
    case.cotangent_layout = data.draw(layout_strategy(shape, range(len(shape))), label="cotangent layout")
    case.cotangent = repeat_along(data.draw(cotangent_strategy(shape), label="cotangent"), case.cotangent_layout)
    request = ctx.request(case.inputs, case.params, wrt=wrt, cotangent=case.cotangent, layouts=case.layouts,
                          cotangent_layout=case.cotangent_layout)
    reply = ctx.run(request)
    problem = compare(reply.output, want, ctx.dtype, ctx.device, ctx.spec.tolerance[ctx.dtype],
                      magnitude[ctx.reduction])
    if problem and (values or "values differ" not in problem):
        ctx.fail(problem, request, reply)  # a wrong shape or dtype leaves nothing to differentiate against
    if not wrt:
        return
    if reply.grad_raised is not None:
        raise CheckFailure(f"backward raised {ctx.unless_no_kernel(reply.grad_raised)}")
    if reply.grads is None:
        raise CheckFailure(f"output carries no gradient to {', '.join(wrt)}")
    oracle = ctx.oracle.vjp(case, ctx.reduction, case.cotangent, wrt)
    tol = ctx.spec.grad_tolerance[ctx.dtype]
    terms = gradient_terms(ctx.oracle, case, ctx.reduction, case.cotangent)
    neighbours: list[dict[str, np.ndarray]] | None = None
    # On a declared kink any gradient in the span of the kink's derivatives is right, not only the oracle's.
    span = kink_span(ctx.oracle, case, ctx.reduction, case.cotangent, wrt)
    got_values = {}
    for name in wrt:
        got = reply.grads.get(name) or zeros_like(case.inputs[name], ctx)
        want = span.nearest(name, got.values) if span is not None and got.values is not None else oracle[name]
        got_values[name] = got.values
        problem = ctx.compared(tol, lambda t: compare(got, want, ctx.dtype, ctx.device, t,
                                                      max(gradient_scale(oracle[name], t), terms),
                                                      what=f"gradient of {name}"))
        if problem and PRECISIONS[ctx.dtype].narrow and got.values is not None:
            # Element by element: a kink moved by rounding concerns the elements near it (one row
            # of a batch), and the others are right at the point itself.
            neighbours = neighbours if neighbours is not None else rounding_neighbours(ctx, case, wrt)
            nearest = nearest_candidate(got.values, [oracle[name], *(alt[name] for alt in neighbours)])
            if compare(got, nearest, ctx.dtype, ctx.device, tol, max(gradient_scale(oracle[name], tol), terms)) is None:
                continue
        if problem:
            ctx.fail(problem, request, reply)
    if span is not None:
        ctx.kink_choices.update(span.chosen({n: v for n, v in got_values.items() if v is not None}).items())


def check_large(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    """Values and, for a backend differentiable in torch, gradients, on a case drawn at the sizes
    where kernels change strategy (``loss_conformance.sizes``)."""
    keep_large_blocks_for(case.inputs.values())
    if ctx.backend.differentiable:
        check_backward(ctx, case, data, values=True)
    else:
        check_forward(ctx, case, data)


def rounding_neighbours(ctx: CheckContext, case: Case, wrt: tuple[str, ...]) -> list[dict[str, np.ndarray]]:
    """The oracle's gradients at the point with its comparisons made in the half dtype, and with one
    float input or float parameter moved by 4u times the case's largest input, either way (u: the
    half dtype's rounding unit); each element of a gradient may match any of them.

    A half-precision kernel rounds intermediate values by u relative to the magnitudes it handles
    (129 squared is 16640 in bfloat16; 1 + 510 is 512 in bfloat16), so a kink (a hinge, a clamp)
    it sees can sit that far from where the float64 oracle sees it, and near a kink either side's
    gradient is a correct one: moving a parameter (a margin) moves a hinge and keeps the inputs'
    ties. Two values that round to the same one are a tie to the kernel (a minimum of two
    distances 1 and 1.002 in bfloat16), where the spec's convention at a tie applies. Computed
    only when the gradient at the point itself does not match.
    """
    floats = {k: v for k, v in case.inputs.items() if v is not None and np.issubdtype(v.dtype, np.floating)}
    finite = [np.abs(v[np.isfinite(v)]) for v in floats.values() if v.size]
    scale = max((float(a.max()) for a in finite if a.size), default=0.0)
    step = 4 * PRECISIONS[ctx.dtype].unit_roundoff * max(scale, 1.0)
    out = [ctx.oracle.vjp(case, ctx.reduction, case.cotangent, wrt, compare_in=TORCH_DTYPES[ctx.dtype])]
    for name, value in floats.items():
        for sign in (1.0, -1.0):
            moved = Case(**{**case.__dict__, "inputs": {**case.inputs, name: value.astype(np.float64) + sign * step}})
            out.append(ctx.oracle.vjp(moved, ctx.reduction, case.cotangent, wrt))
    resolved = {name: case.params.get(name, param.default) for name, param in ctx.spec.params.items()}
    for name, value in resolved.items():
        if isinstance(value, float) and np.isfinite(value):
            for sign in (1.0, -1.0):
                moved = Case(**{**case.__dict__, "params": {**case.params, name: value + sign * step}})
                out.append(ctx.oracle.vjp(moved, ctx.reduction, case.cotangent, wrt))
    return out


def nearest_candidate(values: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    """Element by element, the candidate closest to ``values`` (NaN to NaN, an infinity to the same
    one); the first candidate where the shapes differ."""
    first = np.asarray(candidates[0], dtype=np.float64)
    got = np.asarray(values, dtype=np.float64)
    if got.shape != first.shape or any(np.shape(c) != first.shape for c in candidates):
        return first
    stacked = np.stack([np.asarray(c, dtype=np.float64) for c in candidates])
    with np.errstate(invalid="ignore"):
        distance = np.abs(stacked - got)
    same = (np.isnan(stacked) & np.isnan(got)) | (stacked == got)
    distance = np.where(same, 0.0, np.where(np.isnan(distance), np.inf, distance))
    return np.take_along_axis(stacked, np.argmin(distance, axis=0)[None], axis=0)[0]


def gradient_terms(oracle: Oracle, case: Case, reduction: str, cotangent: np.ndarray) -> float:
    """Where the spec states the size of the terms a gradient element sums, that size times the
    incoming gradient: atol scales with it, as the forward check's with the error magnitude."""
    terms = oracle.gradient_magnitude(case, reduction)
    return terms * float(np.max(np.abs(cotangent))) if terms is not None and np.size(cotangent) else 0.0


def gradient_scale(expected: np.ndarray, tol: Tolerance) -> float:
    """The factor on ``atol`` for a gradient: one element of a gradient can be the difference of
    terms as large as its largest element (a cosine's gradient at a zero vector: 3e4 beside
    2.5e6), so each element may be off by ``rtol`` times the largest, as a norm-wise bound allows."""
    finite = np.abs(expected[np.isfinite(expected)])
    return float(tol.rtol * finite.max() / tol.atol) if finite.size and tol.atol > 0 else 1.0


def zeros_like(like: np.ndarray | None, ctx: CheckContext) -> Output:
    """An unused input's gradient: zeros (autograd gives None)."""
    shape = tuple(np.shape(like))
    return Output("Tensor", str(TORCH_DTYPES[ctx.dtype]), ctx.device, shape, np.zeros(shape))


def check_gradcheck(ctx: CheckContext, case: Case, data: st.DataObject) -> None:
    smooth = ctx.spec.gradient.smooth_when
    if smooth is not None:
        judge_only_if(bool(smooth.evaluate(ctx.oracle.env(case), _NP)))
    expected, _ = ctx.oracle.forward(case, (ctx.reduction,))
    judge_only_if(bool(np.all(np.isfinite(expected[ctx.reduction]))))  # finite differences need a finite loss
    wrt = ctx.wrt(case)
    if not wrt:
        return
    # The oracle grades every gradient check: on these smooth points, its gradient is first checked
    # against a source independent of the torch under test.
    check_oracle_gradient(ctx.oracle, case, ctx.reduction, wrt)
    if ctx.spec.gradient.double_backward:
        # gradgradcheck's incoming gradient, drawn (not torch's unseeded random one) in a memory layout
        # of its own: a double backward that reads it as contiguous is seen. Never stride 0, whose
        # elements gradcheck cannot perturb one at a time.
        shape = tuple(np.shape(expected[ctx.reduction]))
        case.cotangent_layout = data.draw(layout_strategy(shape, ()), label="grad_outputs layout")
        case.cotangent = data.draw(cotangent_strategy(shape), label="grad_outputs")
    reply = ctx.run(ctx.request(case.inputs, case.params, op="gradcheck", wrt=wrt, layouts=case.layouts,
                                cotangent=case.cotangent, cotangent_layout=case.cotangent_layout))
    if reply.gradcheck:
        # Finite differences of a function that answers differently each time fail too: say which it is.
        call = ctx.request(case.inputs, case.params, layouts=case.layouts)
        ctx.confirm(reply.gradcheck, [(call, ctx.run(call).output)])


# The property and transform checks build on this module's context and failures, hence the imports here.
from loss_conformance.property_check import check_properties  # noqa: E402
from loss_conformance.transform_checks import TRANSFORM_CHECKS  # noqa: E402

CHECKS: dict[str, Callable[[CheckContext, Case, st.DataObject], None]] = {
    "forward": check_forward,
    "backward": check_backward,
    "gradcheck": check_gradcheck,
    "properties": check_properties,
    **TRANSFORM_CHECKS,
    "large": check_large,
}
