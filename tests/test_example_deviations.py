"""A known deviation declared for the examples check excuses a failing worked example where its
``when`` holds on the example's inputs, as it excuses a search's counterexample."""
from __future__ import annotations

import json

from loss_conformance.cli import main

ARGS = ["run", "--backend", "tests.sample_backends:empty_mean_zero", "--loss", "mse_loss", "--check", "examples",
        "--no-torch-baseline", "--quiet", "--seed", "0"]


def _deviations(tmp_path, when: str):
    path = tmp_path / "deviations.yaml"
    path.write_text("format: 1\ndeviations:\n  - loss: mse_loss\n    checks: [examples]\n"
                    f"    when: \"{when}\"\n    reason: the mean over no elements is 0 here\n", encoding="utf-8")
    return path


def _run(tmp_path, *extra):
    out = tmp_path / "run.json"
    code = main([*ARGS, "--json", str(out), *extra])
    return code, json.loads(out.read_text())["records"]


def test_a_failing_worked_example_fails_without_a_deviation(tmp_path):
    code, records = _run(tmp_path)
    assert code == 1 and {r["status"] for r in records} == {"fail"}
    assert "empty input, mean is 0/0" in records[0]["message"]
    assert "raised" not in records[0]["message"]  # a wrong value, not an error of the backend


def test_a_deviation_whose_condition_holds_excuses_it(tmp_path):
    code, records = _run(tmp_path, "--known-deviations", str(_deviations(tmp_path, "numel(input) == 0")))
    assert code == 0 and [r["status"] for r in records] == ["known_deviation"]
    assert records[0]["deviation"]["examples"] == ["empty input, mean is 0/0"]
    assert "the mean over no elements is 0 here" in records[0]["message"]


def test_a_deviation_whose_condition_does_not_hold_excuses_nothing(tmp_path):
    code, records = _run(tmp_path, "--known-deviations", str(_deviations(tmp_path, "numel(input) > 100")))
    assert code == 1 and [r["status"] for r in records] == ["fail"]


def test_a_condition_may_read_the_formulas_named_values(tmp_path):
    # mse_loss's formula binds the elementwise loss: an empty one is the empty input's
    code, records = _run(tmp_path, "--known-deviations", str(_deviations(tmp_path, "numel(loss) == 0")))
    assert code == 0 and [r["status"] for r in records] == ["known_deviation"]
    assert records[0]["deviation"]["examples"] == ["empty input, mean is 0/0"]
