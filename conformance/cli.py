"""``loss-conformance``: run the suite against a backend and report per loss, reduction, dtype."""
from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from loss_conformance.backends import DEFAULT, ENV_VAR, BackendError
from loss_conformance.capabilities import load_capabilities, module_capabilities
from loss_conformance.cli_parser import build_parser
from loss_conformance.profiles import PROFILES, run_seed
from loss_conformance.progress import Progress
from loss_conformance.records import Record
from loss_conformance.report import render_summary
from loss_conformance.report.commands import command_diff, command_merge, command_report
from loss_conformance.report.read import ReportInputError
from loss_conformance.report.writer import ReportPathError, ReportWriter
from loss_conformance.run_signals import Interrupted, RunSignals
from loss_conformance.planning import default_checks, plan
from loss_conformance.runner import Runner
from loss_conformance.snapshot.commands import command_snapshot
from loss_conformance.snapshot.fileformat import SnapshotError
from loss_conformance.jobs import JobSettings, ParallelRun, Work, groups
from loss_conformance.shards import select
from loss_conformance.timing import PooledTimings, Timings
from loss_conformance.warm import differentiates, warm_before_fork
from loss_conformance.verdict import EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, verdict
from loss_conformance.workers import IsolatedBackend, SpecSource
from loss_conformance_reference.catalogue import Catalogue, CatalogueError, user_spec_paths
from loss_conformance_reference.errors import SpecError
from loss_conformance_reference.loader import load_deviations
from loss_conformance_reference.model import LossSpec



class UsageError(Exception):
    """Bad arguments or configuration: exit status 2."""


def _catalogue(args: argparse.Namespace) -> Catalogue:
    """The shipped specs plus the user's (--spec, --spec-dir), loaded once, before any check runs."""
    try:
        catalogue = Catalogue.build(args.spec, args.spec_dir)
    except CatalogueError as exc:
        raise UsageError(str(exc)) from None
    for notice in catalogue.notices():
        print(f"loss-conformance: note: {notice}", file=sys.stderr)
    return catalogue


def _devices(choice: str) -> list[str]:
    if choice == "cpu":
        return ["cpu"]
    if not torch.cuda.is_available():
        if choice == "cuda":
            raise UsageError("--device cuda: no CUDA device is available to torch")
        return ["cpu"]
    return ["cuda"] if choice == "cuda" else ["cpu", "cuda"]


def _select(specs: Catalogue, names: Sequence[str] | None) -> list[LossSpec]:
    if not names:
        return list(specs.values())
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise UsageError(f"unknown loss {', '.join(unknown)}; specified: {', '.join(specs)}")
    return [specs[n] for n in names]


def _check_environment() -> None:
    """torch and NumPy must exchange arrays; a torch built against another NumPy cannot, and every
    check would fail the same way. One clear message instead of hundreds of errors."""
    import warnings

    import numpy as np

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.from_numpy(np.zeros(2)).numpy()
    except Exception as exc:  # noqa: BLE001 - whatever breaks here breaks every check
        raise UsageError(f"this environment cannot run checks: torch {torch.__version__} cannot exchange arrays "
                         f"with NumPy {np.__version__} ({type(exc).__name__}: {exc}); install a NumPy that this "
                         f"torch build supports (for a torch built against NumPy 1.x: pip install 'numpy<2')") from None


def _start_backends(args: argparse.Namespace, specs: Catalogue) -> list[IsolatedBackend]:
    """Load the backend (and the torch baseline) in worker processes: a backend that cannot be
    imported, or that crashes or exits while importing, is a configuration error before any check."""
    started: list[IsolatedBackend] = []
    try:
        started.append(IsolatedBackend(args.backend or os.environ.get(ENV_VAR) or DEFAULT, specs,
                                       threads=args.threads, timeout=args.timeout))
        if started[0].name != DEFAULT and not args.no_torch_baseline:
            started.append(IsolatedBackend(DEFAULT, specs, threads=args.threads, timeout=args.timeout))
    except BackendError as exc:
        for backend in started:
            backend.close()
        raise UsageError(str(exc)) from exc
    return started


