"""A large check stops at its first failure with the calls the verdict rests on: the failing call and
its repetition (a different answer is nondeterminism), and no replay of the case by Hypothesis,
which would cost seconds a call and draw the same case again."""
from __future__ import annotations

import pytest

from loss_conformance import workers
from loss_conformance.backends import FunctionalBackend
from loss_conformance.planning import plan
from loss_conformance.runner import Runner
from loss_conformance_reference import shipped_specs
from tests import misbehaving
from tests.broken import catalogue

DROPS_TAIL = next(b for b in catalogue() if b.name == "mse_blocked_sum_drops_tail")


# (Each call of ``nondeterministic`` is off by 0.5 to 1.5: within the tolerance of a sum of 2^24 terms,
# not of each term.)
@pytest.mark.parametrize("backend,reduction,status,words", [
    (FunctionalBackend(DROPS_TAIL.backend_object(), DROPS_TAIL.name), "sum", "fail", "output values differ"),
    (FunctionalBackend(misbehaving.nondeterministic, "nondeterministic"), "none", "nondeterministic",
     "two calls on the same input disagree"),
], ids=["wrong-sum", "nondeterministic"])
def test_a_large_failure_costs_the_call_and_its_repetition_only(backend, reduction, status, words, monkeypatch):
    calls = []
    run = workers.IsolatedBackend.run
    monkeypatch.setattr(workers.IsolatedBackend, "run", lambda self, request: calls.append(request) or run(self, request))
    specs = shipped_specs()
    [check] = [c for c in plan([specs["mse_loss"]], ["float32"], ["cpu"], ("large",)) if c.reduction == reduction]
    with Runner(specs, backend, 30, seed=0) as runner:
        record = runner.run_one(check)
    assert record.status == status and words in record.message, record.message[:300]
    assert len(calls) == 2 and calls[0] == calls[1]
    assert max(v.size for v in calls[0].inputs.values() if v is not None) >= 1 << 24
    if status == "nondeterministic":  # the two answers summarised in the record, not millions of values listed
        first, second = record.detail["outputs"]
        assert first["values"] is None and first["shape"] == second["shape"] == list(calls[0].inputs["input"].shape)
        assert record.detail["differing"]["count"] > 0
