"""The commands that read run reports: ``diff`` (what changed between two runs). Every input is read
and checked, and the output path probed, before anything is printed: a bad input is one line on
stderr and exit status 2, never half a table."""
from __future__ import annotations

import argparse
import sys

from conformance.report.atomic import ReportPathError, check_writable
from conformance.report.json_report import write_json
from conformance.report.read import ReportInputError, load_report

DIFF_EXIT_HELP = ("Exit status: 0 no new failure; 1 B has a failing record (fail, crashed, timeout, "
                  "nondeterministic, error) that was not failing in A, or that A did not have; 2 a report is "
                  "missing, not JSON, not a loss-conformance report or of an unknown version, or --json cannot "
                  "be written.")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    diff = sub.add_parser("diff", help="status changes between two JSON run reports", epilog=DIFF_EXIT_HELP,
                          description="List the records whose status changed from run A to run B (matched by "
                                      "backend, loss, check, reduction, dtype and device), the records only in A "
                                      "(removed) and only in B (added), and B's message for each new failure. "
                                      "Differences in versions or options between the runs are shown as context.")
    diff.add_argument("a", metavar="A.json", help="the report of the earlier run (the baseline)")
    diff.add_argument("b", metavar="B.json", help="the report of the later run")
    diff.add_argument("--json", metavar="PATH", help="also write the changes as JSON here")


def _writable(path: str | None, what: str) -> None:
    try:
        check_writable(path, what)
    except ReportPathError as exc:
        raise ReportInputError(str(exc)) from None


def command_diff(args: argparse.Namespace) -> int:
    from conformance.report.diff import diff_json, diff_reports, render_diff, warnings

    a, b = load_report(args.a), load_report(args.b)
    _writable(args.json, "the diff")
    for line in warnings(a, b, args.a, args.b):
        print(f"loss-conformance: warning: {line}", file=sys.stderr)
    changes = diff_reports(a, b)
    print(render_diff(changes, args.a, args.b))
    if args.json:
        write_json(diff_json(changes, a, b, args.a, args.b), args.json)
    return changes.exit_status()
