"""How much of each spec's tolerance an implementation uses, per loss and dtype, forward and gradient.

    python -m benchmarks.half_precision [--backend torch.nn.functional] [--dtype float16 bfloat16]
                                        [--seeds 10] [--examples 50] [--loss ...]

Each loss × reduction × dtype draws ``--examples`` cases on each of ``--seeds`` seeds, calls the
backend in this process and compares with the float64 oracle exactly as the forward and backward
checks do, printing the worst error as a fraction of the tolerance (1.0: at the limit; inf: a NaN
or inf where the oracle has none, or the reverse). "no kernel" says torch's dispatch error came
back. The checks' verdicts come from ``loss-conformance run``; this prints the margin behind them.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from hypothesis import HealthCheck, given, seed as hseed, settings

from loss_conformance.backends import load_backend
from loss_conformance.checks import gradient_scale, gradient_terms
from loss_conformance.compare import error_ratio
from loss_conformance.deviations import applicable, matching, reads_bindings
from loss_conformance.execution import Request, execute
from loss_conformance.oracle import Oracle
from loss_conformance.precision import casts, missing_kernel
from loss_conformance.strategies import case_strategy
from loss_conformance.timing import Timings
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.model import LossSpec

COTANGENT = np.array([1.0, -1.0, 0.5, 2.0, -0.25])


def measure(spec: LossSpec, backend, dtype: str, seeds: int, examples: int) -> dict[str, object]:
    """Worst forward and gradient error ratios over every reduction, and the kernels found missing."""
    oracle = Oracle(spec, "cpu", Timings())
    worst = {"forward": 0.0, "gradient": 0.0}
    where: dict[str, object] = {}
    missing: set[str] = set()
    rng = np.random.default_rng(0)
    excused = {check: applicable(spec, backend.name, check, dtype) for check in ("forward", "backward")}

    bound = reads_bindings(excused["forward"] + excused["backward"], spec.variants)

    def deviates(check: str, case) -> bool:  # a recorded known deviation: not the tolerance's business
        return bool(excused[check]) and matching(excused[check], lambda: {
            **oracle.env(case, bindings=bound), **case.input_scope(spec.variant(case.variant).inputs),
            "dtype": dtype, "device": "cpu"}) is not None
    for reduction in spec.reductions:
        strategy = case_strategy(spec, dtype, reduction, backend.accepts(spec))
        for s in range(seeds):
            @hseed(s)
            @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
            @given(strategy)
            def probe(case):
                with np.errstate(all="ignore"):
                    expected, magnitude = oracle.forward(case, (reduction,))
                    want = expected[reduction]
                    variant = spec.variant(case.variant)
                    wrt = tuple(n for n in variant.differentiable if case.inputs.get(n) is not None)
                    cot = rng.choice(COTANGENT, size=want.shape)
                    case.cotangent = cot
                    reply = execute(backend, spec, Request("call", spec.id, case.inputs, case.params, "cpu", wrt, cot,
                                                           casts(case.inputs, dtype)))
                    for raised in (reply.raised, reply.grad_raised):
                        if (kernel := missing_kernel(raised, dtype)) is not None:
                            missing.add(kernel)
                            return
                    if reply.raised and deviates("forward", case):
                        return  # a recorded known deviation that raises (a margin of 0 refused)
                    if reply.raised or reply.output is None or reply.output.values is None:
                        worst["forward"] = np.inf
                        where["forward"] = (reduction, reply.raised, case.describe())
                        return
                    ratio = error_ratio(reply.output.values, want, dtype, spec.tolerance[dtype], magnitude[reduction])
                    if ratio > 1 and deviates("forward", case):
                        ratio = 0.0
                    if ratio > worst["forward"]:
                        worst["forward"], where["forward"] = ratio, (reduction, case.describe())
                    if not wrt or not reply.grads:
                        return
                    grads = oracle.vjp(case, reduction, cot, wrt)
                    # atol scaled as the backward check scales it: by the gradient's largest element
                    # and the size of the terms it sums, where the spec states it
                    tol = spec.grad_tolerance[dtype]
                    terms = gradient_terms(oracle, case, reduction, cot)
                    for name in wrt:
                        got = reply.grads.get(name)
                        values = got.values if got is not None else np.zeros(np.shape(case.inputs[name]))
                        ratio = error_ratio(values, grads[name], dtype, tol,
                                            max(gradient_scale(grads[name], tol), terms))
                        if ratio > 1 and deviates("backward", case):
                            ratio = 0.0
                        if ratio > worst["gradient"]:
                            worst["gradient"], where["gradient"] = ratio, (reduction, name, case.describe())
            probe()
    return {**worst, "missing": missing, "where": where}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch.nn.functional")
    parser.add_argument("--dtype", nargs="+", default=["float16", "bfloat16"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--examples", type=int, default=50, help="examples per seed and reduction")
    parser.add_argument("--loss", nargs="+")
    parser.add_argument("--verbose", action="store_true", help="print the worst case of each row")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    backend = load_backend(args.backend)
    specs = shipped_specs()
    selected = [specs[n] for n in args.loss] if args.loss else list(specs.values())
    print(f"backend {args.backend}: worst error / tolerance over {args.seeds} seeds x {args.examples} examples "
          f"per reduction")
    print(f"{'loss':<36}{'dtype':<10}{'fwd rtol':>9}{'fwd atol':>9}{'worst':>8}{'grad rtol':>10}{'grad atol':>10}"
          f"{'worst':>8}")
    for spec in selected:
        for dtype in args.dtype:
            if dtype not in spec.tolerance:
                print(f"{spec.id:<36}{dtype:<10}  no tolerance in the spec")
                continue
            result = measure(spec, backend, dtype, args.seeds, args.examples)
            fwd, grad = spec.tolerance[dtype], spec.grad_tolerance[dtype]
            if result["missing"] and not result["forward"]:
                print(f"{spec.id:<36}{dtype:<10}  no kernel: {', '.join(sorted(result['missing']))}")
                continue
            print(f"{spec.id:<36}{dtype:<10}{fwd.rtol:>9.1e}{fwd.atol:>9.1e}{result['forward']:>8.3f}"
                  f"{grad.rtol:>10.1e}{grad.atol:>10.1e}{result['gradient']:>8.3f}"
                  + (f"  (no kernel on some: {', '.join(sorted(result['missing']))})" if result["missing"] else ""))
            if args.verbose:
                for what, detail in result["where"].items():
                    print(f"    worst {what}: {str(detail)[:600]}")


if __name__ == "__main__":
    main()
