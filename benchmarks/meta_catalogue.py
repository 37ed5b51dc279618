"""For each broken backend of the catalogue: flagged or not, where, and how long until the first
failure (its loss's checks run first, so the time counts from the start of the run).

    python -m benchmarks.meta_catalogue [--seeds 0 1 2] [--max-examples 30]
"""
from __future__ import annotations

import argparse

import torch

from conformance.backends import FunctionalBackend
from conformance.records import FAILING
from conformance.runner import Runner, plan
from tests.broken import catalogue
from tests.helpers import inheriting_torch_deviations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-examples", type=int, default=30)
    parser.add_argument("--all-losses", action="store_true", help="also run every other loss after the mutated one")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the CLI's default
    print(f"{'broken backend':<34}{'loss':<34}{'bug class':<44}{'seed':>5}{'flagged':>9}{'first fail s':>13}"
          f"{'failing checks':>16}")
    missed = 0
    for broken in catalogue():
        for seed in args.seeds:
            specs = inheriting_torch_deviations(broken.name)
            order = sorted(specs.values(), key=lambda s: s.id != broken.loss)
            if not args.all_losses:
                order = order[:1]
            runner = Runner(specs, FunctionalBackend(broken.backend_object(), broken.name), args.max_examples, seed)
            records = runner.run(plan(order, ["float32", "float64"], ["cpu"]))
            failing = [r for r in records if r.status in FAILING]
            first = min((r.finished_at_s for r in failing), default=float("nan"))
            elsewhere = {r.loss for r in failing} - {broken.loss}
            missed += not failing
            print(f"{broken.name:<34}{broken.loss:<34}{broken.bug_class:<44}{seed:>5}{'yes' if failing else 'NO':>9}"
                  f"{first:>13.2f}{len(failing):>16}" + (f"  also flagged: {sorted(elsewhere)}" if elsewhere else ""))
    print(f"missed: {missed}")


if __name__ == "__main__":
    main()
