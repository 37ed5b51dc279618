"""A check draws several cases per Hypothesis example (``profiles.search_budget``): the cases asked,
each judged on its own, and a failure reported on the case that failed, shrunk."""
from __future__ import annotations

import types

import pytest
from hypothesis import strategies as st

import loss_conformance.runner as runner_module
from loss_conformance import profiles
from loss_conformance.backends import load_backend
from loss_conformance.checks import CHECKS, CheckFailure, NoKernel, Rejected
from loss_conformance.planning import plan
from loss_conformance.profiles import MAX_CASES_PER_EXAMPLE, MIN_EXAMPLES, search_budget
from loss_conformance.runner import Runner
from loss_conformance_reference import shipped_specs

SPECS = shipped_specs()


def test_a_budget_draws_up_to_8_cases_an_example_in_enough_examples():
    for cases in range(1, 400):
        budget = search_budget(cases)
        assert budget.cases == cases and budget.examples >= cases  # the runner ends the search at ``cases``
        assert 1 <= budget.cases_per_example <= MAX_CASES_PER_EXAMPLE
        assert budget.cases_per_example == 1 or cases / budget.cases_per_example >= MIN_EXAMPLES
        assert search_budget(cases, 1).cases_per_example == 1  # the large check's
    assert search_budget(30).cases_per_example == 7 and search_budget(5).cases_per_example == 1


def _run(check, monkeypatch, seed=0, max_examples=30, shrink=False, reductions=1):
    """Records of ``check`` standing in for the forward check of ``l1_loss`` (float64), and the
    sizes of the lists of cases that Hypothesis drew, in order."""
    sizes: list[int] = []

    def lists(*args, **kwargs):
        return st.lists(*args, **kwargs).map(lambda cases: sizes.append(len(cases)) or cases)

    monkeypatch.setattr(runner_module, "st", types.SimpleNamespace(**{**vars(st), "lists": lists}))
    monkeypatch.setitem(CHECKS, "forward", check)
    planned = plan([SPECS["l1_loss"]], ["float64"], ["cpu"], ["forward"])[:reductions]
    with Runner(SPECS, load_backend("torch.nn.functional"), max_examples, seed, shrink=shrink) as runner:
        return runner.run(planned), sizes


@pytest.mark.parametrize("seed", range(3))
def test_a_search_judges_the_cases_asked_several_to_an_example(seed, monkeypatch):
    judged = []
    records, sizes = _run(lambda ctx, case, data: judged.append(case), monkeypatch, seed, reductions=3)
    assert [(r.status, r.examples) for r in records] == [("pass", 30)] * 3
    assert len(judged) == 90 and len(sizes) < 90 and max(sizes) > 1
    # Every case drawn is judged, but in each search's last example, cut at the budget.
    assert 0 <= sum(sizes) - len(judged) < 3 * MAX_CASES_PER_EXAMPLE


@pytest.mark.parametrize("seed", range(3))
def test_a_case_passed_over_leaves_the_other_cases_of_its_example_judged(seed, monkeypatch):
    calls = []

    def every_other_case_rejected(ctx, case, data):
        calls.append(case)
        if len(calls) % 2:
            raise Rejected()

    records, sizes = _run(every_other_case_rejected, monkeypatch, seed)
    assert records[0].status == "pass", records[0].message
    assert len(calls) == 60  # 30 judged, as many passed over, which the budget does not count
    # Every case of every example but the last, cut at the budget: the rejected ones' neighbours too.
    assert sum(sizes[:-1]) < len(calls) <= sum(sizes)


def test_a_search_where_every_case_is_passed_over_is_skipped(monkeypatch):
    def rejected(ctx, case, data):
        raise Rejected()

    records, _ = _run(rejected, monkeypatch)
    assert records[0].status == "skipped" and "no example satisfied" in records[0].message


@pytest.mark.parametrize("seed", range(3))
def test_the_counterexample_is_the_case_that_failed_not_one_drawn_with_it(seed, monkeypatch):
    raised_on = []

    def fails_from_three_elements(ctx, case, data):
        if case.inputs["input"].size >= 3:
            raised_on.append(case)
            raise CheckFailure("three elements or more")

    records, sizes = _run(fails_from_three_elements, monkeypatch, seed)
    assert records[0].status == "fail" and max(sizes) > 1
    assert records[0].counterexample == raised_on[-1].counterexample(None)


@pytest.mark.parametrize("seed", range(3))
def test_a_failure_is_shrunk_within_its_example(seed, monkeypatch):
    def fails_from_three_elements(ctx, case, data):
        if case.inputs["input"].size >= 3:
            raise CheckFailure("three elements or more")

    records, _ = _run(fails_from_three_elements, monkeypatch, seed, shrink=True)
    values = records[0].counterexample["inputs"]["input"]["values"]
    # As small as it fails: 3 elements, or a 2 x 2 where the shrinker stops at a local minimum.
    flat = [v for row in values for v in (row if isinstance(row, list) else [row])]
    assert records[0].status == "fail" and len(flat) in (3, 4) and set(flat) == {0.0}


# Eight seeds: a failure the shrinker does not keep (larger than its current one) comes at some of them.
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("max_examples", [5, 30], ids=["one-case-examples", "several-case-examples"])
def test_shrinking_stops_at_its_budget_with_the_smallest_failing_case_so_far(seed, max_examples, monkeypatch):
    failed: list[tuple] = []  # (how simple its example is, the case), per failing case

    def fails_from_three_elements(ctx, case, data):
        if case.inputs["input"].size >= 3:
            failed.append((runner_module._choices_key(), case))
            raise CheckFailure("three elements or more")

    unbounded, _ = _run(fails_from_three_elements, monkeypatch, seed, max_examples=max_examples, shrink=True)
    assert unbounded[0].status == "fail" and len(failed) > 4  # shrinking it takes more than the budget below
    failed.clear()
    monkeypatch.setattr(profiles, "SHRINK_EXAMPLES", 3)
    calls = []
    records, sizes = _run(lambda ctx, case, data: calls.append(case) or fails_from_three_elements(ctx, case, data),
                          monkeypatch, seed, max_examples=max_examples, shrink=True)
    assert records[0].status == "fail" and unbounded[0].counterexample != records[0].counterexample
    if max_examples == 5:  # one case to an example (``search_budget``): at most three examples after the failing one
        first = next(i for i, case in enumerate(calls) if case is failed[0][1])
        assert set(sizes) == {1} and len(calls) - first - 1 <= 3
    # The counterexample is the smallest failing case, in the order the shrinker keeps, not merely the last.
    smallest = min(failed, key=lambda f: f[0])[1]
    assert records[0].counterexample == smallest.counterexample(None)


def test_a_check_without_a_kernel_on_every_case_it_judged_is_unsupported(monkeypatch):
    # gradcheck passes over the cases it cannot judge: they do not make the ones that reached the
    # backend, all without a kernel, a minority.
    calls = []

    def no_kernel_but_where_passed_over(ctx, case, data):
        calls.append(case)
        if len(calls) % 2:
            raise Rejected()
        raise NoKernel("l1_loss_cpu", '"l1_loss_cpu" not implemented for \'Double\'')

    records, _ = _run(no_kernel_but_where_passed_over, monkeypatch)
    assert records[0].status == "unsupported" and "on all 30 examples judged" in records[0].message
