"""A known deviation may declare the tolerance a backend is held to instead of the spec's
(``tolerance: {rtol, atol}`` in a ``--known-deviations`` file): a value or gradient outside the
spec's tolerance and inside the declared one is a known deviation, anything farther still fails,
and the record says which tolerance it was held to."""
from __future__ import annotations

import json

import pytest

from tests.test_cli import cli

DECLARED = ("format: 1\n"
            "deviations:\n"
            "  - loss: mse_loss\n"
            "    backends: [tests.sample_backends:mse_off_by_2e_4, tests.sample_backends:mse_off_by_3_percent]\n"
            "    checks: [forward, backward]\n"
            "    dtypes: [float32]\n"
            "    tolerance: {rtol: 1.0e-3, atol: 1.0e-3}\n"
            "    reason: accumulates in blocks, with a relative error up to 1e-3\n")


def _run(tmp_path, backend: str, declared: bool):
    args = ["run", "--backend", f"tests.sample_backends:{backend}", "--loss", "mse_loss", "--dtype", "float32",
            "--check", "forward", "backward", "--max-examples", "10", "--no-torch-baseline",
            "--json", str(tmp_path / "r.json")]
    if declared:
        (tmp_path / "d.yaml").write_text(DECLARED)
        args += ["--known-deviations", str(tmp_path / "d.yaml")]
    done = cli(*args)
    return done, json.loads((tmp_path / "r.json").read_text())["records"]


def test_a_difference_inside_the_declared_tolerance_is_a_known_deviation(tmp_path):
    done, records = _run(tmp_path, "mse_off_by_2e_4", declared=True)
    assert done.returncode == 0, done.stdout + done.stderr
    deviating = [r for r in records if r["status"] == "known_deviation"]
    assert deviating and all(r["status"] in ("pass", "known_deviation") for r in records)
    assert all(r["deviation"]["tolerance"] == {"rtol": 1e-3, "atol": 1e-3} for r in deviating)


@pytest.mark.parametrize("backend, declared", [("mse_off_by_2e_4", False), ("mse_off_by_3_percent", True)])
def test_a_difference_outside_every_tolerance_it_is_held_to_fails(tmp_path, backend, declared):
    done, records = _run(tmp_path, backend, declared)
    assert done.returncode == 1, done.stdout + done.stderr
    assert {r["check"] for r in records if r["status"] == "fail"} == {"forward", "backward"}
    assert all("within the tolerance declared" not in r.get("message", "") for r in records if r["status"] == "fail")


@pytest.mark.parametrize("backend, rtol, excused", [("mse_off_by_2e_4", "1.0e-3", True),
                                                    ("mse_off_by_2e_4", "1.0e-5", False),
                                                    ("mse_off_by_3_percent", "1.0e-3", False)])
def test_a_declared_tolerance_holds_the_worked_examples_to_it(tmp_path, backend, rtol, excused):
    (tmp_path / "d.yaml").write_text(f"format: 1\ndeviations:\n  - loss: mse_loss\n    checks: [examples]\n"
                                     f"    tolerance: {{rtol: {rtol}, atol: 0.0}}\n    reason: blocked sums\n")
    done = cli("run", "--backend", f"tests.sample_backends:{backend}", "--loss", "mse_loss", "--check", "examples",
               "--no-torch-baseline", "--known-deviations", str(tmp_path / "d.yaml"), "--json", str(tmp_path / "r.json"))
    (record,) = json.loads((tmp_path / "r.json").read_text())["records"]
    if excused:
        assert done.returncode == 0 and record["status"] == "known_deviation", record["message"]
        assert record["deviation"]["tolerance"] == {"rtol": 1e-3, "atol": 0.0}
        assert "within the tolerance declared" in record["message"]
    else:
        assert done.returncode == 1 and record["status"] == "fail", record["message"]
