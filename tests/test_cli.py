"""The command line: exit statuses, reports, reproduction snippets, progress, help."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-examples", "5", "--dtype", "float64"]


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    full_env = {k: v for k, v in os.environ.items() if k != "LOSS_CONFORMANCE_BACKEND"}
    full_env.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return full_env


def fresh_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m loss_conformance ARGS`` in a new interpreter: for what only a fresh process shows
    (what it imports, what it leaves behind, the console script)."""
    return subprocess.run([sys.executable, "-m", "loss_conformance", *args], capture_output=True, text=True,
                          env=_environment(env), cwd=cwd, timeout=600)


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 600.0,
        memory_cap: int | None = None) -> subprocess.CompletedProcess[str]:
    """``loss-conformance ARGS`` as a process of its own, with its exit status, stdout and stderr; forked
    from this test process, whose torch is imported and warmed already (a new interpreter spends
    seconds on that, each time), with the environment and working directory it would be given.
    ``memory_cap``: the bytes of address space the run may add to what it was forked with."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        child = mp.get_context("fork").Process(target=_main_in_child,
                                               args=(args, _environment(env), cwd, out, err, memory_cap))
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            pytest.fail(f"loss-conformance {' '.join(args)} did not finish within {timeout:g} s")
        return subprocess.CompletedProcess(list(args), child.exitcode, out.read_text(), err.read_text())


def _main_in_child(args: tuple[str, ...], env: dict[str, str], cwd: Path, out: Path, err: Path,
                   memory_cap: int | None) -> None:
    from loss_conformance.cli import main

    if memory_cap is not None:
        import resource

        # Added to what the process holds, not absolute: a pytest worker late in a session holds
        # gigabytes of address space already, and a cap below that fails the first allocation.
        cap = _address_space() + memory_cap
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path[:0] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]  # as a new interpreter would
    for fd, path in ((1, out), (2, err)):  # the descriptors too: faulthandler and child processes write there
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)  # noqa: SIM115
    sys.argv = ["loss-conformance", *args]
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _address_space() -> int:
    """This process's virtual memory size in bytes (Linux's VmSize)."""
    with open("/proc/self/status", encoding="ascii") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    return kib << 10


def test_healthy_run_exits_0_and_writes_reports(tmp_path):
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    done = cli("run", "--loss", "l1_loss", *FAST, "--json", str(report), "--junit", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(report.read_text())
    assert data["format"] == "loss-conformance-report" and data["version"] == 1
    assert set(data["timings"]) >= {"total_s", "backend_s", "reference_s"}
    assert data["timings"]["total_s"] >= data["timings"]["backend_s"] + data["timings"]["reference_s"] - 1e-6
    checks = {(r["check"], r["reduction"], r["dtype"]) for r in data["records"]}
    assert {("forward", "mean", "float64"), ("backward", "sum", "float64"), ("gradcheck", "none", "float64"),
            ("examples", "*", "*"), ("properties", "*", "float64")} <= checks
    for record in data["records"]:
        assert {"loss", "check", "reduction", "dtype", "device", "status", "backend"} <= set(record)
        # With five examples, every one may fall on a kink of |d|, where second derivatives are not
        # specified: jvp_of_grad then has nothing to check, and says so.
        assert record["status"] == "pass" or (record["check"] == "jvp_of_grad" and record["status"] == "skipped"
                                              and "smooth_when" in record["message"]), record
    suites = ET.parse(junit).getroot()
    assert suites.tag == "testsuites"
    assert sum(int(s.get("tests")) for s in suites) == len(data["records"])
    assert "l1_loss" in done.stdout and "checks:" in done.stdout


def test_nonconforming_backend_exits_1_with_counterexample_and_snippet(tmp_path):
    report = tmp_path / "r.json"
    done = cli("run", "--backend", "tests.sample_backends:broken_l1", "--loss", "l1_loss", *FAST,
               "--counterexamples", "1", "--no-torch-baseline", "--json", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    failures = [r for r in json.loads(report.read_text())["records"] if r["status"] == "fail"]
    forward = next(r for r in failures if r["check"] == "forward")
    assert forward["reduction"] == "mean"
    assert forward["counterexample"]["inputs"]["input"]["values"] is not None
    assert isinstance(forward["seed"], int)
    assert "FAIL" in done.stdout and "reproduce with:" in done.stdout
    # The snippet replays the counterexample on its own and shows the two values apart.
    replay = subprocess.run([sys.executable, "-c", forward["reproduce"]], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert replay.returncode == 0, replay.stderr
    actual = replay.stdout.split("actual:")[1].split("\n")[0].strip()
    expected = replay.stdout.split("expected:")[1].split("\n")[0].strip()
    assert actual != expected


def test_missing_functions_are_not_implemented_not_failures(tmp_path):
    report = tmp_path / "r.json"
    done = cli("run", "--backend", "tests.sample_backends:only_mse", "--loss", "l1_loss", "mse_loss", *FAST,
               "--no-torch-baseline", "--json", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = {(r["loss"], r["status"]) for r in json.loads(report.read_text())["records"]}
    assert ("l1_loss", "not_implemented") in statuses and ("mse_loss", "pass") in statuses
    assert not any(loss == "l1_loss" and status != "not_implemented" for loss, status in statuses)


def test_backend_from_environment_and_torch_baseline(tmp_path):
    report = tmp_path / "r.json"
    done = cli("run", "--loss", "l1_loss", *FAST, "--check", "forward", "--json", str(report),
               env={"LOSS_CONFORMANCE_BACKEND": "tests.sample_backends:broken_l1"})
    assert done.returncode == 1
    data = json.loads(report.read_text())
    assert data["run"]["backend"] == "tests.sample_backends:broken_l1"
    assert {r["backend"] for r in data["records"]} == {"tests.sample_backends:broken_l1", "torch.nn.functional"}
    assert all(r["status"] == "pass" for r in data["records"] if r["backend"] == "torch.nn.functional")


def test_known_deviations_file_turns_a_failure_into_a_known_deviation(tmp_path):
    accepted = tmp_path / "deviations.yaml"
    accepted.write_text(
        "format: 1\n"
        "deviations:\n"
        "  - loss: l1_loss\n"
        "    backends: [tests.sample_backends:broken_l1]\n"
        "    checks: [forward]\n"
        "    reason: our mean is a sum, on purpose\n")
    report = tmp_path / "r.json"
    done = cli("run", "--backend", "tests.sample_backends:broken_l1", "--loss", "l1_loss", *FAST,
               "--check", "forward", "--no-torch-baseline", "--known-deviations", str(accepted),
               "--json", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    statuses = {r["reduction"]: r["status"] for r in json.loads(report.read_text())["records"]}
    assert statuses == {"none": "pass", "mean": "known_deviation", "sum": "pass"}
    assert "known deviation: tests.sample_backends:broken_l1 l1_loss: our mean is a sum, on purpose" in done.stdout


@pytest.mark.parametrize("args, needle", [
    (["run", "--loss", "no_such_loss"], "unknown loss"),
    (["run", "--backend", "no_such_module_xyz"], "cannot import backend"),
    (["run", "--backend", "tests.sample_backends:nope"], "has no attribute"),
    (["run", "--max-examples", "0"], "--max-examples"),
    (["validate", "/nonexistent/spec.yaml"], "cannot read"),
])
def test_configuration_errors_exit_2(args, needle):
    done = cli(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert needle in done.stderr


def test_bad_known_deviations_file_exits_2_naming_line_and_field(tmp_path):
    bad = tmp_path / "dev.yaml"
    bad.write_text("format: 1\ndeviations:\n  - loss: l1_loss\n    checks: [forward]\n    reason: r\n"
                   "    when: \"x.__class__\"\n")
    done = cli("run", "--loss", "l1_loss", "--known-deviations", str(bad))
    assert done.returncode == 2
    assert f"{bad}:6" in done.stderr and "deviations[0].when" in done.stderr


def test_usage_error_from_argparse_exits_2():
    assert cli("run", "--device", "tpu").returncode == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_a_device_is_a_configuration_error():
    done = cli("run", "--device", "cuda", "--loss", "l1_loss")
    assert done.returncode == 2 and "CUDA" in done.stderr


def test_help_tells_the_contract():
    text = cli("run", "--help").stdout
    for option in ("--backend", "--loss", "--device", "--dtype", "--profile", "--max-examples", "--seed",
                   "--json", "--junit", "--known-deviations"):
        assert option in text
    assert "Exit status" in cli("--help").stdout


def test_progress_goes_to_stderr_and_quiet_silences_it():
    loud = cli("run", "--loss", "mse_loss", *FAST, "--check", "examples")
    quiet = cli("run", "--loss", "mse_loss", *FAST, "--check", "examples", "--quiet")
    assert "mse_loss" in loud.stderr and quiet.stderr == ""


def test_console_script_and_module_are_the_same_program():
    script = Path(sys.executable).with_name("loss-conformance")
    if not script.exists():
        pytest.skip("console script not installed next to this interpreter")
    done = subprocess.run([str(script), "list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == fresh_cli("list").stdout


def test_worked_example_numpy_backend_conforms():
    done = cli("run", "--backend", "numpy_losses", "--loss", "l1_loss", "mse_loss", *FAST, "--no-torch-baseline",
               cwd=ROOT / "examples")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped" in done.stdout  # gradients of a NumPy backend are not checked
