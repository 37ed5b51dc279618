"""For each broken backend of the catalogue and each seed: flagged or not, by which check, and how
long until the first failing record, its counterexample shrunk as a command-line run shrinks it.
Runs as ``tests/test_meta.py`` does otherwise (the backend's own loss, the generated checks only,
its examples per check, stopping at the first failing record), so more seeds or fewer examples than
the test's show its margin; ``--no-shrink`` times the unshrunk verdict that the meta-tests take;
``--with-examples`` adds the spec's worked examples, which flag many backends on every seed alike.

    python -m benchmarks.meta_catalogue [--seeds 0 1 2 3 4] [--max-examples 20] [--with-examples]
                                        [--only NAME ...] [--no-shrink]
"""
from __future__ import annotations

import argparse
import statistics
import time

import hypothesis
import torch

from loss_conformance.backends import FunctionalBackend
from loss_conformance.records import FAILING
from tests.broken import catalogue
from tests.helpers import run_suite
from tests.test_meta import BROKEN_EXAMPLES, BROKEN_SEEDS, GENERATED_CHECKS, checked_dtypes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(BROKEN_SEEDS))
    parser.add_argument("--max-examples", type=int, default=BROKEN_EXAMPLES)
    parser.add_argument("--with-examples", action="store_true", help="run the worked examples check first")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these broken backends only")
    parser.add_argument("--no-shrink", action="store_true",
                        help="stop at the first failing example, unshrunk, as tests/test_meta.py does (the default "
                             "shrinks it, as a command-line run does: the time to a reported failure)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the CLI's default
    checks = ["examples"] + list(GENERATED_CHECKS) if args.with_examples else list(GENERATED_CHECKS)
    print(f"hypothesis {hypothesis.__version__}, torch {torch.__version__}, {args.max_examples} examples per check, "
          f"seeds {args.seeds}, checks {' '.join(checks)}, {'unshrunk' if args.no_shrink else 'shrunk'}")
    print(f"{'broken backend':<34}{'loss':<34}{'seed':>5}{'flagged':>9}{'first fail s':>13}  first failing check")
    missed: dict[str, list[int]] = {}
    flagged_after: list[float] = []
    started = time.perf_counter()
    for broken in catalogue():
        if args.only and broken.name not in args.only:
            continue
        backend = FunctionalBackend(broken.backend_object(), broken.name)
        for seed in args.seeds:
            t0 = time.perf_counter()
            own = list(broken.checks) if broken.checks else checks  # a size-only bug: the large check
            records = run_suite(backend, losses=[broken.loss], seed=seed, max_examples=args.max_examples,
                                checks=own, dtypes=checked_dtypes(broken), stop_at_first_failure=True,
                                shrink=not args.no_shrink)
            seconds = time.perf_counter() - t0
            failing = [r for r in records if r.status in FAILING]
            if not failing:
                missed.setdefault(broken.name, []).append(seed)
            else:
                flagged_after.append(seconds)
            first = f"{failing[0].check} {failing[0].reduction} {failing[0].dtype} ({failing[0].status})" \
                if failing else ""
            print(f"{broken.name:<34}{broken.loss:<34}{seed:>5}{'yes' if failing else 'NO':>9}{seconds:>13.2f}  {first}",
                  flush=True)
    print(f"missed: {sum(len(s) for s in missed.values())} runs"
          + (f" ({', '.join(f'{n} seeds {s}' for n, s in missed.items())})" if missed else "")
          + f"; {time.perf_counter() - started:.0f} s")
    if flagged_after:  # issue "Speed": a median under 1 s and a maximum under 10 s
        print(f"time to the first failing record: median {statistics.median(flagged_after):.2f} s, "
              f"maximum {max(flagged_after):.2f} s, over {len(flagged_after)} flagged runs")


if __name__ == "__main__":
    main()
