"""Wall time of the default run, per loss, with examples per second and where the time goes.

    python -m benchmarks.run_time [--backend NAME] [--profile ci] [--device cpu] [--loss ...]
    python -m benchmarks.run_time --jobs 2 auto [--loss ...]

With ``--jobs``, instead of the table per loss: the whole run through the command line, serial and
then with each ``--jobs`` value, back to back (a shared machine is noisy: compare the ratios), with
wall time, speed-up, the shares of process time, and whether the records equal the serial run's.

Speed targets live here, not in timed tests: the figures are for ratios measured in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from loss_conformance.backends import load_backend
from loss_conformance.profiles import PROFILES
from loss_conformance.records import FAILING
from loss_conformance.planning import plan
from loss_conformance.runner import Runner
from loss_conformance.timing import Timings
from loss_conformance_reference import shipped_specs

TARGET_S = 180.0  # the default run over every loss on a 2-core machine
# Issue "Speed": the default run on an idle 2-core machine, serial and with --jobs auto; the harness's share.
TARGET_SERIAL_S, TARGET_JOBS_S, TARGET_HARNESS = 45.0, 30.0, 0.25
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch.nn.functional")
    parser.add_argument("--profile", default="ci", choices=tuple(PROFILES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loss", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, as the CLI's default")
    parser.add_argument("--jobs", nargs="+", metavar="N|auto",
                        help="compare the whole run through the CLI, serial and with each of these --jobs values")
    args = parser.parse_args()
    if args.jobs:
        compare_jobs(args)
        return
    torch.set_num_threads(args.threads)
    specs = shipped_specs()
    selected = [specs[n] for n in args.loss] if args.loss else list(specs.values())
    profile = PROFILES[args.profile]
    print(f"backend {args.backend}, profile {profile.name} ({profile.max_examples} examples per check), "
          f"device {args.device}, seed {args.seed}")
    print(f"{'loss':<36}{'checks':>7}{'examples':>10}{'seconds':>9}{'ex/s':>8}{'backend':>9}{'reference':>10}"
          f"{'harness':>9}")
    totals: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    for spec in selected:
        timings = Timings()
        with Runner(specs, load_backend(args.backend), profile.max_examples, args.seed, timings) as runner:
            records = runner.run(plan([spec], ["float32", "float64"], [args.device]))
        t = timings.as_dict()
        examples = sum(r.examples for r in records)
        bad = sum(r.status in FAILING for r in records)
        share = {k: t[f"{k}_s"] / t["total_s"] for k in ("backend", "reference", "harness")}
        print(f"{spec.id:<36}{len(records):>7}{examples:>10}{t['total_s']:>9.2f}{examples / t['total_s']:>8.0f}"
              f"{share['backend']:>9.0%}{share['reference']:>10.0%}{share['harness']:>9.0%}"
              + (f"  ({bad} failing)" if bad else ""))
        for key in ("total_s", "backend_s", "reference_s", "harness_s"):
            totals[key] += t[key]
        totals["examples"] += examples
    wall = time.perf_counter() - started
    print(f"{'all':<36}{'':>7}{int(totals['examples']):>10}{wall:>9.2f}{totals['examples'] / wall:>8.0f}"
          f"{totals['backend_s'] / totals['total_s']:>9.0%}{totals['reference_s'] / totals['total_s']:>10.0%}"
          f"{totals['harness_s'] / totals['total_s']:>9.0%}")
    print(f"target: under {TARGET_S:.0f} s for every loss on 2 cores: {'met' if wall < TARGET_S else 'MISSED'}")


def _cli_run(args: argparse.Namespace, jobs: str, report: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "loss_conformance", "run", "--backend", args.backend, "--profile", args.profile,
               "--device", args.device, "--seed", str(args.seed), "--threads", str(args.threads), "--jobs", jobs,
               "--quiet", "--json", str(report), *(["--loss", *args.loss] if args.loss else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    return wall, json.loads(report.read_text())


def _untimed_records(report: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "finished_at_s")} for r in report["records"]]


def _differing(serial: dict, other: dict) -> list[str]:
    """The records of ``other`` unlike the serial run's: key, statuses, and whether an unstable
    deviation (uninitialised memory) is involved."""
    out = []
    for a, b in zip(_untimed_records(serial), _untimed_records(other)):
        if a != b:
            unstable = any((r.get("deviation") or {}).get("unstable") for r in (a, b))
            out.append(f"{a['loss']} {a['check']} {a['reduction']} {a['dtype']}: {a['status']} -> {b['status']}"
                       + (" (unstable deviation)" if unstable else ""))
    if len(serial["records"]) != len(other["records"]):
        out.append(f"{len(serial['records'])} records -> {len(other['records'])}")
    return out


def compare_jobs(args: argparse.Namespace) -> None:
    """The run serial, then with each --jobs value: wall time (the process's, startup included), the
    speed-up over serial, the shares of process time, and whether the records are the serial run's."""
    print(f"backend {args.backend}, profile {args.profile}, device {args.device}, seed {args.seed}, "
          f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'jobs':<8}{'wall s':>8}{'speed-up':>10}{'process s':>11}{'backend':>9}{'reference':>10}{'harness':>9}"
          f"  records")
    with tempfile.TemporaryDirectory(prefix="run-time-jobs-") as tmp:
        serial_wall, serial = _cli_run(args, "1", Path(tmp) / "serial.json")
        rows = [("1", serial_wall, serial)] + [(j, *_cli_run(args, j, Path(tmp) / f"jobs-{j}.json")) for j in args.jobs]
    differing: list[str] = []
    for jobs, wall, report in rows:
        t = report["timings"]
        changed = _differing(serial, report)
        same = "serial run's" if not changed else f"DIFFER in {len(changed)}"
        differing += [f"  --jobs {jobs}: {line}" for line in changed]
        print(f"{jobs:<8}{wall:>8.1f}{serial_wall / wall:>9.2f}x{t['total_s']:>11.1f}{t['backend_s'] / t['total_s']:>9.0%}"
              f"{t['reference_s'] / t['total_s']:>10.0%}{t['harness_s'] / t['total_s']:>9.0%}  {same}")
    if differing:
        print("records that differ from the serial run's (a deviation marked unstable flips by chance):")
        print("\n".join(differing))
    share = serial["timings"]["harness_s"] / serial["timings"]["total_s"]
    auto = next((wall for jobs, wall, _ in rows if jobs == "auto"), None)
    print(f"targets on an idle 2-core machine: serial under {TARGET_SERIAL_S:.0f} s "
          f"({'met' if serial_wall < TARGET_SERIAL_S else 'MISSED'}), harness under {TARGET_HARNESS:.0%} of the "
          f"serial run ({'met' if share < TARGET_HARNESS else 'MISSED'})"
          + (f", --jobs auto under {TARGET_JOBS_S:.0f} s ({'met' if auto < TARGET_JOBS_S else 'MISSED'})"
             if auto is not None else ""))


if __name__ == "__main__":
    main()
