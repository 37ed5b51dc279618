"""Classifying a replayed case against its recording.

``identical``: the same exceptions, and every result (output, each gradient, each Hessian-vector
product) bit for bit (NaN equal to NaN). ``moved``: the same exceptions, a result that differs but
within the spec's tolerance for the case's dtype, with the largest distance in units in the last
place (ULP) of the result's dtype. ``nonconforming``: a result outside that tolerance, or of another
shape, dtype or kind. ``exception_changed``: a call that raised then and not now, or now and not
then, or with another type or message. A case takes the worst class of its parts.

At a kink the spec declares, any gradient of the subdifferential is a correct one: a gradient that
moved beyond the tolerance but stays in that set (a changed convention at a tie, 1 then and 0 now)
is ``moved``, with the kink and the derivative taken then and now; one that leaves it is
``nonconforming``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch

from loss_conformance.checks import gradient_scale
from loss_conformance.compare import compare
from loss_conformance.execution import Output
from loss_conformance.kinks import KinkSpan, hvp_span, kink_span
from loss_conformance.oracle import Oracle
from loss_conformance.snapshot.corpus import CorpusCase, differentiable
from loss_conformance.snapshot.replay import Outcome
from loss_conformance.tensors import TORCH_DTYPES
from loss_conformance.timing import Timings
from loss_conformance_reference.model import LossSpec, Tolerance

CLASSES = ("identical", "moved", "nonconforming", "exception_changed")
NOT_IMPLEMENTED = "not_implemented"  # the backend lacks the loss: nothing could be replayed
_RANK = {name: rank for rank, name in enumerate(CLASSES)}
_INT_VIEWS = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32,
              torch.float64: torch.int64}


@dataclass(frozen=True)
class Change:
    """One part of a case that is not identical: ``what`` (``output``, ``gradient of input``, ...)."""

    what: str
    kind: str
    ulp: int | None = None  # the largest ULP distance, over elements finite then and now
    detail: str = ""
    difference: float | None = None  # the largest absolute difference, over the same elements
    # At a declared kink, per kink whose derivative the gradients imply: (name, then, now), e.g.
    # ("hinge", "derivative 1 (right end)", "derivative 0 (left end)").
    kinks: tuple[tuple[str, str, str], ...] = ()


@dataclass
class CaseVerdict:
    loss: str
    id: str
    kind: str = "identical"
    changes: list[Change] = field(default_factory=list)

    def add(self, change: Change) -> None:
        self.changes.append(change)
        if _RANK[change.kind] > _RANK[self.kind]:
            self.kind = change.kind


def same_bits(a: Output | None, b: Output | None) -> bool:
    if a is None or b is None:
        return a is b
    if (a.type_name, a.dtype, a.shape) != (b.type_name, b.dtype, b.shape):
        return False
    if a.values is None or b.values is None:
        return a.values is b.values
    x, y = np.asarray(a.values, dtype=np.float64), np.asarray(b.values, dtype=np.float64)
    both_nan = np.isnan(x) & np.isnan(y)
    return bool(np.all((x.view(np.uint64) == y.view(np.uint64)) | both_nan))


def ulp_distance(a: np.ndarray, b: np.ndarray, dtype: torch.dtype) -> int | None:
    """The largest distance between ``a`` and ``b`` (float64 arrays of values of ``dtype``) in
    units in the last place of ``dtype``, over the elements finite in both: the number of values of
    ``dtype`` between them, so 0.0 and -0.0 are 0 apart. None where the shapes differ or no element
    is finite in both."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or dtype not in _INT_VIEWS:
        return None
    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.any():
        return None

    def ordered(values: np.ndarray) -> list[int]:
        bits = torch.from_numpy(values[finite]).to(dtype).view(_INT_VIEWS[dtype]).to(torch.int64).tolist()
        width = torch.finfo(dtype).bits
        # Sign and magnitude to a number line: the negative values' magnitudes count down from 0.
        return [-(bit & ((1 << (width - 1)) - 1)) if bit < 0 else bit for bit in bits]

    return max(abs(x - y) for x, y in zip(ordered(a), ordered(b)))


