"""``loss-conformance``: run the suite against a backend and report per loss, reduction, dtype."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

import torch

from conformance import __version__
from conformance.backends import DEFAULT, ENV_VAR, Backend, BackendError, load_backend
from conformance.profiles import DEFAULT_PROFILE, PROFILES, run_seed
from conformance.progress import Progress
from conformance.records import FAILING, Record
from conformance.report import build_report, render_summary, write_json, write_junit
from conformance.runner import CHECK_NAMES, Runner, plan
from conformance.timing import Timings
from reference_impl.errors import SpecError
from reference_impl.loader import load_deviations, load_spec
from reference_impl.model import FLOAT_DTYPES, LossSpec

EXIT_OK, EXIT_NONCONFORMING, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or configuration: exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loss-conformance",
        description="Property-based conformance checks of loss functions against their YAML specs.",
        epilog="Exit status: 0 every check conforms (known deviations included), 1 a check failed or "
               "errored, 2 usage or configuration error (unknown loss, bad spec file, backend that "
               "cannot be imported).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="check a backend against the specs",
                         description="Check a backend against the specs. Without --loss every specified "
                                     "loss is checked; torch.nn.functional is checked in the same run "
                                     "unless it is the backend or --no-torch-baseline is given.")
    run.add_argument("--backend", metavar="SPEC",
                     help=f"'module', 'module:attr', an entry point name, 'torch.nn', 'reference' or "
                          f"'{DEFAULT}' (default: ${ENV_VAR}, else {DEFAULT})")
    run.add_argument("--loss", nargs="+", metavar="NAME", help="losses to check (default: all)")
    run.add_argument("--device", choices=("cpu", "cuda", "all"), default="cpu",
                     help="device for the inputs (default: cpu; all = cpu and, if present, cuda)")
    run.add_argument("--dtype", nargs="+", metavar="NAME", default=["float32", "float64"],
                     choices=FLOAT_DTYPES, help="floating dtypes (default: float32 float64)")
    run.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                     help="; ".join(f"{p.name}: {p.max_examples} examples per check, {p.description}"
                                    for p in PROFILES.values()) + f" (default: {DEFAULT_PROFILE})")
    run.add_argument("--max-examples", type=int, metavar="N", help="examples per check (overrides the profile)")
    run.add_argument("--seed", type=int, metavar="N", help="seed of the run (printed in every report)")
    run.add_argument("--check", nargs="+", choices=CHECK_NAMES, metavar="CHECK",
                     help=f"checks to run (default: all of {', '.join(CHECK_NAMES)})")
    run.add_argument("--json", metavar="PATH", help="write the JSON report (one record per check) here")
    run.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    run.add_argument("--known-deviations", metavar="FILE",
                     help="YAML file of accepted deviations of your backend (see README)")
    run.add_argument("--no-torch-baseline", action="store_true",
                     help="do not also check torch.nn.functional in this run")
    run.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch CPU threads (default: 1; the examples are tiny, and more threads only add "
                          "synchronisation, which is slow on a busy machine)")
    run.add_argument("--quiet", action="store_true", help="no progress line")

    listing = sub.add_parser("list", help="list the specified losses")
    listing.add_argument("--verbose", action="store_true", help="show variants, reductions and parameters")

    validate = sub.add_parser("validate", help="validate spec files (exit 2 on the first bad one)")
    validate.add_argument("files", nargs="+", metavar="FILE")
    return parser


def _devices(choice: str) -> list[str]:
    if choice == "cpu":
        return ["cpu"]
    if not torch.cuda.is_available():
        if choice == "cuda":
            raise UsageError("--device cuda: no CUDA device is available to torch")
        return ["cpu"]
    return ["cuda"] if choice == "cuda" else ["cpu", "cuda"]


def _select(specs: dict[str, LossSpec], names: Sequence[str] | None) -> list[LossSpec]:
    if not names:
        return list(specs.values())
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise UsageError(f"unknown loss {', '.join(unknown)}; specified: {', '.join(specs)}")
    return [specs[n] for n in names]


def command_run(args: argparse.Namespace) -> int:
    from reference_impl import shipped_specs

    specs = dict(shipped_specs())
    if args.known_deviations:
        for loss, extra in load_deviations(args.known_deviations, specs).items():
            specs[loss] = dataclasses.replace(specs[loss], deviations=specs[loss].deviations + extra)
    selected = _select(specs, args.loss)
    devices = _devices(args.device)
    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError("--max-examples must be at least 1")
    if args.threads < 1:
        raise UsageError("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    profile = PROFILES[args.profile]
    seed = run_seed(profile, args.seed)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a backend module in the working directory imports, as with python -m
    try:
        backend = load_backend(args.backend)
        backends: list[Backend] = [backend]
        if backend.name != DEFAULT and not args.no_torch_baseline:
            backends.append(load_backend(DEFAULT))
    except BackendError as exc:
        raise UsageError(str(exc)) from exc
    checks = plan(selected, args.dtype, devices, args.check or CHECK_NAMES)
    timings = Timings()
    progress = Progress(enabled=not args.quiet)
    records: list[Record] = []
    for b in backends:
        runner = Runner(specs, b, args.max_examples or profile.max_examples, seed, timings,
                        progress=lambda i, n, cid, name=b.name: progress(i, n, cid, name))
        records += runner.run(checks)
    progress.finish()
    times = timings.as_dict()
    print(render_summary(records, times, seed))
    run_info = {"backend": backend.name, "backends": [b.name for b in backends], "profile": profile.name,
                "max_examples": args.max_examples or profile.max_examples, "seed": seed, "devices": devices,
                "dtypes": list(args.dtype), "losses": [s.id for s in selected], "torch_version": torch.__version__}
    if args.json:
        write_json(build_report(records, times, run_info), args.json)
    if args.junit:
        write_junit(records, args.junit)
    return EXIT_NONCONFORMING if any(r.status in FAILING for r in records) else EXIT_OK


def command_list(args: argparse.Namespace) -> int:
    from reference_impl import shipped_specs

    for spec in shipped_specs().values():
        print(f"{spec.id:<28} {spec.module.name:<24} {spec.summary}")
        if args.verbose:
            print(f"    variants: {', '.join(v.name for v in spec.variants)}; reductions: "
                  f"{', '.join(spec.reductions)}; parameters: {', '.join(spec.params)}")
    return EXIT_OK


def command_validate(args: argparse.Namespace) -> int:
    from conformance.callables import unknown_names

    for path in args.files:
        spec = load_spec(path)
        unknown = unknown_names(spec)
        if unknown:
            raise UsageError(f"{path}: callable parameter values not in the harness's registry: {', '.join(unknown)}")
        print(f"{path}: ok ({spec.id}, {len(spec.variants)} variant(s), {len(spec.examples)} example(s))")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = {"run": command_run, "list": command_list, "validate": command_validate}[args.command]
    try:
        return handler(args)
    except (UsageError, SpecError) as exc:
        print(f"loss-conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("loss-conformance: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
