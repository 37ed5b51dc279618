"""The commands that read run reports: ``diff`` (what changed between two runs), ``merge`` (shards
joined into one run) and ``report`` (the conformance matrix to publish). Every input is read and checked, and the output path probed, before anything
is printed: a bad input is one line on stderr and exit status 2, never half a table."""
from __future__ import annotations

import argparse
import sys

from loss_conformance.report.atomic import ReportPathError, check_writable
from loss_conformance.report.json_report import write_json
from loss_conformance.report.read import ReportInputError, load_report

DIFF_EXIT_HELP = ("Exit status: 0 no new failure; 1 B has a failing record (fail, crashed, timeout, "
                  "nondeterministic, error) that was not failing in A, or that A did not have; 2 a report is "
                  "missing, not JSON, not a loss-conformance report or of an unknown version, or --json cannot "
                  "be written.")
MERGE_EXIT_HELP = ("Exit status, as the run's on the merged records: 0 every check ran and conformed; 1 a check "
                   "did not conform; 3 nothing was checked, or not everything: a shard is missing or incomplete "
                   "(the merged report then says \"complete\": false); 2 the reports cannot be read, are not "
                   "shards of the same run (seed, options, versions, split), overlap, or --json cannot be written.")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    diff = sub.add_parser("diff", help="status changes between two JSON run reports", epilog=DIFF_EXIT_HELP,
                          description="List the records whose status changed from run A to run B (matched by "
                                      "backend, loss, check, reduction, dtype and device), the records only in A "
                                      "(removed) and only in B (added), and B's message for each new failure. "
                                      "Differences in versions or options between the runs are shown as context.")
    diff.add_argument("a", metavar="A.json", help="the report of the earlier run (the baseline)")
    diff.add_argument("b", metavar="B.json", help="the report of the later run")
    diff.add_argument("--json", metavar="PATH", help="also write the changes as JSON here")

    merge = sub.add_parser("merge", help="join the reports of run --shard K/N into one report",
                           epilog=MERGE_EXIT_HELP,
                           description="Join the JSON reports of the shards of one run (run --shard K/N) into the "
                                       "report one unsharded run would have written: records in plan order, the "
                                       "summary counted again, timings summed. Reports of different runs, or "
                                       "overlapping shards, are refused.")
    merge.add_argument("reports", nargs="+", metavar="REPORT.json", help="the shards' JSON reports")
    merge.add_argument("--json", metavar="OUT", required=True, help="write the merged report here")

    report = sub.add_parser("report", help="a run report as a conformance matrix to publish (Markdown or HTML)",
                            epilog="Exit status: 0 written; 2 the report cannot be read or the output cannot be "
                                   "written.",
                            description="Write the conformance matrix of a JSON run report: per backend, a row per "
                                        "loss and reduction, a column per dtype (and device), each cell the verdict "
                                        "of its checks, then one line per check that did not conform.")
    report.add_argument("run_report", metavar="RUN.json", help="the JSON report of a run (run --json)")
    report.add_argument("--format", choices=("markdown", "html"), default="markdown", help="default: markdown")
    report.add_argument("--out", metavar="FILE", help="write here instead of to standard output")


def _writable(path: str | None, what: str) -> None:
    try:
        check_writable(path, what)
    except ReportPathError as exc:
        raise ReportInputError(str(exc)) from None


def command_diff(args: argparse.Namespace) -> int:
    from loss_conformance.report.diff import diff_json, diff_reports, render_diff, warnings

    a, b = load_report(args.a), load_report(args.b)
    _writable(args.json, "the diff")
    for line in warnings(a, b, args.a, args.b):
        print(f"loss-conformance: warning: {line}", file=sys.stderr)
    changes = diff_reports(a, b)
    print(render_diff(changes, args.a, args.b))
    if args.json:
        write_json(diff_json(changes, a, b, args.a, args.b), args.json)
    return changes.exit_status()


def command_report(args: argparse.Namespace) -> int:
    from loss_conformance.report.atomic import atomic_write
    from loss_conformance.report.matrix import render_matrix

    loaded = load_report(args.run_report)
    _writable(args.out, "the matrix")
    text = render_matrix(loaded, args.format)
    if args.out:
        atomic_write(args.out, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    return 0


def command_merge(args: argparse.Namespace) -> int:
    from loss_conformance.report.merge import merge_reports, merge_verdict
    from loss_conformance.report.terminal import render_summary
    from loss_conformance.report.text import escape_control
    from loss_conformance.shards import plan_order
    from loss_conformance_reference.catalogue import Catalogue

    inputs = [(path, load_report(path)) for path in args.reports]
    _writable(args.json, "the merged report")
    # Reports name their losses, not their spec files: user specs' records go after the shipped ones.
    merged = merge_reports(inputs, order=plan_order(inputs[0][1].get("run") or {}, Catalogue.build()))
    for name in merged.incomplete:
        print(f"loss-conformance: warning: {escape_control(name)} is an incomplete run (\"complete\": false)",
              file=sys.stderr)
    if merged.missing:
        count = merged.report["run"]["shards"]["count"]
        print(f"loss-conformance: warning: shard(s) {', '.join(f'{k}/{count}' for k in merged.missing)} not given: "
              f"the merged report is incomplete", file=sys.stderr)
    seed = merged.report["run"].get("seed")
    print(render_summary(merged.records, merged.report["timings"], seed if isinstance(seed, int) else None))
    write_json(merged.report, args.json)
    status, reason = merge_verdict(merged)
    print(f"verdict: {reason} (exit status {status})")
    return status
