"""Wall time of the default run, per loss, with examples per second and where the time goes.

    python -m benchmarks.run_time [--backend NAME] [--profile ci] [--device cpu] [--loss ...]

Speed targets live here, not in timed tests: the figures are for ratios measured in one run.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from conformance.backends import load_backend
from conformance.profiles import PROFILES
from conformance.records import FAILING
from conformance.runner import Runner, plan
from conformance.timing import Timings
from reference_impl import shipped_specs

TARGET_S = 180.0  # the default run over every loss on a 2-core machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch.nn.functional")
    parser.add_argument("--profile", default="ci", choices=tuple(PROFILES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loss", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, as the CLI's default")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