def largest_difference(a: np.ndarray, b: np.ndarray) -> float | None:
    """max |a - b| over the elements finite in both; None where there is none (or the shapes differ)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return None
    finite = np.isfinite(a) & np.isfinite(b)
    return float(np.max(np.abs(a[finite] - b[finite]))) if finite.any() else None


def _finite_max(values: np.ndarray | None) -> float:
    if values is None:
        return 1.0
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else 1.0


class Classifier:
    """Classifies the cases of one loss; the oracle gives the spec's error magnitudes, which scale
    the tolerance's atol as the conformance checks scale it."""

    def __init__(self, spec: LossSpec) -> None:
        self.spec = spec
        self.oracle: Oracle | None = None

    def _oracle(self) -> Oracle:
        if self.oracle is None:
            self.oracle = Oracle(self.spec, "cpu", Timings())
        return self.oracle

    def classify(self, entry: CorpusCase, then: Outcome, now: Outcome) -> CaseVerdict:
        verdict = CaseVerdict(self.spec.id, entry.id)
        for what, before, after in (("exception", then.raised, now.raised),
                                    ("backward exception", then.grad_raised, now.grad_raised),
                                    ("Hessian-vector product exception", then.hvp_raised, now.hvp_raised)):
            if before != after:
                verdict.add(Change(what, "exception_changed",
                                   detail=f"then {before or 'none'}; now {after or 'none'}"))
        dtype, case = entry.case.dtype, entry.case
        tol = self.spec.tolerance.get(dtype, self.spec.tolerance["float64"])
        grad_tol = self.spec.grad_tolerance.get(dtype, self.spec.grad_tolerance["float64"])
        self._results(verdict, entry, "output", {"": then.output}, {"": now.output}, tol, self._output_scale)
        cot = float(np.max(np.abs(case.cotangent))) if case.cotangent is not None and case.cotangent.size else 0.0

        def gradient_scale_of(before: Output) -> float:
            terms = self._oracle().gradient_magnitude(case, entry.reduction) if cot else None
            return max(gradient_scale(before.values, grad_tol), (terms or 0.0) * cot)  # type: ignore[arg-type]

        wrt = differentiable(self.spec, case)
        tangents = case.transform.get("tangents")

        def spans(which: Callable[..., KinkSpan | None], *vectors: Any) -> Callable[[], KinkSpan | None]:
            return lambda: which(self._oracle(), case, entry.reduction, *vectors) \
                if case.cotangent is not None and wrt else None

        self._results(verdict, entry, "gradient of", then.grads, now.grads, grad_tol, gradient_scale_of,
                      _AtKink(spans(kink_span, case.cotangent, wrt), then.grads, now.grads))
        self._results(verdict, entry, "Hessian-vector product of", then.hvp, now.hvp, grad_tol,
                      lambda before: _finite_max(before.values),
                      _AtKink(spans(hvp_span, case.cotangent, tangents), then.hvp, now.hvp) if tangents else None)
        return verdict

    def _output_scale(self, entry: CorpusCase) -> Any:
        with np.errstate(all="ignore"):
            _, magnitude = self._oracle().forward(entry.case, (entry.reduction,))
        return magnitude[entry.reduction]

    def _results(self, verdict: CaseVerdict, entry: CorpusCase, what: str,
                 then: Mapping[str, Output | None] | None, now: Mapping[str, Output | None] | None,
                 tol: Tolerance, scale: Callable[[Any], Any], at_kink: "_AtKink | None" = None) -> None:
        if then is None:
            return  # nothing was recorded (a backend not differentiable in torch): nothing to compare with
        now = now or {}
        for name in dict.fromkeys([*then, *now]):
            before, after = then.get(name), now.get(name)
            label = f"{what} {name}".strip()
            if same_bits(before, after):
                continue
            if before is None or after is None or before.values is None or after.values is None:
                verdict.add(Change(label, "nonconforming",
                                   detail=f"then {_kind(before)}; now {_kind(after)}"))
                continue
            magnitude = scale(entry) if label == "output" else scale(before)
            with np.errstate(all="ignore"):
                problem = compare(after, before.values, entry.case.dtype, "cpu", tol, magnitude, what=label)
            ulp = ulp_distance(before.values, after.values, TORCH_DTYPES.get(entry.case.dtype, torch.float64))
            difference = largest_difference(before.values, after.values)
            span = at_kink.span() if problem and at_kink is not None else None
            if span is not None:
                with np.errstate(all="ignore"):
                    outside = compare(after, span.nearest(name, after.values), entry.case.dtype, "cpu", tol,
                                      magnitude, what=label)
                if outside is None:  # another element of the subdifferential: a convention, not an error
                    verdict.add(Change(label, "moved", ulp, at_kink.note(), difference, at_kink.choices()))
                    continue
                problem = f"{outside} (outside the subdifferential at the kink)"
            verdict.add(Change(label, "nonconforming" if problem else "moved", ulp, problem or "", difference))


class _AtKink:
    """The span of valid results (gradients or Hessian-vector products) of one case where it sits
    on a declared kink, computed once and only when a result moved beyond the tolerance, and the
    derivative the results then and now imply at each kink."""

    def __init__(self, compute: Callable[[], KinkSpan | None], then: Mapping[str, Output | None] | None,
                 now: Mapping[str, Output | None] | None) -> None:
        self._compute, self._then, self._now = compute, then or {}, now or {}
        self._span: KinkSpan | None = None
        self._done = False

    def span(self) -> KinkSpan | None:
        if not self._done:
            self._done = True
            with np.errstate(all="ignore"):
                self._span = self._compute()
        return self._span

    def choices(self) -> tuple[tuple[str, str, str], ...]:
        span = self.span()
        if span is None:
            return ()
        values = lambda grads: {n: o.values for n, o in grads.items() if o is not None and o.values is not None}  # noqa: E731
        then, now = span.chosen(values(self._then)), span.chosen(values(self._now))
        return tuple((name, then.get(name, "?"), now.get(name, "?")) for name in dict.fromkeys([*then, *now]))

    def note(self) -> str:
        choices = self.choices()
        changed = [c for c in choices if c[1] != c[2]] or choices
        return "; ".join(f"at the kink of {name}, from {then} to {now}" for name, then, now in changed) \
            or "inside the subdifferential at a kink"


def _kind(output: Output | None) -> str:
    if output is None:
        return "nothing"
    if output.values is None:
        return f"a {output.type_name}"
    return f"a {output.dtype} tensor of shape {tuple(output.shape or ())}"