def command_run(args: argparse.Namespace) -> int:
    _check_environment()
    specs = _catalogue(args)
    if args.known_deviations:
        specs = specs.with_deviations(load_deviations(args.known_deviations, specs))
    selected = _select(specs, args.loss)
    devices = _devices(args.device)
    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError("--max-examples must be at least 1")
    if args.threads < 1:
        raise UsageError("--threads must be at least 1")
    if args.counterexamples < 1:
        raise UsageError("--counterexamples must be at least 1")
    if not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    torch.set_num_threads(args.threads)
    profile = PROFILES[args.profile]
    seed = run_seed(profile, args.seed)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a backend module in the working directory imports, as with python -m
    checks = plan(selected, args.dtype, devices, args.check or default_checks(profile))
    max_examples = args.max_examples or profile.max_examples
    run_info = {"backend": None, "backends": [], "profile": profile.name, "max_examples": max_examples,
                "seed": seed, "devices": devices, "dtypes": list(args.dtype), "losses": [s.id for s in selected],
                "checks": list(args.check or default_checks(profile)), "timeout_s": args.timeout,
                "torch_version": torch.__version__, "inherit_torch_deviations": bool(args.inherit_torch_deviations),
                "user_specs": {loss: str(specs[loss].path) for loss in sorted(specs.user)}}
    full_plan = checks
    capabilities = load_capabilities(args.capabilities, specs) if args.capabilities else None
    if args.shard:
        planned, checks = len(checks), select(checks, args.shard)
        run_info["shard"] = {"index": args.shard.index, "count": args.shard.count, "checks": len(checks),
                             "planned": planned}
    timings: Timings | PooledTimings = Timings() if args.jobs == 1 else PooledTimings()
    writer = ReportWriter(args.json, args.junit, run_info, timings=timings.as_dict)
    try:
        writer.check_paths()
    except ReportPathError as exc:
        raise UsageError(str(exc)) from exc
    if differentiates(cid.check for cid in checks):
        warm_before_fork()  # before the workers (and the jobs) fork: each inherits it
    backends = _start_backends(args, specs)
    if not any(backends[0].implements(spec) for spec in selected):
        for baseline in backends[1:]:  # nothing of the backend to check: the baseline would only cost time
            baseline.close()
        backends = backends[:1]
    for baseline in backends[1:]:
        if not any(baseline.implements(spec) for spec in selected):  # a user's loss torch does not have
            baseline.close()
            backends.remove(baseline)
    run_info.update(backend=backends[0].name, backends=[b.name for b in backends])
    if capabilities is None and backends[0].capabilities is not None:
        try:
            capabilities = module_capabilities(backends[0].capabilities, backends[0].name, specs)
        except SpecError:
            for b in backends:
                b.close()
            raise
    checks_of = {b.name: checks for b in backends}
    unsupported: list[Record] = []
    if capabilities is not None:
        run_info["capabilities"] = capabilities.source
        checks_of[backends[0].name], _ = capabilities.split(checks, specs, backends[0].name, backends[0].implements)
        if not args.shard or args.shard.index == 1:  # one record per loss, in one shard
            _, unsupported = capabilities.split(full_plan, specs, backends[0].name, backends[0].implements)
    work: list[Work] = [(i, cid) for i in range(len(backends)) for cid in checks_of[backends[i].name]]
    position = {(backends[i].name, cid): n for n, (i, cid) in enumerate(work)}
    writer.order = lambda record: position.get((record.backend, record.check_id()), len(position))
    if not args.quiet:
        part = f" (shard {args.shard} of {run_info['shard']['planned']})" if args.shard else ""
        print(f"loss-conformance: {len(checks)} checks{part} x {len(backends)} backend(s) "
              f"({', '.join(run_info['backends'])}), seed {seed}, profile {profile.name}", file=sys.stderr, flush=True)
    progress = Progress(enabled=not args.quiet)
    interrupted: int | None = None
    with RunSignals() as signals:

        def finished(record: Record) -> None:
            writer.add(record)
            signals.check()

        try:
            for record in unsupported:
                finished(record)
            if isinstance(timings, PooledTimings):
                _run_jobs(args, specs, backends, work, max_examples, seed, timings, progress, finished, capabilities)
            else:
                for b in backends:
                    runner = Runner(_granted(args, specs, b is backends[0], b.name), b, max_examples, seed, timings,
                                    progress=lambda i, n, cid, name=b.name: progress(i, n, cid, name),
                                    cases_dir=Path(args.json + ".cases") if args.json else None,
                                    capabilities=capabilities if b is backends[0] else None,
                                    counterexamples=args.counterexamples)
                    runner.run(checks_of[b.name], on_record=finished)
        except (KeyboardInterrupt, Interrupted) as exc:
            interrupted = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        except SpecError:
            writer.finish(timings.as_dict(), complete=False)  # a deviation's `when` failed: keep what ran
            raise
        finally:
            for b in backends:
                b.close()
            progress.finish()
    records = writer.records
    times = timings.as_dict()
    print(render_summary(records, times, seed))
    writer.finish(times, complete=interrupted is None, interrupted=interrupted)
    if interrupted is not None:
        name = signal.Signals(interrupted).name
        print(f"loss-conformance: interrupted by {name} after {len(records)} of {len(checks) * len(backends)} checks"
              + (f"; partial report in {args.json}" if args.json else ""), file=sys.stderr)
        return EXIT_SIGINT if interrupted == signal.SIGINT else EXIT_SIGTERM
    status, reason = verdict(records, backends[0].name, args.dtype, devices)
    print(f"verdict: {reason} (exit status {status})")
    return status


