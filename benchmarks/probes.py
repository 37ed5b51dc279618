"""The probes of a trustworthy verdict: misbehaving backends, useless selections, bad report
paths, signals and hostile files, each run through the CLI as a user would. For each: exit status,
wall time, peak memory of the run (the CLI and its workers) and what the JSON report holds.

    python -m benchmarks.probes [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "tests" / "hostile"
FAST = ["--max-examples", "5", "--dtype", "float64", "--no-torch-baseline"]

# name -> (arguments after `run`/`validate`, signal to send once the report has a record, or None)
PROBES: dict[str, tuple[list[str], int | None]] = {
    "backend sys.exit(0) in a call": (["run", "--backend", "tests.misbehaving:sys_exit_0", "--loss", "mse_loss", "l1_loss", *FAST], None),
    "backend os._exit(0) in a call": (["run", "--backend", "tests.misbehaving:os_exit_0", "--loss", "mse_loss", "l1_loss", *FAST], None),
    "backend os._exit(0) on import": (["run", "--backend", "tests.backend_exits_on_import", *FAST], None),
    "backend segfaults in a call": (["run", "--backend", "tests.misbehaving:segfaults", "--loss", "mse_loss", "l1_loss", *FAST], None),
    "backend segfaults on import": (["run", "--backend", "tests.backend_segfaults_on_import", *FAST], None),
    "backend hangs (--timeout 2)": (["run", "--backend", "tests.misbehaving:hangs", "--loss", "mse_loss", "l1_loss", "--check", "forward", "--timeout", "2", *FAST], None),
    "backend nondeterministic": (["run", "--backend", "tests.misbehaving:nondeterministic", "--loss", "mse_loss", *FAST], None),
    "backend mutates its target": (["run", "--backend", "tests.misbehaving:mutates_target", "--loss", "mse_loss", *FAST], None),
    "backend aliases its input": (["run", "--backend", "tests.misbehaving:aliases_input", "--loss", "mse_loss", *FAST], None),
    "--backend torch.nn.functional:mse_loss": (["run", "--backend", "torch.nn.functional:mse_loss", "--max-examples", "5"], None),
    "--dtype float16": (["run", "--loss", "mse_loss", "--dtype", "float16", "--max-examples", "5"], None),
    "--json in a missing directory": (["run", "--json", "{tmp}/missing/r.json"], None),
    "SIGINT during a run": (["run", "--max-examples", "30"], signal.SIGINT),
    "SIGTERM during a run": (["run", "--max-examples", "30"], signal.SIGTERM),
    "when that raises (--known-deviations)": (["run", "--loss", "l1_loss", "--max-examples", "3", "--no-torch-baseline", "--known-deviations", str(HOSTILE / "deviations_when_raises.yaml")], None),
    "10 ** 10 ** 10 in when (--known-deviations)": (["run", "--loss", "l1_loss", "--max-examples", "3", "--no-torch-baseline", "--known-deviations", str(HOSTILE / "deviations_when_power_tower.yaml")], None),
    "YAML alias bomb (validate)": (["validate", str(HOSTILE / "yaml_alias_bomb.yaml")], None),
    "1,000-deep YAML (validate)": (["validate", str(HOSTILE / "yaml_deep_nesting.yaml")], None),
    "5,000-term formula (validate)": (["validate", str(HOSTILE / "formula_5000_terms.yaml")], None),
    "5,000-digit integer (validate)": (["validate", str(HOSTILE / "yaml_int_5000_digits.yaml")], None),
    "10 ** 10 ** 10 (validate)": (["validate", str(HOSTILE / "formula_power_tower.yaml")], None),
    "'a' * 10**10 (validate)": (["validate", str(HOSTILE / "formula_string_repeat.yaml")], None),
    "dims of 10**9 (validate)": (["validate", str(HOSTILE / "dims_giant_max.yaml")], None),
    "atol: .inf (validate)": (["validate", str(HOSTILE / "tolerance_atol_inf.yaml")], None),
}


def _report_summary(path: Path) -> str:
    if not path.exists():
        return "no report"
    data = json.loads(path.read_text())
    counts = {k: v for k, v in data["summary"].items() if v}
    return f"complete={str(data['complete']).lower()} " + " ".join(f"{k}={v}" for k, v in counts.items())


def _tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (the CLI and its workers), from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def run_probe(args: list[str], signum: int | None, tmp: Path) -> tuple[int, float, float, str, str]:
    report = tmp / "r.json"
    report.unlink(missing_ok=True)
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    if args[0] == "run" and "--json" not in args:
        args += ["--json", str(report)]
    env = {**{k: v for k, v in os.environ.items() if k != "LOSS_CONFORMANCE_BACKEND"}, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "loss_conformance", *args], cwd=ROOT, env=env, stdout=out,
                                stderr=err, text=True)
        sent = signum is None
        while proc.poll() is None:
            peak = max(peak, _tree_rss_mib(proc.pid))
            if not sent and report.exists() and json.loads(report.read_text() or '{"records": []}')["records"]:
                proc.send_signal(signum)
                sent = True
            time.sleep(0.05)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    last = (stderr.strip().splitlines() or [""])[-1] if proc.returncode in (2, 130, 143) else \
        next((line for line in stdout.splitlines() if line.startswith("verdict:")), "")
    return proc.returncode, wall, peak, _report_summary(report), last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="probes whose name contains one of these")
    args = parser.parse_args()
    print("| probe | exit | wall s | peak MiB | report | last line |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (argv, signum) in PROBES.items():
            if args.only and not any(part in name for part in args.only):
                continue
            code, wall, peak, report, last = run_probe(argv, signum, Path(tmp))
            print(f"| {name} | {code} | {wall:.1f} | {peak:.0f} | {report} | {last[:110]} |", flush=True)


if __name__ == "__main__":
    main()
