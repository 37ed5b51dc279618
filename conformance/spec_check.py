"""``validate``'s second half: a spec's worked examples and properties, run on the reference.

The schema and the loader accept a spec whose worked example states a wrong expected value, or
whose property can never hold; every run would then fail every backend on it, and the user would
blame their code. Here the spec's own formula (the reference backend) is checked against them:
each worked example, and each property on a few seeded generated cases, in the widest dtype the
spec gives a tolerance for.
"""
from __future__ import annotations

import dataclasses

from loss_conformance.backends import ReferenceBackend
from loss_conformance.records import FAILING, Record
from loss_conformance.planning import WIDTH, plan
from loss_conformance.runner import Runner
from loss_conformance.workers import IsolatedBackend
from loss_conformance_reference.loader import field_line
from loss_conformance_reference.model import LossSpec

# Enough cases to meet a property that fails on most inputs (one that cannot hold), few enough that
# validating a spec takes seconds; seeded, so that validate gives the same answer every time.
VALIDATION_EXAMPLES = 20
VALIDATION_SEED = 0


def reference_problem(spec: LossSpec) -> str | None:
    """The first worked example or property of ``spec`` that its reference implementation does not
    satisfy, as ``FILE:LINE: ...`` naming it; None when all hold."""
    dtype = max(spec.tolerance, key=WIDTH.__getitem__)
    backend = IsolatedBackend(ReferenceBackend(), {spec.id: spec})
    try:
        for i, example in enumerate(spec.examples):
            record = _check(dataclasses.replace(spec, examples=(example,), properties=()), backend, "examples", dtype)
            if record.status in FAILING:
                return (f"{_where(spec, ('examples', i))}: worked example '{example.name}' does not hold on the "
                        f"reference implementation: {_detail(record, example.name + ': ')}")
        for i, prop in enumerate(spec.properties):
            record = _check(dataclasses.replace(spec, examples=(), properties=(prop,)), backend, "properties", dtype)
            if record.status in FAILING:
                return (f"{_where(spec, ('properties', i))}: property '{prop.name}' does not hold on the reference "
                        f"implementation (seed {record.seed}): "
                        f"{_detail(record, f'property {prop.name!r} does not hold: ')}{_inputs(record)}")
    finally:
        backend.close()
    return None


def _check(spec: LossSpec, backend: IsolatedBackend, check: str, dtype: str) -> Record:
    (cid,) = plan([spec], [dtype], ["cpu"], [check])
    return Runner({spec.id: spec}, backend, VALIDATION_EXAMPLES, VALIDATION_SEED).run_one(cid)


def _where(spec: LossSpec, field: tuple[str, int]) -> str:
    line = field_line(spec.path, field)
    return f"{spec.path}:{line}" if line else str(spec.path)


def _inputs(record: Record) -> str:
    """The counterexample's inputs and parameters, as the harness shrank them."""
    case = record.counterexample
    if not case:
        return ""
    inputs = {name: value.get("values") for name, value in case["inputs"].items()}
    return f"; on inputs {inputs}, parameters {case['params']}"


def _detail(record: Record, prefix: str = "") -> str:
    message = record.message.removeprefix(prefix)
    return message if record.status == "fail" else f"{record.status}: {message}"
