"""The command line's options: every command, its arguments and the help that describes them."""
from __future__ import annotations

import argparse

from loss_conformance import __version__
from loss_conformance.backends import DEFAULT, ENV_VAR
from loss_conformance.jobs import parse_jobs
from loss_conformance.planning import CHECK_NAMES, DEFAULT_CHECKS
from loss_conformance.profiles import DEFAULT_PROFILE, PROFILES
from loss_conformance.report.commands import add_parsers as add_report_parsers
from loss_conformance.shards import Shard, parse_shard
from loss_conformance.snapshot.commands import add_parsers as add_snapshot_parsers
from loss_conformance.verdict import EXIT_STATUS_HELP
from loss_conformance.workers import DEFAULT_TIMEOUT
from loss_conformance_reference.model import FLOAT_DTYPES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loss-conformance",
        description="Property-based conformance checks of loss functions against their YAML specs.",
        epilog=EXIT_STATUS_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="check a backend against the specs", epilog=EXIT_STATUS_HELP,
                         description="Check a backend against the specs. Without --loss every specified "
                                     "loss is checked; torch.nn.functional is checked in the same run "
                                     "unless it is the backend or --no-torch-baseline is given.")
    run.add_argument("--backend", metavar="SPEC",
                     help=f"'module', 'module:attr', an entry point name, 'torch.nn', 'reference' or "
                          f"'{DEFAULT}' (default: ${ENV_VAR}, else {DEFAULT})")
    run.add_argument("--loss", nargs="+", metavar="NAME", help="losses to check, shipped or from --spec "
                                                               "(default: all)")
    _add_spec_options(run)
    run.add_argument("--device", choices=("cpu", "cuda", "all"), default="cpu",
                     help="device for the inputs (default: cpu; all = cpu and, if present, cuda)")
    run.add_argument("--dtype", nargs="+", metavar="NAME", default=["float32", "float64"],
                     choices=FLOAT_DTYPES, help="floating dtypes (default: float32 float64)")
    run.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                     help="; ".join(f"{p.name}: {p.max_examples} examples per check, {p.description}"
                                    for p in PROFILES.values()) + f" (default: {DEFAULT_PROFILE})")
    run.add_argument("--max-examples", type=int, metavar="N",
                     help="examples (cases) per check (overrides the profile)")
    run.add_argument("--seed", type=int, metavar="N", help="seed of the run (printed in every report)")
    run.add_argument("--counterexamples", type=int, default=3, metavar="N",
                     help="distinct causes to look for in a failing check (default 3): after a failure, the "
                          "check searches again, passing over the causes found, each new one with its own "
                          "counterexample; 1 stops at the first")
    run.add_argument("--check", nargs="+", choices=CHECK_NAMES, metavar="CHECK",
                     help=f"checks to run (default: {', '.join(DEFAULT_CHECKS)}, and large under --profile "
                          "thorough); forward_ad: tangents by torch.func.jvp and forward_ad dual tensors; vmap: "
                          "torch.func.vmap over a batch of samples; jvp_of_grad: Hessian-vector products, forward "
                          "over reverse, where double backward is promised (float64); large: values and gradients "
                          "on inputs of 2^24 elements and more, class counts of 32768 and more, spatial ranks up "
                          "to 5, in the narrowest dtype asked for (seconds per example)")
    run.add_argument("--json", metavar="PATH", help="write the JSON report (one record per check) here; the values "
                                                    "of counterexamples too large to list go to PATH.cases/")
    run.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    run.add_argument("--known-deviations", metavar="FILE",
                     help="YAML file of accepted deviations of your backend (see README)")
    run.add_argument("--capabilities", metavar="FILE",
                     help="YAML file of what the backend supports (losses, variants, reductions, option values, "
                          "dtypes, devices, double backward; see README), in place of its "
                          "loss_conformance_capabilities attribute: the searches stay inside it, and the rest is "
                          "reported once per loss as unsupported")
    run.add_argument("--inherit-torch-deviations", action="store_true",
                     help="grant the backend under test torch.nn.functional's recorded known deviations: for a "
                          "backend that runs torch's own code (torch.compile of torch.nn.functional, a faithful "
                          "port), whose differences from the spec are torch's")
    run.add_argument("--no-torch-baseline", action="store_true",
                     help="do not also check torch.nn.functional in this run")
    run.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch CPU threads (default: 1; the examples are tiny, and more threads only add "
                          "synchronisation, which is slow on a busy machine)")
    run.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                     help=f"longest one backend call may take before it is recorded as a timeout and its worker "
                          f"process replaced (default: {DEFAULT_TIMEOUT:g})")
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.add_argument("--jobs", type=_jobs, default=1, metavar="N|auto",
                     help="run checks side by side in N processes, each calling the backend in a worker of its own "
                          "(auto: one per available core); the records, their order and the reports are those of a "
                          "serial run with the same seed (default: 1, one check after another)")
    run.add_argument("--shard", type=_shard, metavar="K/N",
                     help="run only part K (1-based) of the planned checks split into N parts, e.g. one job of a "
                          "CI matrix each; every check is in exactly one part, the same one every time, and gives "
                          "the record it gives in an unsharded run; join the parts' reports with merge")

    listing = sub.add_parser("list", help="list the specified losses")
    listing.add_argument("--verbose", action="store_true", help="show variants, reductions and parameters")
    _add_spec_options(listing)

    validate = sub.add_parser(
        "validate", help="validate spec files (exit 2 on the first bad one)",
        description="Check spec files against the schema and the loader, then run each one's worked examples "
                    "and properties (on seeded generated cases) against the reference implementation: a wrong "
                    "expected value or a property that cannot hold is reported, naming it and its line. "
                    "Exit 2 on the first bad file.")
    validate.add_argument("files", nargs="*", metavar="FILE", help="spec files (also --spec, --spec-dir)")
    _add_spec_options(validate)
    add_report_parsers(sub)
    add_snapshot_parsers(sub)
    return parser


def _add_spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", action="append", default=[], metavar="FILE",
                        help="a spec file of your own, beside the shipped specs (repeatable); one with the id of a "
                             "shipped loss replaces it, with a notice on stderr")
    parser.add_argument("--spec-dir", action="append", default=[], metavar="DIR",
                        help="every *.yaml spec file in DIR, as --spec (repeatable)")


def _shard(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _jobs(text: str) -> int:
    try:
        return parse_jobs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
