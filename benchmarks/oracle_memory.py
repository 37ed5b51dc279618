"""Peak memory of the float64 oracle on one case of the large check, in chunks and in one piece.

    python -m benchmarks.oracle_memory [--loss NAME ...] [--seed N] [--reduction sum]

Each loss runs in a fresh process per mode: the case is drawn (as the large check draws it, in
float32), then the oracle computes the values and magnitudes of every reduction and the
vector-Jacobian product of one; the figure is the process's peak resident memory beyond what it
held once the case was drawn (inputs, interpreter, torch), so it is the oracle's own.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

DEFAULT_LOSSES = ("cross_entropy", "mse_loss", "triplet_margin_loss", "multilabel_margin_loss")


def measure(loss: str, seed: int, reduction: str, chunked: bool) -> dict[str, float]:
    """Run in the child: the oracle's peak beyond the drawn case, in MiB, and its seconds."""
    import warnings

    import numpy as np
    import torch
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    from loss_conformance.oracle import Oracle
    from loss_conformance.strategies import case_strategy
    from loss_conformance.timing import Timings
    from loss_conformance_reference import shipped_specs
    from loss_conformance_reference.chunks import CHUNK_ELEMENTS

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    spec = shipped_specs()[loss]
    drawn = []

    @hypothesis_seed(seed)
    @settings(max_examples=1, deadline=None, database=None, phases=["generate"], suppress_health_check=list(HealthCheck))
    @given(case=case_strategy(spec, "float32", reduction, large=True))
    def draw(case):
        drawn.append(case)

    draw()
    case = drawn[0]
    before = _peak_mib()
    oracle = Oracle(spec, "cpu", Timings(), chunk_elements=CHUNK_ELEMENTS if chunked else None)
    start = time.perf_counter()
    outputs, _ = oracle.forward(case, spec.reductions)
    variant = spec.variant(case.variant)
    wrt = tuple(n for n in variant.differentiable if case.inputs.get(n) is not None)
    cotangent = np.ones(np.shape(outputs[reduction]))
    oracle.vjp(case, reduction, cotangent, wrt)
    seconds = time.perf_counter() - start
    largest = max(v.size for v in case.inputs.values() if v is not None)
    return {"peak_mib": _peak_mib() - before, "seconds": seconds, "elements": float(largest)}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", nargs="+", default=list(DEFAULT_LOSSES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reduction", default="sum")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.seed, args.reduction, args.child[1] == "chunks")))
        return
    print(f"{'loss':<28}{'elements':>12}{'one piece MiB':>15}{'s':>7}{'chunks MiB':>12}{'s':>7}")
    for loss in args.loss:
        row = []
        for mode in ("whole", "chunks"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.oracle_memory", "--seed", str(args.seed),
                                  "--reduction", args.reduction, "--child", loss, mode],
                                 capture_output=True, text=True, check=True)
            row.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{loss:<28}{int(row[0]['elements']):>12}{row[0]['peak_mib']:>15.0f}{row[0]['seconds']:>7.1f}"
              f"{row[1]['peak_mib']:>12.0f}{row[1]['seconds']:>7.1f}")


if __name__ == "__main__":
    main()