def _granted(args: argparse.Namespace, specs: Catalogue, under_test: bool, name: str) -> Catalogue:
    """The catalogue a backend is checked against: with torch's deviations for the backend under test
    where --inherit-torch-deviations asks for them."""
    return specs.inheriting_torch_deviations(name) if args.inherit_torch_deviations and under_test else specs


def _run_jobs(args: argparse.Namespace, specs: Catalogue, backends: list[IsolatedBackend],
              work: list[Work], max_examples: int, seed: int, timings: PooledTimings, progress: Progress,
              finished: Callable[[Record], None], capabilities: Any = None) -> None:
    """``--jobs N``: the backends were started here to vet them; each job starts its own workers."""
    settings = JobSettings(tuple(b.source for b in backends), SpecSource(specs, args.known_deviations), max_examples,
                           seed, args.threads, args.timeout, args.json + ".cases" if args.json else None,
                           capabilities=capabilities, inherit_torch_deviations=bool(args.inherit_torch_deviations),
                           counterexamples=args.counterexamples)
    names = [b.name for b in backends]
    for b in backends:
        b.close()  # before the jobs fork: none of them may hold another's worker
    ParallelRun(settings, min(args.jobs, len(groups(work))), names, timings).run(work, finished, progress)


def command_list(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    for spec in catalogue.values():
        mark = f"  (from {spec.path})" if spec.id in catalogue.user else ""
        print(f"{spec.id:<28} {spec.module.name:<24} {spec.summary}{mark}")
        if args.verbose:
            print(f"    variants: {', '.join(v.name for v in spec.variants)}; reductions: "
                  f"{', '.join(spec.reductions)}; parameters: {', '.join(spec.params)}")
    return EXIT_OK


def command_validate(args: argparse.Namespace) -> int:
    from loss_conformance.callables import unknown_names
    from loss_conformance.spec_check import reference_problem
    from loss_conformance_reference.loader import load_spec

    if not (args.files or args.spec or args.spec_dir):
        raise UsageError("validate: name spec files (FILE, --spec FILE or --spec-dir DIR)")
    try:
        paths = user_spec_paths([*args.files, *args.spec], args.spec_dir)
    except CatalogueError as exc:
        raise UsageError(str(exc)) from None
    for path in paths:
        spec = load_spec(path)
        unknown = unknown_names(spec)
        if unknown:
            raise UsageError(f"{path}: callable parameter values not in the harness's registry: {', '.join(unknown)}")
        problem = reference_problem(spec)
        if problem:
            raise UsageError(problem)
        print(f"{path}: ok ({spec.id}, {len(spec.variants)} variant(s), {len(spec.examples)} example(s), "
              f"{len(spec.properties)} propert{'y' if len(spec.properties) == 1 else 'ies'}, checked on the reference)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    if not faulthandler.is_enabled():
        faulthandler.enable()  # should the harness itself crash, say where
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = {"run": command_run, "list": command_list, "validate": command_validate, "diff": command_diff,
               "merge": command_merge, "report": command_report,
               "snapshot": command_snapshot}[args.command]
    try:
        return handler(args)
    except (UsageError, SpecError, ReportInputError, SnapshotError) as exc:
        print(f"loss-conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("loss-conformance: interrupted", file=sys.stderr)
        return EXIT_SIGINT


if __name__ == "__main__":
    sys.exit(main())
