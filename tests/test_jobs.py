"""``run --jobs N``: the records and reports of a serial run, with failures, crashes and timeouts
isolated as in one; a job that dies costs one check; signals leave a partial report; bad values are
usage errors."""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loss_conformance import jobs
from loss_conformance.cli_parser import build_parser
from loss_conformance.deviations import with_deviations
from loss_conformance.jobs import JobSettings, ParallelRun, available_cores, groups, parse_jobs
from loss_conformance.progress import Progress
from loss_conformance.planning import DEFAULT_CHECKS, plan
from loss_conformance.timing import PooledTimings
from loss_conformance.workers import BackendSource, SpecSource
from loss_conformance_reference import shipped_specs

from tests.helpers import assert_refused_option
from tests.test_cli import ROOT, cli

SPECS = shipped_specs()
# One broken backend of the catalogue (tests/broken), importable by name from the test's directory.
CATALOGUED = ("from tests.broken import catalogue\n"
              "backend = next(b for b in catalogue() if b.name == 'huber_divided_by_delta').backend_object()\n")
SMALL = ["--dtype", "float64", "--max-examples", "5", "--quiet"]
RUNS = {
    "broken": (["--backend", "catalogued:backend", "--loss", "huber_loss", "--check", "examples", "forward"], "fail"),
    "crashing": (["--backend", "tests.misbehaving:segfaults", "--loss", "mse_loss", "--check", "forward"], "crashed"),
    "hanging": (["--backend", "tests.misbehaving:hangs", "--loss", "mse_loss", "--check", "forward", "--timeout", "1"],
                "timeout"),
}


def _run(tmp_path: Path, name: str, jobs: str) -> tuple[int, dict, ET.Element]:
    args, _ = RUNS[name]
    report, junit = tmp_path / f"{name}-{jobs}.json", tmp_path / f"{name}-{jobs}.xml"
    done = cli("run", *args, *SMALL, "--jobs", jobs, "--json", str(report), "--junit", str(junit),
               env={"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"})
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode, json.loads(report.read_text()), ET.parse(junit).getroot()


def _untimed(report: dict) -> dict:
    drop = ("seconds", "finished_at_s")
    return {**{k: v for k, v in report.items() if k != "timings"},
            "records": [{k: v for k, v in r.items() if k not in drop} for r in report["records"]]}


def _untimed_junit(root: ET.Element) -> list[tuple[str, dict, str]]:
    return [(e.tag, {k: v for k, v in e.attrib.items() if k not in ("time", "timestamp")}, (e.text or "").strip())
            for e in root.iter()]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_jobs_give_the_serial_runs_reports(tmp_path, name):
    (tmp_path / "catalogued.py").write_text(CATALOGUED)
    serial_status, serial, serial_junit = _run(tmp_path, name, "1")
    status, parallel, junit = _run(tmp_path, name, "2")
    assert serial_status == status == 1
    assert {r["backend"] for r in serial["records"]} == {RUNS[name][0][1], "torch.nn.functional"}  # two backends
    assert any(r["status"] == RUNS[name][1] and r.get("counterexample") for r in serial["records"])
    # Records (their order, verdicts, seeds, counterexamples, snippets), summary and run: all the same.
    assert _untimed(parallel) == _untimed(serial)
    assert _untimed_junit(junit) == _untimed_junit(serial_junit)
    timings = parallel["timings"]
    assert timings["harness_s"] == pytest.approx(timings["total_s"] - timings["backend_s"] - timings["reference_s"],
                                                 abs=1e-3)
    assert serial["timings"]["wall_s"] == serial["timings"]["total_s"]


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5", "", "auto2"])
def test_bad_jobs_are_usage_errors(value, capsys):
    assert_refused_option("--jobs", value, parse_jobs, capsys)


def test_jobs_auto_is_the_available_cores():
    assert parse_jobs("auto") == available_cores() >= 1
    assert build_parser().parse_args(["run", "--jobs", "auto"]).jobs == available_cores()
    assert build_parser().parse_args(["run", "--jobs", "3"]).jobs == 3
    assert build_parser().parse_args(["run"]).jobs == 1


def test_groups_keep_a_groups_checks_together_in_plan_order():
    checks = plan([SPECS["l1_loss"], SPECS["mse_loss"]], ["float32", "float64"], ["cpu"], DEFAULT_CHECKS)
    work = [(b, cid) for b in (0, 1) for cid in checks]
    found = groups(work)
    assert sorted(p for g in found for p in g) == list(range(len(work)))
    for group in found:
        assert group == sorted(group) and len({(work[p][0], work[p][1].loss, work[p][1].check) for p in group}) == 1
    assert [g[0] for g in found] == sorted(g[0] for g in found)


