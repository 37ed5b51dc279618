"""The corpus of a snapshot: the cases recorded per loss, from each source in ``SOURCES``.

A case is a ``loss_conformance.case.Case`` (inputs in the candidate dtype, the parameters passed, the
memory layouts of non-contiguous inputs, the cotangent of its vector-Jacobian product and, where
the spec promises double backward, the vector of its Hessian-vector product in
``transform["tangents"]``) with an id that is stable for the loss and the reduction it is called
under. Once recorded, the cases are stored with their inputs, so replaying a snapshot never draws
again: a new Hypothesis or generator changes the next recording, not the comparison of this one.

A further source is one more function in ``SOURCES``.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from hypothesis import given, seed as hseed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from loss_conformance.case import Case
from loss_conformance.kinks import moves_gradient
from loss_conformance.oracle import Oracle
from loss_conformance.precision import PRECISIONS, quantize, storage_dtype
from loss_conformance.profiles import hypothesis_settings
from loss_conformance.strategies import case_strategy, cotangent_strategy
from loss_conformance.timing import Timings
from loss_conformance_reference.examples import example_inputs
from loss_conformance_reference.model import LossSpec

DEFAULT_CASES = 4  # generated cases per loss, variant, reduction and dtype
# Draws searched for a case on each declared kink: the strategies draw ties on purpose, so most
# kinks are met in the first few dozen; one that is not met in these is left to the worked examples.
KINK_DRAWS = 300
DEFAULT_DTYPES = ("float32", "float64")


@dataclass
class CorpusCase:
    """One case of the corpus: ``case`` called under ``reduction``; ``source`` names where it came from."""

    id: str
    source: str
    reduction: str
    case: Case


@dataclass(frozen=True)
class CorpusOptions:
    accepts: frozenset[str]  # the inputs and parameters the recording backend takes
    cases: int = DEFAULT_CASES
    dtypes: tuple[str, ...] = DEFAULT_DTYPES
    seed: int = 0


def default_reduction(spec: LossSpec) -> str:
    return spec.params["reduction"].default if "reduction" in spec.params else "none"


def differentiable(spec: LossSpec, case: Case) -> tuple[str, ...]:
    """The differentiable float inputs present in ``case``: what gradients are taken with respect to."""
    return tuple(n for n in spec.variant(case.variant).differentiable
                 if case.inputs.get(n) is not None and np.issubdtype(case.inputs[n].dtype, np.floating))


def worked_examples(spec: LossSpec, options: CorpusOptions, oracle: Oracle) -> Iterator[CorpusCase]:
    """Every worked example of the spec the backend can be given, in the example's dtype, with a
    cotangent (and Hessian-vector product direction) of ones: the plain gradient of the sum."""
    for number, example in enumerate(spec.examples):
        if not set(example.inputs) <= options.accepts or not set(example.params) <= options.accepts:
            continue
        variant = spec.variant(example.variant)
        inputs: dict[str, np.ndarray | None] = {}
        for name, value in example_inputs(spec, example).items():
            array = np.asarray(value)
            if np.issubdtype(array.dtype, np.floating):
                array = quantize(array, example.dtype) if PRECISIONS[example.dtype].narrow \
                    else array.astype(storage_dtype(example.dtype))
            inputs[name] = array
        reduction = example.params.get("reduction", default_reduction(spec))
        case = Case(spec.id, variant.name, variant.layouts[0].name, example.dtype, inputs, dict(example.params))
        _add_vectors(spec, case, reduction, oracle, lambda shape, what: np.ones(shape))
        yield CorpusCase(f"example {number}: {example.name}", "example", reduction, case)


def generated_cases(spec: LossSpec, options: CorpusOptions, oracle: Oracle) -> Iterator[CorpusCase]:
    """``options.cases`` cases per variant, reduction and dtype, drawn by the run's strategies from
    a seed fixed by the loss, variant, reduction and dtype (so a recording is reproducible with
    the same Hypothesis), with a drawn cotangent and Hessian-vector product direction."""
    for variant in spec.variants:
        for reduction in spec.reductions:
            for dtype in (d for d in options.dtypes if d in spec.tolerance):
                label = f"{variant.name} {reduction} {dtype}"
                strategy, seed = _seeded(spec, options, variant.name, reduction, dtype, label)
                drawn = _draw(spec, strategy, reduction, oracle, options.cases, seed)
                for index, case in enumerate(_distinct(drawn)):
                    yield CorpusCase(f"{label} #{index}", "generated", reduction, case)


def kink_cases(spec: LossSpec, options: CorpusOptions, oracle: Oracle) -> Iterator[CorpusCase]:
    """Per kink the spec declares, variant and dtype, the first drawn case with an element exactly on
    that kink where the loss takes it (a tie whose gradient depends on the derivative chosen there),
    under the default reduction, with a drawn cotangent: where a new version picks
    another element of the subdifferential, ``snapshot compare`` sees it on generated inputs as well
    as on the worked examples. The seed is fixed by the loss, variant, kink and dtype."""
    reduction = default_reduction(spec)
    for variant in spec.variants:
        for kink in variant.kinks:
            for dtype in (d for d in options.dtypes if d in spec.tolerance):
                label = f"{variant.name} {kink.name} {dtype}"
                strategy, seed = _seeded(spec, options, variant.name, reduction, dtype, f"kink {label}")
                found = _first(spec, strategy, reduction, oracle, seed, lambda case: moves_gradient(
                    oracle, case, reduction, kink, differentiable(spec, case)))
                if found is not None:
                    yield CorpusCase(f"kink {label}", "kink", reduction, found)


def _seeded(spec: LossSpec, options: CorpusOptions, variant: str, reduction: str, dtype: str,
            label: str) -> tuple[st.SearchStrategy[Case], int]:
    """The run's strategy for ``variant``, ``reduction`` and ``dtype``, and a seed fixed by the loss and ``label``."""
    strategy = case_strategy(spec, dtype, reduction, options.accepts, variants=(variant,))
    return strategy, zlib.crc32(f"{options.seed}:{spec.id}:{label}".encode()) & 0xFFFFFFFF


