"""Meta-tests for backends that misbehave instead of computing a wrong value: each is given its own
status, with the input it was running and a snippet, the run goes on, and it is never green."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from loss_conformance.backends import FunctionalBackend
from loss_conformance.planning import plan
from loss_conformance.runner import Runner
from loss_conformance_reference import shipped_specs
from tests import misbehaving
from tests.helpers import few_examples
from tests.test_cli import ROOT, cli

pytest_plugins = ["pytester"]

SPECS = shipped_specs()
SEEDS = range(3)


def _forward(name: str, seed: int, checks: tuple[str, ...] = ("forward",), timeout: float = 60.0) -> list:
    backend = FunctionalBackend(getattr(misbehaving, name), name)
    with Runner(SPECS, backend, 10, seed, timeout=timeout) as runner:
        return runner.run(plan([SPECS["mse_loss"]], ["float32", "float64"], ["cpu"], checks))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(set(misbehaving.EXPECTED) - {"hangs", "aliases_input"}))
def test_misbehaving_backend_gets_its_status_with_the_input(name, seed):
    status, phrase = misbehaving.EXPECTED[name]
    records = _forward(name, seed)
    assert records and all(r.status == status for r in records), [(r.status, r.message[:200]) for r in records]
    for r in records:
        assert phrase in r.message
        assert r.counterexample and r.counterexample["inputs"]["input"]["shape"] is not None
        assert "mse_loss" in r.reproduce and "fresh()" in r.reproduce


@pytest.mark.parametrize("seed", SEEDS)
def test_aliasing_the_input_fails(seed):
    records = _forward("aliases_input", seed)
    none = [r for r in records if r.reduction == "none"]
    assert none and all(r.status == "fail" and "output aliases input `input`" in r.message for r in none)


@pytest.mark.parametrize("seed", SEEDS)
def test_hang_is_a_timeout_and_the_run_goes_on(seed):
    started = time.perf_counter()
    backend = FunctionalBackend(misbehaving.hangs, "hangs")
    with Runner(SPECS, backend, 10, seed, timeout=1.0) as runner:
        records = runner.run(plan([SPECS["mse_loss"], SPECS["l1_loss"]], ["float64"], ["cpu"], ("forward",)))
    mse = [r for r in records if r.loss == "mse_loss"]
    l1 = [r for r in records if r.loss == "l1_loss"]
    assert all(r.status == "timeout" and "did not return within 1 s" in r.message for r in mse)
    assert all("where it was" in r.message and "_hangs" in r.message for r in mse)  # faulthandler's stack
    assert all(r.status == "pass" for r in l1)  # a fresh worker took over
    assert time.perf_counter() - started < 30


def test_a_crash_costs_one_check_not_the_run():
    backend = FunctionalBackend(misbehaving.segfaults, "segfaults")
    with Runner(SPECS, backend, 10, 0) as runner:
        records = runner.run(plan([SPECS["mse_loss"], SPECS["l1_loss"]], ["float64"], ["cpu"]))
    by_loss = {loss: {r.status for r in records if r.loss == loss} for loss in ("mse_loss", "l1_loss")}
    assert by_loss["mse_loss"] == {"crashed"}
    assert by_loss["l1_loss"] == {"pass"}


@pytest.mark.parametrize("check", ["examples", "properties"])  # backward: torch itself refuses the in-place write
def test_mutation_is_caught_in_every_check_that_calls(check):
    records = _forward("mutates_target", 0, checks=(check,))
    assert records and all(r.status == "fail" for r in records), [(r.status, r.message[:200]) for r in records]
    assert all("backend modified its input `target`" in r.message for r in records)


def test_nondeterminism_report_shows_both_outputs():
    record = _forward("nondeterministic", 0)[0]
    first, second = record.detail["outputs"]
    assert first != second
    assert record.seed is not None and record.reproduce


def test_snippet_copies_inputs_so_a_mutating_backend_cannot_corrupt_expected():
    record = _forward("mutates_target", 0)[0]
    done = subprocess.run([sys.executable, "-c", record.reproduce.replace("load_backend('mutates_target')",
                                                                          "load_backend('tests.misbehaving:mutates_target')")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    actual, expected = (float(re.search(r"tensor\(([^,)]+)", done.stdout.split(f"{label}:")[1]).group(1))
                        for label in ("actual", "expected"))
    assert actual == pytest.approx(expected)  # the backend's value was right; its mutation must not change that


FAST = ("--max-examples", "5", "--dtype", "float64", "--no-torch-baseline")


@pytest.mark.parametrize("name, exit_status", [("segfaults", 1), ("os_exit_0", 1), ("sys_exit_0", 1),
                                               ("nondeterministic", 1)])
def test_cli_never_green_on_a_dead_backend(tmp_path, name, exit_status):
    report = tmp_path / "r.json"
    done = cli("run", "--backend", f"tests.misbehaving:{name}", "--loss", "mse_loss", "l1_loss", *FAST,
               "--json", str(report))
    assert done.returncode == exit_status, done.stdout + done.stderr
    data = json.loads(report.read_text())
    assert data["complete"] is True
    statuses = {(r["loss"], r["status"]) for r in data["records"]}
    assert ("l1_loss", "pass") in statuses  # the other loss was still checked
    assert misbehaving.EXPECTED[name][0] in {s for loss, s in statuses if loss == "mse_loss"}


@pytest.mark.parametrize("module", ["tests.backend_exits_on_import", "tests.backend_segfaults_on_import"])
def test_backend_that_dies_while_importing_is_a_configuration_error(module):
    done = cli("run", "--backend", module, "--loss", "mse_loss", *FAST)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "could not be loaded" in done.stderr and "Traceback" not in done.stderr


def test_function_instead_of_module_checks_nothing_exit_3():
    done = cli("run", "--backend", "torch.nn.functional:mse_loss", "--loss", "mse_loss", "l1_loss", *FAST[:4])
    assert done.returncode == 3, done.stdout + done.stderr
    assert "nothing was checked" in done.stdout and "implements none of the selected losses" in done.stdout


def test_dtype_without_any_check_exit_3(tmp_path):
    # A user's copy of l1_loss's spec that gives no float16 tolerance: only the worked examples can run.
    spec = yaml.safe_load((ROOT / "spec" / "losses" / "l1_loss.yaml").read_text())
    del spec["tolerance"]["float16"], spec["tolerance"]["gradient"]["float16"]
    (tmp_path / "l1_loss.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    done = cli("run", "--spec", str(tmp_path / "l1_loss.yaml"), "--loss", "l1_loss", "--max-examples", "3",
               "--dtype", "float16")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "nothing was checked in float16" in done.stdout and "no float16 tolerance" in done.stdout


def test_report_path_in_missing_directory_fails_before_the_run(tmp_path):
    started = time.perf_counter()
    done = cli("run", "--json", str(tmp_path / "missing" / "r.json"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert time.perf_counter() - started < 30 and "[" not in done.stderr  # no check started


@pytest.mark.parametrize("signum, exit_status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_leaves_a_valid_partial_report(tmp_path, signum, exit_status):
    report = tmp_path / "r.json"
    env = {**{k: v for k, v in os.environ.items() if k != "LOSS_CONFORMANCE_BACKEND"}, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "loss_conformance", "run", "--max-examples", "30", "--json", str(report)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (report.exists() and json.loads(report.read_text())["records"]):
        time.sleep(0.2)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == exit_status, err
    data = json.loads(report.read_text())
    assert data["complete"] is False and data["records"]
    assert f"interrupted by {signal.Signals(signum).name}" in err
    assert not [p for p in Path(tmp_path).iterdir() if p.name != "r.json"]  # no temporary file left


def test_plugin_survives_a_crashing_backend(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = pytester.runpytest_subprocess("--pyargs", "loss_conformance.pytest_suite", "-p", "no:cacheprovider",
                                           *few_examples(pytester), "--conformance-loss", "mse_loss", "l1_loss",
                                           "--conformance-dtype", "float64", "--backend", "tests.misbehaving:segfaults")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 3 and outcomes.get("passed", 0) >= 8, outcomes  # l1_loss still passes
    assert "SIGSEGV" in result.stdout.str()