def test_a_job_that_dies_costs_the_check_it_ran_and_the_run_goes_on():
    checks = plan([SPECS["l1_loss"]], ["float64"], ["cpu"], ("forward", "properties"))
    # The first call in each worker sleeps: the job is killed in the middle of the check it started,
    # not after a check so quick that its record was already sent.
    settings = JobSettings((BackendSource("tests.sample_backends:slow_to_start"),), SpecSource(SPECS), 3, 0)
    run = ParallelRun(settings, 2, ["torch.nn.functional"], PooledTimings())
    killed, records = [], []

    def kill_the_first(index, total, cid, name):
        if not killed:
            job = next(j for j in run._live.values() if j.current is not None)
            os.kill(job.process.pid, signal.SIGKILL)
            killed.append(cid)

    run.run([(0, cid) for cid in checks], records.append, kill_the_first)
    assert sorted((r.check_id() for r in records), key=checks.index) == checks  # each exactly once
    died = [r for r in records if r.check_id() == killed[0]]
    assert died[0].status == "error" and "job process running it died" in died[0].message
    assert all(r.status == "pass" for r in records if r.check_id() != killed[0])
    assert not run._live


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("signum, exit_status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_jobs_and_leaves_a_partial_report_in_plan_order(tmp_path, signum, exit_status):
    report = tmp_path / "r.json"
    env = {**{k: v for k, v in os.environ.items() if k != "LOSS_CONFORMANCE_BACKEND"}, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "loss_conformance", "run", "--max-examples", "30", "--jobs", "2",
                             "--json", str(report)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (report.exists() and len(json.loads(report.read_text())["records"]) > 2):
        time.sleep(0.2)
    spawned = _descendants(proc.pid)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == exit_status, err
    assert len(spawned) >= 4  # two jobs and their workers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(map(_gone, spawned)):
        time.sleep(0.1)
    assert all(map(_gone, spawned)), "a job or worker outlived the run"
    data = json.loads(report.read_text())
    assert data["complete"] is False and data["interrupted"] == signal.Signals(signum).name and data["records"]
    planned = [(c.loss, c.check, c.reduction, c.dtype, c.device)
               for c in plan(SPECS.values(), ["float32", "float64"], ["cpu"], DEFAULT_CHECKS)]
    got = [(r["loss"], r["check"], r["reduction"], r["dtype"], r["device"]) for r in data["records"]]
    assert got == sorted(got, key=planned.index) and len(set(got)) == len(got)
    assert f"interrupted by {signal.Signals(signum).name}" in err
    assert not [p for p in Path(tmp_path).iterdir() if p.name != "r.json"]  # no temporary file left


def test_progress_in_a_log_names_each_backend_and_loss_once_when_jobs_interleave():
    stream = io.StringIO()  # not a terminal: a line per backend and loss
    progress = Progress(stream)
    checks = plan([SPECS["l1_loss"], SPECS["mse_loss"]], ["float64"], ["cpu"], ("forward",))
    interleaved = [c for pair in zip(checks[:3], checks[3:]) for c in pair]
    for i, cid in enumerate(interleaved):
        progress(i, len(interleaved), cid, "torch.nn.functional")
    progress(len(interleaved), len(interleaved) + 1, checks[0], "other")
    assert stream.getvalue().splitlines() == ["[   1/6] torch.nn.functional l1_loss ...",
                                              "[   2/6] torch.nn.functional mse_loss ...", "[   7/7] other l1_loss ..."]


def test_spawned_jobs_load_the_specs_with_the_users_deviations_and_the_backend_by_name(tmp_path, monkeypatch):
    # Where jobs cannot be forked (macOS, CUDA already in use), they load what they need again.
    deviations = tmp_path / "deviations.yaml"
    deviations.write_text("format: 1\ndeviations:\n  - loss: l1_loss\n    backends: [tests.sample_backends:broken_l1]\n"
                          "    checks: [forward]\n    reason: accepted for this test\n")
    specs = with_deviations(dict(SPECS), str(deviations))
    monkeypatch.setattr(jobs, "process_context", lambda: multiprocessing.get_context("spawn"))
    checks = plan([SPECS["l1_loss"]], ["float64"], ["cpu"], ("forward",))
    settings = JobSettings((BackendSource("tests.sample_backends:broken_l1"),), SpecSource(specs, str(deviations)), 3, 0)
    records = []
    ParallelRun(settings, 2, ["broken_l1"], PooledTimings()).run([(0, cid) for cid in checks], records.append)
    statuses = {r.reduction: r.status for r in records}
    assert statuses == {"none": "pass", "mean": "known_deviation", "sum": "pass"}, [r.message for r in records]