class _Found(Exception):
    """Ends a search at its first case that satisfies the predicate."""


def _first(spec: LossSpec, strategy: st.SearchStrategy[Case], reduction: str, oracle: Oracle, seed: int,
           wanted: Callable[[Case], bool]) -> Case | None:
    """The first case of ``strategy`` drawn from ``seed`` (within ``KINK_DRAWS``) that is ``wanted``,
    with its vectors; None when none is."""
    found: list[Case] = []

    def look(case: Case, data: st.DataObject) -> None:
        with np.errstate(all="ignore"):
            if wanted(case):  # Hypothesis replays the case it stops at: the same draws again
                _add_vectors(spec, case, reduction, oracle,
                             lambda shape, what: data.draw(cotangent_strategy(shape), label=what))
                found.append(case)
                raise _Found

    try:
        hypothesis_settings(KINK_DRAWS, shrink=False)(hseed(seed)(given(case=strategy, data=st.data())(look)))()
    except (_Found, Unsatisfiable):
        pass
    return found[0] if found else None


def _draw(spec: LossSpec, strategy: st.SearchStrategy[Case], reduction: str, oracle: Oracle, count: int,
          seed: int) -> list[Case]:
    """``count`` cases of ``strategy`` drawn from ``seed``, with their vectors, as a run's search draws them."""
    drawn: list[Case] = []

    def collect(case: Case, data: st.DataObject) -> None:
        with np.errstate(all="ignore"):
            _add_vectors(spec, case, reduction, oracle,
                         lambda shape, what: data.draw(cotangent_strategy(shape), label=what))
        drawn.append(case)

    if count < 1:
        return drawn
    try:
        hypothesis_settings(count, shrink=False)(hseed(seed)(given(case=strategy, data=st.data())(collect)))()
    except Unsatisfiable:  # the spec's domain for this variant admits no case: the others still count
        pass
    return drawn


def _add_vectors(spec: LossSpec, case: Case, reduction: str, oracle: Oracle,
                 vector: Callable[..., np.ndarray]) -> None:
    """The cotangent (shaped like the oracle's output) and, where double backward is promised, a
    Hessian-vector product direction per differentiable input."""
    wrt = differentiable(spec, case)
    if not wrt:
        return
    expected, _ = oracle.forward(case, (reduction,))
    shape = tuple(np.shape(expected[reduction]))
    case.cotangent = np.asarray(vector(shape, "cotangent"), dtype=np.float64)
    if spec.gradient.double_backward:
        case.transform["tangents"] = {name: np.asarray(vector(np.shape(case.inputs[name]), f"tangent of {name}"),
                                                       dtype=np.float64) for name in wrt}


def _distinct(cases: list[Case]) -> list[Case]:
    """The cases in order of drawing, each once (a small domain can be drawn twice)."""
    seen: set[bytes] = set()
    out = []
    for case in cases:
        key = repr((case.variant, sorted(case.params.items()), sorted(case.layouts.items()))).encode() + b"".join(
            v.dtype.str.encode() + repr(v.shape).encode() + v.tobytes() if v is not None else b"-"
            for _, v in sorted(case.inputs.items()))
        if key not in seen:
            seen.add(key)
            out.append(case)
    return out


# Where the cases come from, in the order they are stored; each source is called once per loss.
SOURCES: tuple[Callable[[LossSpec, CorpusOptions, Oracle], Iterator[CorpusCase]], ...] = (
    worked_examples, kink_cases, generated_cases)


def corpus(spec: LossSpec, options: CorpusOptions) -> list[CorpusCase]:
    """Every case of ``spec``'s corpus, from every source."""
    oracle = Oracle(spec, "cpu", Timings())
    return [entry for source in SOURCES for entry in source(spec, options, oracle)]
