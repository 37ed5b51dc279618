"""Specs of the user's own (--spec, --spec-dir) in run, list, validate, the snippets and the pytest plugin."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loss_conformance.cli import main
from tests.test_cli import ROOT, cli

pytest_plugins = ["pytester"]

USER = ROOT / "tests" / "user_specs"
GOOD_DIR = USER / "good"
LOG_COSH = GOOD_DIR / "log_cosh_loss.yaml"
HOSTILE = USER / "hostile"
FOCAL = ROOT / "examples" / "focal_loss" / "focal_loss.yaml"
FAST = ["--max-examples", "5", "--dtype", "float64"]


def line_with(path: Path, text: str) -> int:
    """The 1-based line of ``path`` that contains ``text`` (where a hostile file's fault is)."""
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI's exit status, stdout and stderr, run in this process (no interpreter to start)."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["records"]


def test_worked_example_focal_loss_conforms_from_its_spec_file(tmp_path):
    report = tmp_path / "r.json"
    done = cli("run", "--spec", str(FOCAL), "--backend", "examples.focal_loss.sigmoid_focal",
               "--loss", "sigmoid_focal_loss", *FAST, "--json", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    got = records(report)
    assert {r["loss"] for r in got} == {"sigmoid_focal_loss"}
    assert {r["check"] for r in got} >= {"examples", "forward", "backward", "gradcheck", "properties"}
    assert all(r["status"] == "pass" for r in got)
    # torch has no such loss: the baseline, which would only say "not implemented", is left out.
    assert {r["backend"] for r in got} == {"examples.focal_loss.sigmoid_focal"}
    assert json.loads(report.read_text())["run"]["user_specs"] == {"sigmoid_focal_loss": str(FOCAL)}


def test_spec_dir_finds_a_broken_backend_and_its_snippet_reproduces(tmp_path):
    report = tmp_path / "r.json"
    done = cli("run", "--spec-dir", str(GOOD_DIR), "--backend", "tests.user_specs.backends:broken",
               "--loss", "log_cosh_loss", "--check", "forward", "--max-examples", "30", "--dtype", "float32",
               "--json", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [r for r in records(report) if r["status"] == "fail"]
    assert failed and {r["check"] for r in failed} == {"forward"}
    # The snippet loads the user's spec from its file: run it from elsewhere, on its own.
    replay = subprocess.run([sys.executable, "-c", failed[0]["reproduce"]], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert str(LOG_COSH) in failed[0]["reproduce"]
    actual = replay.stdout.split("actual:")[1].split("\n")[0]
    expected = replay.stdout.split("expected:")[1].split("\n")[0]
    assert "inf" in actual and "inf" not in expected  # cosh overflowed in the backend, not in the spec


def test_the_faithful_backend_conforms_to_the_spec_dir():
    done = cli("run", "--spec-dir", str(GOOD_DIR), "--backend", "tests.user_specs.backends", "--loss",
               "log_cosh_loss", "--check", "examples", "forward", "properties", *FAST)
    assert done.returncode == 0, done.stdout + done.stderr


def test_list_shows_user_specs_beside_the_shipped_ones(capsys):
    status, out, err = in_process(capsys, "list", "--spec", str(FOCAL), "--spec-dir", str(GOOD_DIR))
    assert status == 0, err
    lines = out.splitlines()
    assert any(line.startswith("l1_loss ") for line in lines)
    assert any(line.startswith("sigmoid_focal_loss ") and str(FOCAL) in line for line in lines)
    assert any(line.startswith("log_cosh_loss ") and str(LOG_COSH) in line for line in lines)


def test_validate_runs_user_specs_on_the_reference(capsys):
    status, out, err = in_process(capsys, "validate", "--spec", str(FOCAL), "--spec-dir", str(GOOD_DIR))
    assert status == 0, out + err
    assert f"{FOCAL}: ok" in out and f"{LOG_COSH}: ok" in out


def test_a_user_spec_replaces_the_shipped_one_with_a_notice(capsys):
    replacement = USER / "replace_l1" / "l1_loss.yaml"
    status, out, err = in_process(capsys, "list", "--spec", str(replacement))
    assert status == 0
    assert f"{replacement} replaces the shipped spec of 'l1_loss'" in err
    assert f"(from {replacement})" in next(line for line in out.splitlines() if line.startswith("l1_loss "))
    # The user's l1_loss squares the difference: torch's l1_loss no longer conforms to it.
    done = cli("run", "--spec", str(replacement), "--loss", "l1_loss", "--check", "forward", *FAST)
    assert "replaces the shipped spec of 'l1_loss'" in done.stderr
    assert done.returncode == 1, done.stdout + done.stderr


@pytest.mark.parametrize("command, name, fault", [
    (["run", "--loss", "log_cosh_loss"], "schema_error.yaml", "max: four"),
    (["list"], "unknown_name.yaml", "log(two)"),
    (["validate"], "schema_error.yaml", "max: four"),
])
def test_a_bad_user_spec_is_exit_2_with_its_file_and_line(capsys, command, name, fault):
    path = HOSTILE / name
    status, out, err = in_process(capsys, command[0], "--spec", str(path), *command[1:])
    assert status == 2, out + err
    assert f"{path}:{line_with(path, fault)}:" in err
    assert "checks" not in out  # before any check ran


@pytest.mark.parametrize("command, option, path", [("run", "--spec", "no/such/spec.yaml"),
                                                   ("list", "--spec-dir", "no/such/dir"),
                                                   ("validate", "--spec-dir", "tests/broken")])  # no *.yaml in it
def test_a_missing_spec_file_or_directory_is_exit_2(capsys, monkeypatch, command, option, path):
    monkeypatch.chdir(ROOT)
    status, out, err = in_process(capsys, command, option, path)
    assert status == 2, out + err
    assert path in err


def test_validate_catches_a_wrong_worked_example(capsys):
    path = HOSTILE / "wrong_example.yaml"
    status, out, err = in_process(capsys, "validate", str(path))
    assert status == 2, out + err
    line = line_with(path, "- name: \"a difference of ln 3")
    assert f"{path}:{line}: worked example 'a difference of ln 3" in err
    assert "expected=[0.610825624]" in err


def test_validate_catches_a_property_that_cannot_hold(capsys):
    path = HOSTILE / "impossible_property.yaml"
    status, out, err = in_process(capsys, "validate", "--spec", str(path))
    assert status == 2, out + err
    assert f"{path}:{line_with(path, '- name: always_negative')}: property 'always_negative'" in err


def test_pytest_plugin_takes_user_specs_by_option_and_ini(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    suite = ["--pyargs", "loss_conformance.pytest_suite", "-p", "no:cacheprovider", "--hypothesis-profile", "ci",
             "--conformance-loss", "log_cosh_loss", "--conformance-dtype", "float64"]
    by_option = pytester.runpytest_subprocess(*suite, "--conformance-spec", str(LOG_COSH),
                                              "--backend", "tests.user_specs.backends", "-k", "examples")
    by_option.assert_outcomes(passed=1)
    ini = pytester.makeini(f"[pytest]\nconformance_spec_dirs = {GOOD_DIR}\n")
    by_ini = pytester.runpytest_subprocess(*suite, "-c", str(ini), "--backend", "tests.user_specs.backends:broken",
                                           "-k", "forward and sum and not forward_ad")
    by_ini.assert_outcomes(failed=1)
    assert f"load_spec({str(LOG_COSH)!r})" in by_ini.stdout.str()
    bad = pytester.runpytest_subprocess(*suite, "--conformance-spec", str(HOSTILE / "schema_error.yaml"))
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert f"schema_error.yaml:{line_with(HOSTILE / 'schema_error.yaml', 'max: four')}:" in bad.stderr.str()
