"""A check draws several cases per Hypothesis example (``profiles.search_budget``): about as many
cases as asked, each judged on its own, and a failure shrunk to the case that fails."""
from __future__ import annotations

import hypothesis.strategies
import pytest

from loss_conformance.backends import load_backend
from loss_conformance.checks import CHECKS, CheckFailure, Rejected
from loss_conformance.planning import plan
from loss_conformance.profiles import MAX_CASES_PER_EXAMPLE, MIN_EXAMPLES, SearchBudget, search_budget
from loss_conformance.runner import Runner
from loss_conformance_reference import shipped_specs

SPECS = shipped_specs()


def test_a_budget_holds_about_the_cases_asked_in_enough_examples():
    for cases in range(1, 400):
        budget = search_budget(cases)
        assert 1 <= budget.cases_per_example <= MAX_CASES_PER_EXAMPLE
        assert budget.examples >= min(cases, MIN_EXAMPLES)
        if cases < 2 * MIN_EXAMPLES:  # one case per example: exactly the cases asked
            assert budget == SearchBudget(cases, 1)
        else:  # a list of 1 to K cases holds K / 2 on average
            assert 0.8 * cases <= budget.examples * budget.cases_per_example / 2 <= 1.25 * cases


def _run(check, monkeypatch, seed=0, max_examples=30, shrink=False, reductions=1):
    """Records of ``check`` standing in for the forward check of ``l1_loss`` (float64), and the
    sizes of the lists of cases that Hypothesis drew, in order."""
    sizes: list[int] = []
    lists = hypothesis.strategies.lists
    monkeypatch.setattr(hypothesis.strategies, "lists",
                        lambda *a, **k: lists(*a, **k).map(lambda cases: sizes.append(len(cases)) or cases))
    monkeypatch.setitem(CHECKS, "forward", check)
    planned = plan([SPECS["l1_loss"]], ["float64"], ["cpu"], ["forward"])[:reductions]
    with Runner(SPECS, load_backend("torch.nn.functional"), max_examples, seed, shrink=shrink) as runner:
        return runner.run(planned), sizes


@pytest.mark.parametrize("seed", range(3))
def test_a_search_judges_about_the_cases_asked(seed, monkeypatch):
    judged = []
    records, sizes = _run(lambda ctx, case, data: judged.append(case), monkeypatch, seed, reductions=3)
    assert [r.status for r in records] == ["pass"] * 3
    assert sum(r.examples for r in records) == len(judged) == sum(sizes)
    # About 30 per check, several to an example: one case per example would be 9 per check here.
    assert 45 <= len(judged) <= 135 and max(sizes) > 1


@pytest.mark.parametrize("seed", range(3))
def test_a_case_passed_over_leaves_the_other_cases_of_its_example_judged(seed, monkeypatch):
    calls = []

    def every_other_case_rejected(ctx, case, data):
        calls.append(case)
        if len(calls) % 2:
            raise Rejected()

    records, sizes = _run(every_other_case_rejected, monkeypatch, seed)
    assert records[0].status == "pass", records[0].message
    assert len(calls) == sum(sizes)  # every case of every example, the rejected ones' neighbours too


def test_a_search_where_every_case_is_passed_over_is_skipped(monkeypatch):
    def rejected(ctx, case, data):
        raise Rejected()

    records, _ = _run(rejected, monkeypatch)
    assert records[0].status == "skipped" and "no example satisfied" in records[0].message


@pytest.mark.parametrize("seed", range(3))
def test_a_failure_is_shrunk_to_the_case_that_fails(seed, monkeypatch):
    def fails_from_three_elements(ctx, case, data):
        if case.inputs["input"].size >= 3:
            raise CheckFailure("three elements or more")

    records, _ = _run(fails_from_three_elements, monkeypatch, seed, shrink=True)
    assert records[0].status == "fail"
    # The counterexample is the case that failed, not one of those drawn with it, and as small as
    # it can fail (the shrunk example may keep simplest cases that passed before it).
    assert records[0].counterexample["inputs"]["input"]["values"] == [0.0, 0.0, 0.0]
