"""Declared capabilities: the searches stay inside them, the rest is one ``unsupported`` record per loss."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from loss_conformance.capabilities import Capabilities, Support, module_capabilities
from loss_conformance.planning import plan
from loss_conformance.strategies import case_strategy
from loss_conformance_reference import SpecError, shipped_specs
from tests.test_cli import ROOT, cli
from tests.test_user_specs import in_process, line_with

pytest_plugins = ["pytester"]

CAPS = ROOT / "tests" / "capabilities"
FAST = ["--max-examples", "5", "--dtype", "float64", "--no-torch-baseline"]


def run_records(tmp_path: Path, *args: str) -> tuple[int, list[dict], str]:
    report = tmp_path / "r.json"
    done = cli("run", *args, "--json", str(report))
    return done.returncode, json.loads(report.read_text())["records"], done.stdout + done.stderr


@pytest.mark.parametrize("declared", [["--backend", "tests.capability_backends:mean_only"],
                                      ["--backend", "tests.capability_backends:undeclared",
                                       "--capabilities", str(CAPS / "mean_only.yaml")]],
                         ids=["attribute", "file"])
def test_a_mean_only_backend_passes_with_the_rest_unsupported(tmp_path, declared):
    status, records, out = run_records(tmp_path, *declared, "--loss", "mse_loss", *FAST)
    assert status == 0, out
    assert not [r for r in records if r["status"] not in ("pass", "unsupported")], out
    (unsupported,) = [r for r in records if r["status"] == "unsupported"]  # once for the loss
    assert unsupported["loss"] == "mse_loss" and "reductions mean (not none, sum)" in unsupported["message"]
    assert "weight never passed" in unsupported["message"]
    assert {r["reduction"] for r in records if r["check"] == "forward"} == {"mean"}
    assert "1 unsupported" in out
    source = json.loads((tmp_path / "r.json").read_text())["run"]["capabilities"]
    assert source == (str(CAPS / "mean_only.yaml") if "--capabilities" in declared else
                      "tests.capability_backends:mean_only.loss_conformance_capabilities")


def test_without_its_declaration_the_same_backend_fails():
    done = cli("run", "--backend", "tests.capability_backends:undeclared", "--loss", "mse_loss", *FAST,
               "--check", "forward")
    assert done.returncode == 1, done.stdout + done.stderr


def test_a_backend_declaring_none_of_the_selected_losses_checks_nothing(tmp_path):
    caps = tmp_path / "l1_only.yaml"
    caps.write_text("format: 1\nlosses:\n  l1_loss: {}\n")
    status, records, out = run_records(tmp_path, "--capabilities", str(caps), "--loss", "mse_loss", *FAST)
    assert status == 3, out
    assert [r["status"] for r in records] == ["unsupported"]


@pytest.mark.parametrize("name, fault", [("unknown_loss.yaml", "focal_los"), ("unknown_option.yaml", "label_smoothing"),
                                         ("not_a_dtype.yaml", "float128")])
def test_a_bad_capabilities_file_is_exit_2_with_its_line(capsys, name, fault):
    path = CAPS / name
    status, out, err = in_process(capsys, "run", "--capabilities", str(path), "--loss", "mse_loss", *FAST)
    assert status == 2, out + err
    assert f"{path}:{line_with(path, fault)}:" in err


def test_a_bad_capabilities_attribute_names_the_backend_and_field():
    with pytest.raises(SpecError, match=r"my\.loss_conformance_capabilities: field 'losses\.mse_loss\.reductions\[0\]'"):
        module_capabilities({"format": 1, "losses": {"mse_loss": {"reductions": ["median"]}}}, "my", shipped_specs())


def test_generation_stays_inside_the_declared_support():
    spec = shipped_specs()["cross_entropy"]
    support = Support(variants=("class_index",), options={"label_smoothing": (0.0, 0.25), "weight": False})
    narrowed = support.narrow(spec)
    accepts = (frozenset(spec.args) | frozenset(spec.keywords)) - support.never_passed()

    @settings(max_examples=60, deadline=None, database=None)
    @given(case_strategy(narrowed, "float64", "mean", accepts))
    def draws(case):
        assert case.variant == "class_index"
        assert case.params.get("label_smoothing", 0.0) in (0.0, 0.25)
        assert case.inputs.get("weight") is None

    draws()
    assert all(e.variant == "class_index" for e in narrowed.examples) and narrowed.examples


def test_checks_outside_the_support_leave_the_plan():
    specs = shipped_specs()
    caps = Capabilities("file", {"mse_loss": Support(reductions=("sum",), dtypes=("float32",), double_backward=False)},
                        Support())
    checks = plan([specs["mse_loss"], specs["l1_loss"]], ["float32", "float64"], ["cpu"])
    kept, records = caps.split(checks, specs, "mine")
    assert {(c.reduction, c.dtype) for c in kept} == {("sum", "float32"), ("*", "*"), ("*", "float32")}
    assert all(c.loss == "mse_loss" and c.check != "jvp_of_grad" for c in kept)
    assert [(r.loss, r.status) for r in records] == [("mse_loss", "unsupported"), ("l1_loss", "unsupported")]


def test_the_pytest_plugin_skips_items_outside_the_support(pytester, monkeypatch):
    import os

    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = pytester.runpytest_subprocess("--pyargs", "loss_conformance.pytest_suite", "-p", "no:cacheprovider",
                                           "--hypothesis-profile", "ci", "--conformance-loss", "mse_loss",
                                           "--conformance-dtype", "float64", "-k", "forward and not forward_ad",
                                           "--backend", "tests.capability_backends:undeclared",
                                           "--conformance-capabilities", str(CAPS / "mean_only.yaml"), "-rs")
    result.assert_outcomes(passed=1, skipped=2)  # mean checked; none and sum unsupported
    assert "unsupported: declared support: reductions mean" in result.stdout.str()
