"""The pytest plugin: the conformance checks as pytest items, with --backend."""
from __future__ import annotations

import pytest

from tests.helpers import few_examples

pytest_plugins = ["pytester"]

SUITE = ["--pyargs", "loss_conformance.pytest_suite", "-p", "no:cacheprovider", "--hypothesis-profile", "ci"]


def test_checks_are_items_named_by_loss_check_reduction_dtype_device(pytester):
    result = pytester.runpytest_subprocess(*SUITE, "--conformance-loss", "mse_loss", "--collect-only", "-q")
    out = result.stdout.str()
    assert "test_conformance[mse_loss-forward-mean-float32-cpu]" in out
    assert "test_conformance[mse_loss-gradcheck-sum-float64-cpu]" in out
    assert "test_conformance[mse_loss-examples-all-all-cpu]" in out


def test_suite_passes_torch_and_flags_a_broken_backend(pytester, monkeypatch):
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    few = few_examples(pytester)
    healthy = pytester.runpytest_subprocess(*SUITE, *few, "--conformance-loss", "l1_loss",
                                            "--conformance-dtype", "float64", "-v")
    # examples, properties, 3 x (forward, backward, gradcheck, forward_ad, vmap, jvp_of_grad); with five
    # examples, all may fall on the kink of |d|, where jvp_of_grad has nothing to check and skips
    outcomes = healthy.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 20 and set(outcomes) <= {"passed", "skipped"}
    skipped = [line for line in healthy.stdout.lines if line.rstrip().endswith("SKIPPED") or " SKIPPED " in line]
    assert all("jvp_of_grad" in line for line in skipped), skipped
    broken = pytester.runpytest_subprocess(*SUITE, *few, "--conformance-loss", "l1_loss", "--conformance-dtype",
                                           "float64", "--backend", "tests.sample_backends:broken_l1",
                                           "--conformance-counterexamples", "1",
                                           "-k", "mean and (forward or backward) and not forward_ad")
    outcomes = broken.parseoutcomes()
    assert outcomes.get("failed", 0) == 2  # the mean's forward and backward: a sum is returned
    assert "reproduce with:" in broken.stdout.str()


def test_a_failing_item_shows_each_cause_it_found(pytester, monkeypatch):
    import os
    from pathlib import Path

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = (*SUITE, "--conformance-loss", "huber_loss", "--conformance-dtype", "float64", "-k", "forward and mean and not forward_ad",
            "--backend", "tests.sample_backends:huber_two_bugs")
    several = pytester.runpytest_subprocess(*args)
    several.assert_outcomes(failed=1)
    assert "another cause in this check: output values differ: large (delta=" in several.stdout.str()
    one = pytester.runpytest_subprocess(*args, "--conformance-counterexamples", "1")
    one.assert_outcomes(failed=1)
    assert "another cause" not in one.stdout.str()


def test_known_deviations_are_xfail(pytester):
    result = pytester.runpytest_subprocess(*SUITE, "--conformance-loss", "binary_cross_entropy",
                                           "--conformance-dtype", "float64", "-k", "backward")
    result.assert_outcomes(xfailed=3)


def test_profiles_are_registered():
    from hypothesis import settings

    import loss_conformance.pytest_plugin  # noqa: F401 - registers the profiles

    for name in ("dev", "ci", "thorough"):
        assert settings.get_profile(name).max_examples > 0
    assert settings.get_profile("thorough").max_examples > settings.get_profile("ci").max_examples


@pytest.mark.parametrize("option", ["--backend", "--conformance-loss", "--conformance-dtype", "--conformance-device"])
def test_options_are_in_help(pytester, option):
    assert option in pytester.runpytest_subprocess("--help").stdout.str()
